"""What the airline-graphql client scripts share: the check report, gql
clients over HTTP, botocore's SigV4 signing for the service `appsync`, and
AppSync's Unauthorized error entry. Reads GRAPHQL_URL and IAM_REGION."""

import os

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport

URL = os.environ["GRAPHQL_URL"]
REGION = os.environ["IAM_REGION"]

failures = []


def check(name, condition, detail=""):
    print(("ok - " if condition else "FAILED - ") + name + ("" if condition else f": {detail}"))
    if not condition:
        failures.append(name)


class BotocoreSigV4(requests.auth.AuthBase):
    """Signs each request gql sends with botocore, as AppSync's IAM mode expects."""

    def __init__(self, credentials, service="appsync", region=REGION):
        self.credentials = credentials
        self.service = service
        self.region = region

    def __call__(self, request):
        aws = AWSRequest(
            method=request.method,
            url=request.url,
            data=request.body,
            headers={"content-type": request.headers.get("Content-Type", "application/json")},
        )
        SigV4Auth(self.credentials, self.service, self.region).add_auth(aws)
        request.headers.update(dict(aws.headers.items()))
        return request


def client(headers=None, auth=None, schema=False):
    transport = RequestsHTTPTransport(url=URL, headers=headers or {}, auth=auth, retries=0)
    return Client(transport=transport, fetch_schema_from_transport=schema)


def run(c, query, variables=None):
    """(data, errors) of one query, errors or not."""
    request = gql(query)
    if variables:
        request.variable_values = variables
    try:
        return c.execute(request), []
    except TransportQueryError as e:
        return e.data, e.errors or []


def denied(errors, field, type_name, path):
    """Whether errors hold AppSync's Unauthorized entry for field at path."""
    for e in errors:
        if (
            e.get("errorType") == "Unauthorized"
            and e.get("message") == f"Not Authorized to access {field} on type {type_name}"
            and e.get("path") == path
            and e.get("locations")
        ):
            return True
    return False
