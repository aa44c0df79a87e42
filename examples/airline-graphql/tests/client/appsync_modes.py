"""Drives airline-graphql with real clients nobody here wrote: gql (its
requests transport) for GraphQL, botocore's SigV4Auth to sign AWS_IAM
requests for the service `appsync`, and requests for raw HTTP checks.

Reads GRAPHQL_URL, API_KEY, IAM_ACCESS_KEY_ID, IAM_SECRET_ACCESS_KEY,
IAM_REGION, TOKEN (a demo-pool ID token, no groups) and ADMIN_TOKEN (one in
the Admin group) from the environment, and OIDC_ISSUER_URL (the real OpenID
Connect issuer of scripts/services.d/20-oidc.sh, which the server then
accepts) if set. Prints one line per check and exits
1 if any check failed.
"""

import os
import sys

import requests
from botocore.credentials import Credentials

from appsync_common import BotocoreSigV4, URL, check, client, denied, failures, run

API_KEY = os.environ["API_KEY"]
TOKEN = os.environ["TOKEN"]
ADMIN_TOKEN = os.environ["ADMIN_TOKEN"]
CREDENTIALS = Credentials(os.environ["IAM_ACCESS_KEY_ID"], os.environ["IAM_SECRET_ACCESS_KEY"])


SEARCH = """query { searchFlights(from: "LGW", to: "MAD") { id ticketPrice seatAllocation } }"""
MIXED = """query {
  flights: searchFlights(from: "LGW", to: "MAD") { id departureDate }
  getLoyalty(customerId: "alice") { points level }
  listBookings { id status flight { id seatAllocation } }
  flightStatus(flightId: "FL-101") { status gate }
  me { username groups }
}"""

key_client = client({"x-api-key": API_KEY})
user_client = client({"Authorization": TOKEN})
admin_client = client({"Authorization": ADMIN_TOKEN})
iam_client = client(auth=BotocoreSigV4(CREDENTIALS))

# --- API_KEY ------------------------------------------------------------------
# The client fetches the schema by introspection and validates locally.
data, errors = run(client({"x-api-key": API_KEY}, schema=True), SEARCH)
flights = (data or {}).get("searchFlights") or []
check("api key: searchFlights answered", [f["id"] for f in flights] == ["FL-101", "FL-102"], (data, errors))
check("api key: ticketPrice (type directive @aws_api_key) readable", all(f["ticketPrice"] for f in flights), data)
check(
    "api key: seatAllocation (field @aws_cognito_user_pools overrides the type) is null + Unauthorized",
    all(f["seatAllocation"] is None for f in flights)
    and denied(errors, "seatAllocation", "Flight", ["searchFlights", 0, "seatAllocation"])
    and denied(errors, "seatAllocation", "Flight", ["searchFlights", 1, "seatAllocation"]),
    errors,
)

data, errors = run(key_client, MIXED)
check("api key mixed: aliased searchFlights answered", [f["id"] for f in data["flights"]] == ["FL-101", "FL-102"], data)
check("api key mixed: getLoyalty (@aws_cognito_user_pools) denied", data["getLoyalty"] is None and denied(errors, "getLoyalty", "Query", ["getLoyalty"]), errors)
check("api key mixed: listBookings (groups) denied", data["listBookings"] is None and denied(errors, "listBookings", "Query", ["listBookings"]), errors)
check("api key mixed: flightStatus (@aws_iam) denied", data["flightStatus"] is None and denied(errors, "flightStatus", "Query", ["flightStatus"]), errors)
check("api key mixed: me (no directive: default mode only) denied", data["me"] is None and denied(errors, "me", "Query", ["me"]), errors)
check("api key mixed: exactly four errors", len(errors) == 4, errors)

# A bad key: 401 UnauthorizedException, seen through gql and raw HTTP.
data, errors = run(client({"x-api-key": "NotTheKey0000000000000000"}), SEARCH)
check("bad api key: UnauthorizedException via gql", data is None and [e.get("errorType") for e in errors] == ["UnauthorizedException"], errors)
raw = requests.post(URL, json={"query": SEARCH}, headers={"x-api-key": "NotTheKey0000000000000000"})
check(
    "bad api key: HTTP 401 with AppSync's body",
    raw.status_code == 401
    and raw.json() == {"errors": [{"errorType": "UnauthorizedException", "message": "You are not authorized to make this call."}]}
    and raw.headers.get("x-amzn-ErrorType") == "UnauthorizedException",
    (raw.status_code, raw.text),
)

# --- No credentials -------------------------------------------------------------
raw = requests.post(URL, json={"query": SEARCH})
check("no credentials: HTTP 401 UnauthorizedException", raw.status_code == 401 and raw.json()["errors"][0]["errorType"] == "UnauthorizedException", (raw.status_code, raw.text))
raw = requests.post(URL, json={"query": SEARCH}, headers={"Authorization": "Bearer not-a-token"})
check("unrecognized Authorization: HTTP 401", raw.status_code == 401, (raw.status_code, raw.text))

# --- AMAZON_COGNITO_USER_POOLS (the default mode) ----------------------------------
data, errors = run(user_client, MIXED)
check("user: searchFlights answered", [f["id"] for f in data["flights"]] == ["FL-101", "FL-102"], data)
check("user: getLoyalty (Loyalty has no directive: default mode) answered", data["getLoyalty"] == {"points": 12400, "level": "silver"}, data)
check("user: me (no directive: default mode) answered", data["me"] == {"username": "alice", "groups": []}, data)
check("user: listBookings needs the Admin group", data["listBookings"] is None and denied(errors, "listBookings", "Query", ["listBookings"]), errors)
check("user: flightStatus (@aws_iam only) denied", data["flightStatus"] is None and denied(errors, "flightStatus", "Query", ["flightStatus"]), errors)
check("user: exactly two errors", len(errors) == 2, errors)

data, errors = run(user_client, SEARCH)
check("user: seatAllocation readable", [f["seatAllocation"] for f in data["searchFlights"]] == [12, 3] and not errors, (data, errors))

data, errors = run(admin_client, MIXED)
check(
    "admin: listBookings and its Booking fields (type groups) answered",
    [b["id"] for b in data["listBookings"]] == ["BK-1", "BK-2"] and data["listBookings"][0]["flight"]["seatAllocation"] == 12,
    data,
)
check("admin: me shows the groups", data["me"] == {"username": "bob", "groups": ["Admin"]}, data)
check("admin: only flightStatus denied", len(errors) == 1 and denied(errors, "flightStatus", "Query", ["flightStatus"]), errors)

# A tampered token, and the raw token with the Bearer prefix AppSync clients may add.
tampered = TOKEN[:-4] + ("AAAA" if not TOKEN.endswith("AAAA") else "BBBB")
raw = requests.post(URL, json={"query": SEARCH}, headers={"Authorization": tampered})
check("tampered token: HTTP 401 UnauthorizedException", raw.status_code == 401 and raw.json()["errors"][0]["errorType"] == "UnauthorizedException", (raw.status_code, raw.text))
data, errors = run(client({"Authorization": "Bearer " + TOKEN}), SEARCH)
check("Bearer-prefixed token accepted", data and len(data["searchFlights"]) == 2 and not errors, (data, errors))

# --- AWS_IAM --------------------------------------------------------------------------
data, errors = run(iam_client, MIXED)
check("iam: flightStatus (@aws_iam, FlightStatus @aws_iam) answered", data["flightStatus"] == {"status": "ON_TIME", "gate": "B32"}, (data, errors))
check("iam: searchFlights (api key, user pools) denied", data["flights"] is None and denied(errors, "searchFlights", "Query", ["flights"]), errors)
check("iam: getLoyalty, listBookings, me denied", all(denied(errors, f, "Query", [f]) for f in ["getLoyalty", "listBookings", "me"]), errors)
check("iam: exactly four errors", len(errors) == 4, errors)

wrong_secret = Credentials(os.environ["IAM_ACCESS_KEY_ID"], "not-the-secret-key-000000000000000000000")
data, errors = run(client(auth=BotocoreSigV4(wrong_secret)), MIXED)
check("iam, wrong secret: UnauthorizedException", data is None and [e.get("errorType") for e in errors] == ["UnauthorizedException"], errors)
data, errors = run(client(auth=BotocoreSigV4(CREDENTIALS, service="execute-api")), MIXED)
check("iam, signed for another service: UnauthorizedException", data is None and [e.get("errorType") for e in errors] == ["UnauthorizedException"], errors)
unknown = Credentials("AKIAUNKNOWNUNKNOWN01", "whatever-secret-key-0000000000000000000")
data, errors = run(client(auth=BotocoreSigV4(unknown)), MIXED)
check("iam, unknown access key: UnauthorizedException", data is None and [e.get("errorType") for e in errors] == ["UnauthorizedException"], errors)

# --- OPENID_CONNECT: an ID token minted by the real issuer (oidc-provider) -----------
OIDC = os.environ.get("OIDC_ISSUER_URL")
if OIDC:
    minted = requests.post(f"{OIDC}/__admin/id-token?sub=jane.partner")
    oidc_token = minted.json()["id_token"]
    oidc_client = client({"Authorization": oidc_token})
    data, errors = run(oidc_client, """query {
      partnerFlights(from: "LGW", to: "MAD") { id ticketPrice seatAllocation }
      flights: searchFlights(from: "LGW", to: "MAD") { id }
      listBookings { id }
      me { username }
    }""")
    check("oidc: partnerFlights (@aws_oidc) answered, Flight @aws_oidc fields readable",
          [f["ticketPrice"] for f in (data or {}).get("partnerFlights") or []] == [129, 189], (data, errors))
    check("oidc: seatAllocation (field names user pools only) denied",
          all(denied(errors, "seatAllocation", "Flight", ["partnerFlights", i, "seatAllocation"]) for i in (0, 1)), errors)
    check("oidc: searchFlights (api key, user pools) denied", data["flights"] is None and denied(errors, "searchFlights", "Query", ["flights"]), errors)
    check("oidc: the token's cognito:groups do not open listBookings to another mode",
          data["listBookings"] is None and denied(errors, "listBookings", "Query", ["listBookings"]), errors)
    check("oidc: me (default mode only) denied", data["me"] is None and denied(errors, "me", "Query", ["me"]), errors)
    check("oidc: exactly five errors", len(errors) == 5, errors)
    # The user pool's demo token is not the partner's, and vice versa.
    data, errors = run(user_client, """query { partnerFlights(from: "LGW", to: "MAD") { id } }""")
    check("user pools: partnerFlights (@aws_oidc) denied", data["partnerFlights"] is None and denied(errors, "partnerFlights", "Query", ["partnerFlights"]), errors)
    forged = oidc_token.rsplit(".", 1)[0] + "." + TOKEN.rsplit(".", 1)[1]
    raw = requests.post(URL, json={"query": "{ partnerFlights(from: \"LGW\", to: \"MAD\") { id } }"}, headers={"Authorization": forged})
    check("oidc, forged signature: HTTP 401", raw.status_code == 401 and raw.json()["errors"][0]["errorType"] == "UnauthorizedException", (raw.status_code, raw.text))
else:
    print("skip - OPENID_CONNECT checks: OIDC_ISSUER_URL is not set")

# --- Introspection is answered for any authorized mode ------------------------------------
data, errors = run(iam_client, "{ __schema { queryType { name } } }")
check("iam: introspection answered", data == {"__schema": {"queryType": {"name": "Query"}}} and not errors, (data, errors))

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
