"""Drives airline-graphql's subscriptions and per-field IAM with real clients
nobody here wrote: gql's AppSync WebSocket transport
(gql.transport.appsync_websockets with AppSyncApiKeyAuthentication,
AppSyncIAMAuthentication and AppSyncJWTAuthentication), gql's requests
transport with botocore's SigV4Auth for signed queries and mutations, and the
`websockets` library for the raw protocol checks.

Reads GRAPHQL_URL (http://HOST/graphql), API_KEY, IAM_ACCESS_KEY_ID,
IAM_SECRET_ACCESS_KEY (the ops user), PARTNER_ACCESS_KEY_ID,
PARTNER_SECRET_ACCESS_KEY (the partner user, whose policies allow
Query.flightStatus only and deny every mutation), IAM_REGION, TOKEN (alice's
ID token) from the environment. Every wait is bounded; prints one line per
check and exits 1 if any failed.
"""

import asyncio
import base64
import json
import os
import sys
from urllib.parse import urlparse

import websockets
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from gql import Client, gql
from gql.transport.appsync_auth import (
    AppSyncApiKeyAuthentication,
    AppSyncIAMAuthentication,
    AppSyncJWTAuthentication,
)
from gql.transport.appsync_websockets import AppSyncWebsocketsTransport
from gql.transport.exceptions import TransportQueryError, TransportServerError

from appsync_common import REGION, URL, BotocoreSigV4, check, client, denied, failures, run

HOST = urlparse(URL).netloc
WS_URL = URL.replace("http://", "ws://")
API_KEY = os.environ["API_KEY"]
TOKEN = os.environ["TOKEN"]
OPS = Credentials(os.environ["IAM_ACCESS_KEY_ID"], os.environ["IAM_SECRET_ACCESS_KEY"])
PARTNER = Credentials(os.environ["PARTNER_ACCESS_KEY_ID"], os.environ["PARTNER_SECRET_ACCESS_KEY"])
WAIT = 10  # seconds, for any one step

ops_http = client(auth=BotocoreSigV4(OPS))
partner_http = client(auth=BotocoreSigV4(PARTNER))
user_http = client({"Authorization": TOKEN})

UPDATE = """mutation($id: ID!, $status: String!) {
  updateFlightStatus(flightId: $id, status: $status, gate: "C7") { flightId status gate }
}"""
FOLLOW_FLIGHT = "subscription { onFlightStatus(flightId: \"FL-101\") { flightId status gate } }"
FOLLOW_LOYALTY = "subscription { onLoyaltyUpdated(customerId: \"alice\") { customerId points level } }"

# --- Per-field IAM over HTTP (appsync:GraphQL on each top-level field) -----------
data, errors = run(ops_http, UPDATE, {"id": "FL-102", "status": "BOARDING"})
check("iam ops: updateFlightStatus allowed by its policy",
      data and data["updateFlightStatus"] == {"flightId": "FL-102", "status": "BOARDING", "gate": "C7"} and not errors,
      (data, errors))
data, errors = run(partner_http, UPDATE, {"id": "FL-102", "status": "CANCELLED"})
check("iam partner: updateFlightStatus (explicit Deny on Mutation/*) is null + Unauthorized",
      data == {"updateFlightStatus": None} and denied(errors, "updateFlightStatus", "Mutation", ["updateFlightStatus"])
      and len(errors) == 1, (data, errors))
data, errors = run(partner_http, """{ flightStatus(flightId: "FL-102") { status gate }
  flights: searchFlights(from: "LGW", to: "MAD") { id } }""")
check("iam partner: flightStatus allowed, and the denied mutation changed nothing",
      data["flightStatus"] == {"status": "BOARDING", "gate": "C7"}, (data, errors))
check("iam partner: searchFlights still denied by its directives",
      data["flights"] is None and denied(errors, "searchFlights", "Query", ["flights"]) and len(errors) == 1, errors)
data, errors = run(ops_http, """{ flightStatus(flightId: "FL-101") { status } }""")
check("iam ops: flightStatus allowed (Query/fields/*)", data == {"flightStatus": {"status": "ON_TIME"}} and not errors,
      (data, errors))


# --- Subscriptions through gql's AppSync WebSocket transport ------------------------
async def follow(auth, query, count, trigger):
    """Subscribes with `auth`, then calls `trigger(i)` every 0.2 s until
    `count` events arrived (or WAIT seconds passed); returns the events."""
    transport = AppSyncWebsocketsTransport(url=WS_URL, auth=auth, connect_timeout=WAIT, ack_timeout=WAIT)
    events = []
    async with Client(transport=transport) as session:
        async def listen():
            async for result in session.subscribe(gql(query)):
                events.append(result)
                if len(events) >= count:
                    return

        listener = asyncio.ensure_future(listen())
        i = 0
        try:
            while not listener.done() and i < WAIT * 5:
                await asyncio.sleep(0.2)
                await asyncio.get_running_loop().run_in_executor(None, trigger, i)
                i += 1
            await asyncio.wait_for(listener, timeout=WAIT)
        finally:
            listener.cancel()
    return events


async def refused(auth, query):
    """The exception a subscription attempt ends with (None if it did not)."""
    transport = AppSyncWebsocketsTransport(url=WS_URL, auth=auth, connect_timeout=WAIT, ack_timeout=WAIT)
    try:
        async with Client(transport=transport) as session:
            async def first():
                async for _ in session.subscribe(gql(query)):
                    return None
            return await asyncio.wait_for(first(), timeout=WAIT)
    except (TransportQueryError, TransportServerError) as e:
        return e


sent = []


def post_status(i):
    status = f"DELAYED-{i}"
    data, errors = run(ops_http, UPDATE, {"id": "FL-101", "status": status})
    if data and data.get("updateFlightStatus"):
        sent.append(status)


def redeem(i):
    run(user_http, "mutation { redeemPoints(customerId: \"alice\", points: 100) { points } }")


async def subscriptions():
    # API_KEY on the connection and on the start.
    events = await follow(AppSyncApiKeyAuthentication(host=HOST, api_key=API_KEY), FOLLOW_FLIGHT, 2, post_status)
    statuses = [e["onFlightStatus"]["status"] for e in events]
    check("api key subscription: the updates an IAM mutation published arrive, in order",
          len(events) == 2 and all(s in sent for s in statuses) and sent.index(statuses[0]) < sent.index(statuses[1]),
          (events, sent))
    check("api key subscription: FlightStatus fields (type @aws_api_key) readable",
          all(e["onFlightStatus"]["gate"] == "C7" and e["onFlightStatus"]["flightId"] == "FL-101" for e in events), events)

    # AWS_IAM: the connection signs POST /graphql/connect, each start signs its data.
    events = await follow(AppSyncIAMAuthentication(host=HOST, credentials=OPS, region_name=REGION),
                          FOLLOW_FLIGHT, 1, post_status)
    check("iam subscription (signed connect and start): an update arrives",
          len(events) == 1 and events[0]["onFlightStatus"]["status"] in sent, events)

    # AMAZON_COGNITO_USER_POOLS: alice follows her loyalty account.
    events = await follow(AppSyncJWTAuthentication(host=HOST, jwt=TOKEN), FOLLOW_LOYALTY, 2, redeem)
    points = [e["onLoyaltyUpdated"]["points"] for e in events]
    check("user pool subscription: redeemPoints updates arrive with Loyalty's fields",
          len(points) == 2 and points[0] - points[1] == 100 and events[0]["onLoyaltyUpdated"]["level"] == "silver", events)

    # Refusals.
    e = await refused(AppSyncApiKeyAuthentication(host=HOST, api_key=API_KEY), FOLLOW_LOYALTY)
    errs = (e.errors[0].get("errors") if isinstance(e, TransportQueryError) and e.errors else None) or []
    check("api key subscribing to onLoyaltyUpdated (user pools only): error Unauthorized",
          denied(errs, "onLoyaltyUpdated", "Subscription", ["onLoyaltyUpdated"]), repr(e))
    e = await refused(AppSyncIAMAuthentication(host=HOST, credentials=PARTNER, region_name=REGION), FOLLOW_FLIGHT)
    errs = (e.errors[0].get("errors") if isinstance(e, TransportQueryError) and e.errors else None) or []
    check("iam partner subscribing (no Allow on Subscription fields): error Unauthorized",
          denied(errs, "onFlightStatus", "Subscription", ["onFlightStatus"]), repr(e))
    e = await refused(AppSyncApiKeyAuthentication(host=HOST, api_key="da2-not-the-key-000000000000"), FOLLOW_FLIGHT)
    check("bad api key on the connection: connection_error UnauthorizedException",
          isinstance(e, TransportServerError) and "UnauthorizedException" in str(e) and "401" in str(e), repr(e))
    wrong = Credentials(os.environ["IAM_ACCESS_KEY_ID"], "not-the-secret-key-000000000000000000000")
    e = await refused(AppSyncIAMAuthentication(host=HOST, credentials=wrong, region_name=REGION), FOLLOW_FLIGHT)
    check("wrong IAM secret on the connection: connection_error UnauthorizedException",
          isinstance(e, TransportServerError) and "UnauthorizedException" in str(e), repr(e))
    e = await refused(AppSyncJWTAuthentication(host=HOST, jwt=TOKEN[:-4] + "AAAA"), FOLLOW_FLIGHT)
    check("tampered token on the connection: connection_error UnauthorizedException",
          isinstance(e, TransportServerError) and "UnauthorizedException" in str(e), repr(e))


# --- The raw protocol, with the websockets library --------------------------------------
def header_param(headers):
    return base64.b64encode(json.dumps(headers).encode()).decode()


def signed(credentials, path, body):
    request = AWSRequest(method="POST", url=f"https://{HOST}{path}", data=body, headers={
        "accept": "application/json, text/javascript", "content-encoding": "amz-1.0",
        "content-type": "application/json; charset=UTF-8"})
    SigV4Auth(credentials, "appsync", REGION).add_auth(request)
    headers = dict(request.headers.items())
    headers["host"] = HOST
    return headers


async def receive(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=WAIT))


async def raw():
    key = {"host": HOST, "x-api-key": API_KEY}
    url = f"{WS_URL}?header={header_param(key)}&payload=e30="
    async with websockets.connect(url, subprotocols=["graphql-ws"], open_timeout=WAIT) as ws:
        check("raw: the server selects the graphql-ws subprotocol", ws.subprotocol == "graphql-ws", ws.subprotocol)
        await ws.send(json.dumps({"type": "connection_init"}))
        ack = await receive(ws)
        check("raw: connection_ack with connectionTimeoutMs 300000",
              ack == {"type": "connection_ack", "payload": {"connectionTimeoutMs": 300000}}, ack)

        def start(id, query, authorization):
            data = json.dumps({"query": query, "variables": {}})
            return json.dumps({"id": id, "type": "start",
                               "payload": {"data": data, "extensions": {"authorization": authorization}}})

        await ws.send(start("q1", "{ flightStatus(flightId: \"FL-101\") { status } }", key))
        answer = await receive(ws)
        check("raw: a query through the realtime channel is UnsupportedOperation",
              answer["type"] == "error" and answer["id"] == "q1"
              and answer["payload"]["errors"][0]["errorType"] == "UnsupportedOperation"
              and answer["payload"]["errors"][0]["message"] == "Query not supported through the realtime channel", answer)

        await ws.send(start("s1", FOLLOW_FLIGHT, key))
        answer = await receive(ws)
        check("raw: start_ack", answer == {"type": "start_ack", "id": "s1"}, answer)
        await ws.send(start("s1", FOLLOW_FLIGHT, key))
        answer = await receive(ws)
        check("raw: a second start with the same id is refused",
              answer["type"] == "error" and answer["id"] == "s1"
              and answer["payload"]["errors"][0]["errorType"] == "DuplicatedOperationError", answer)

        # A start signed by IAM for other data than it carries.
        data = json.dumps({"query": FOLLOW_FLIGHT, "variables": {}})
        authorization = signed(OPS, "/graphql", data.replace("FL-101", "FL-102"))
        await ws.send(json.dumps({"id": "s2", "type": "start",
                                  "payload": {"data": data, "extensions": {"authorization": authorization}}}))
        answer = await receive(ws)
        check("raw: a start whose signature covers other data: UnauthorizedException",
              answer == {"type": "error", "id": "s2", "payload": {"errors": [
                  {"errorType": "UnauthorizedException", "message": "Permission denied"}]}}, answer)
        # The same data, signed as it is: one connection, two modes.
        authorization = signed(OPS, "/graphql", data)
        await ws.send(json.dumps({"id": "s3", "type": "start",
                                  "payload": {"data": data, "extensions": {"authorization": authorization}}}))
        answer = await receive(ws)
        check("raw: an IAM start on an API-key connection is acknowledged", answer == {"type": "start_ack", "id": "s3"},
              answer)

        post_status(900)
        got = {}
        for _ in range(2):
            message = await receive(ws)
            got[message.get("id")] = message
        check("raw: both subscriptions get the update as a data message",
              all(got.get(i, {}).get("type") == "data"
                  and got[i]["payload"]["data"]["onFlightStatus"]["status"] == "DELAYED-900" for i in ("s1", "s3")), got)

        await ws.send(json.dumps({"id": "s1", "type": "stop"}))
        answer = await receive(ws)
        check("raw: stop gets complete", answer == {"type": "complete", "id": "s1"}, answer)

    # A connection whose header carries no usable credentials.
    url = f"{WS_URL}?header={header_param({'host': HOST})}&payload=e30="
    async with websockets.connect(url, subprotocols=["graphql-ws"], open_timeout=WAIT) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        answer = await receive(ws)
        check("raw: no credentials: AppSync's connection_error",
              answer == {"type": "connection_error", "payload": {"errors": [{
                  "errorType": "UnauthorizedException",
                  "message": "You are not authorized to make this call.", "errorCode": 401}]}}, answer)
        try:
            await asyncio.wait_for(ws.recv(), timeout=WAIT)
            closed = False
        except websockets.exceptions.ConnectionClosed:
            closed = True
        check("raw: the refused connection is closed", closed)


async def main():
    await asyncio.wait_for(subscriptions(), timeout=120)
    await asyncio.wait_for(raw(), timeout=60)


asyncio.run(main())
print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
