"""Drives Portcullis's management API with boto3's `apigateway` client.

Run by tests/management.rs against a server on 127.0.0.1 (SigV4 with the
credential scope `apigateway` in front of ManagementApi). Environment:
ENDPOINT, ADMIN_KEY_ID, ADMIN_SECRET, NOBODY_KEY_ID, NOBODY_SECRET.
Prints one JSON line of facts for the Rust test to check, and exits non-zero
on the first failed expectation.
"""

import datetime
import json
import os
import sys

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["ENDPOINT"]
CONFIG = Config(retries={"max_attempts": 1}, signature_version="v4")


def client(key_id, secret, config=CONFIG):
    return boto3.client(
        "apigateway",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=config,
    )


admin = client(os.environ["ADMIN_KEY_ID"], os.environ["ADMIN_SECRET"])
nobody = client(os.environ["NOBODY_KEY_ID"], os.environ["NOBODY_SECRET"])
unsigned = client("x", "y", Config(retries={"max_attempts": 1}, signature_version=UNSIGNED))
checks = 0


def check(condition, what):
    global checks
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1


def raises(exception, call, what):
    try:
        call()
    except exception as error:
        check(True, what)
        return error
    except ClientError as error:
        check(False, f"{what}: raised {error.response['Error']['Code']} instead")
    check(False, f"{what}: no exception")


# --- usage plans -----------------------------------------------------------
plan = admin.create_usage_plan(
    name="Gold",
    description="gold partners",
    apiStages=[{"apiId": "a1b2c3d4e5", "stage": "prod"}],
    throttle={"rateLimit": 10.0, "burstLimit": 20},
    quota={"limit": 1000, "period": "DAY", "offset": 0},
    tags={"team": "loyalty"},
)
plan_id = plan["id"]
check(plan["ResponseMetadata"]["HTTPStatusCode"] == 201, "CreateUsagePlan answers 201")
check(plan["quota"]["limit"] == 1000 and plan["throttle"]["burstLimit"] == 20, "plan limits")
other = admin.create_usage_plan(name="Silver", quota={"limit": 5, "period": "WEEK"})
raises(admin.exceptions.BadRequestException, lambda: admin.create_usage_plan(name="Bad", quota={"limit": 5, "period": "YEAR"}), "unknown period refused")
raises(admin.exceptions.BadRequestException, lambda: admin.create_usage_plan(name="Bad", quota={"limit": -5, "period": "DAY"}), "negative limit refused")
check(admin.get_usage_plan(usagePlanId=plan_id)["name"] == "Gold", "GetUsagePlan")
raises(admin.exceptions.NotFoundException, lambda: admin.get_usage_plan(usagePlanId="nope"), "GetUsagePlan of an unknown plan")

updated = admin.update_usage_plan(
    usagePlanId=plan_id,
    patchOperations=[
        {"op": "replace", "path": "/quota/limit", "value": "500"},
        {"op": "replace", "path": "/quota/period", "value": "MONTH"},
        {"op": "replace", "path": "/throttle/rateLimit", "value": "5"},
        {"op": "add", "path": "/apiStages", "value": "a1b2c3d4e5:beta"},
        {"op": "replace", "path": "/apiStages/a1b2c3d4e5:prod/throttle/~1loyalty~1{id}~1get/GET/rateLimit", "value": "1"},
        {"op": "replace", "path": "/apiStages/a1b2c3d4e5:prod/throttle/~1loyalty~1{id}~1get/GET/burstLimit", "value": "2"},
        {"op": "replace", "path": "/description", "value": "gold, monthly"},
    ],
)
check(updated["quota"] == {"limit": 500, "offset": 0, "period": "MONTH"}, f"quota patched: {updated['quota']}")
check(updated["throttle"]["rateLimit"] == 5.0, "throttle patched")
stages = {f"{s['apiId']}:{s['stage']}": s for s in updated["apiStages"]}
check(set(stages) == {"a1b2c3d4e5:prod", "a1b2c3d4e5:beta"}, f"stages: {sorted(stages)}")
check(stages["a1b2c3d4e5:prod"]["throttle"]["/loyalty/{id}/get/GET"] == {"burstLimit": 2, "rateLimit": 1.0}, "per-method throttle")
before = admin.get_usage_plan(usagePlanId=plan_id)
for bad in (
    [{"op": "replace", "path": "/quota/period", "value": "FORTNIGHT"}],
    [{"op": "replace", "path": "/quota/limit", "value": "-3"}],
    [{"op": "replace", "path": "/quota/limit", "value": "7"}, {"op": "replace", "path": "/nonsense", "value": "1"}],
    [{"op": "replace", "path": "/throttle/burstLimit", "value": "lots"}],
):
    raises(admin.exceptions.BadRequestException, lambda: admin.update_usage_plan(usagePlanId=plan_id, patchOperations=bad), f"bad patch {bad}")
after = admin.get_usage_plan(usagePlanId=plan_id)
before.pop("ResponseMetadata")
after.pop("ResponseMetadata")
check(before == after, "bad patches changed nothing")
huge = [{"op": "replace", "path": "/description", "value": "x" * 400_000}]
error = raises(ClientError, lambda: admin.update_usage_plan(usagePlanId=plan_id, patchOperations=huge), "oversized body")
check(error.response["ResponseMetadata"]["HTTPStatusCode"] == 413, "oversized body is 413")
check(admin.get_usage_plan(usagePlanId=plan_id)["description"] == "gold, monthly", "oversized body changed nothing")

# --- API keys --------------------------------------------------------------
key = admin.create_api_key(name="partner-a", customerId="cust-1", enabled=True, description="first")
check(key["ResponseMetadata"]["HTTPStatusCode"] == 201, "CreateApiKey answers 201")
check(len(key["value"]) == 40 and key["enabled"], "a generated 40-character value")
check(isinstance(key["createdDate"], datetime.datetime), "createdDate is a timestamp")
given = admin.create_api_key(name="partner-b", value="GivenValue0123456789abcdef", enabled=False)
check(given["value"] == "GivenValue0123456789abcdef" and not given["enabled"], "a given value, disabled")
raises(admin.exceptions.ConflictException, lambda: admin.create_api_key(name="dup", value="GivenValue0123456789abcdef"), "duplicate value is a conflict")
raises(admin.exceptions.BadRequestException, lambda: admin.create_api_key(name="short", value="short"), "a too-short value")
check("value" not in admin.get_api_key(apiKey=key["id"]), "GetApiKey hides the value")
check(admin.get_api_key(apiKey=key["id"], includeValue=True)["value"] == key["value"], "GetApiKey includeValue")
raises(admin.exceptions.NotFoundException, lambda: admin.get_api_key(apiKey="nope"), "GetApiKey of an unknown key")

for i in range(5):
    admin.create_api_key(name=f"bulk-{i}", customerId="bulk", enabled=True)
paginator = admin.get_paginator("get_api_keys")
pages = list(paginator.paginate(PaginationConfig={"PageSize": 2}))
listed = [k["id"] for page in pages for k in page["items"]]
check(len(pages) >= 4, f"pages of 2: {len(pages)}")
check(len(listed) == len(set(listed)) == 7, f"the paginator saw every key once: {len(listed)}")
bulk = [k for page in paginator.paginate(customerId="bulk", PaginationConfig={"PageSize": 2}) for k in page["items"]]
check(len(bulk) == 5, "customerId filter")
named = admin.get_api_keys(nameQuery="partner", includeValues=True)["items"]
check(sorted(k["name"] for k in named) == ["partner-a", "partner-b"], "nameQuery")
check(all("value" in k for k in named), "includeValues")
raises(admin.exceptions.BadRequestException, lambda: admin.get_api_keys(limit=-1), "a negative limit")

patched = admin.update_api_key(
    apiKey=key["id"],
    patchOperations=[
        {"op": "replace", "path": "/name", "value": "partner-a2"},
        {"op": "replace", "path": "/description", "value": "renamed"},
        {"op": "replace", "path": "/customerId", "value": "cust-2"},
    ],
)
check(patched["name"] == "partner-a2" and patched["customerId"] == "cust-2", "UpdateApiKey")
raises(admin.exceptions.BadRequestException, lambda: admin.update_api_key(apiKey=key["id"], patchOperations=[{"op": "replace", "path": "/name", "value": "x"}, {"op": "replace", "path": "/value", "value": "y"}]), "invalid key patch path")
raises(admin.exceptions.BadRequestException, lambda: admin.update_api_key(apiKey=key["id"], patchOperations=[{"op": "replace", "path": "/enabled", "value": "perhaps"}]), "invalid /enabled value")
check(admin.get_api_key(apiKey=key["id"])["name"] == "partner-a2", "invalid patches changed nothing")

imported = admin.import_api_keys(
    body=b"Name,Key,Description,Enabled,UsagePlanIds\nimported-1,ImportedValue0123456789abcd,from csv,true,%s\nimported-2,ImportedValue0123456789abce,,false,\n" % plan_id.encode(),
    format="csv",
)
check(len(imported["ids"]) == 2, f"ImportApiKeys: {imported}")
raises(admin.exceptions.BadRequestException, lambda: admin.import_api_keys(body=b"Name,Key\nx,short\n", format="csv"), "import of a bad value")
raises(admin.exceptions.ConflictException, lambda: admin.import_api_keys(body=b"Name,Key\nagain,ImportedValue0123456789abcd\n", format="csv"), "import of an existing value")
check(len([k for p in paginator.paginate() for k in p["items"]]) == 9, "failed imports added nothing")

# --- usage plan keys -------------------------------------------------------
added = admin.create_usage_plan_key(usagePlanId=plan_id, keyId=key["id"], keyType="API_KEY")
check(added["ResponseMetadata"]["HTTPStatusCode"] == 201 and added["type"] == "API_KEY", "CreateUsagePlanKey")
raises(admin.exceptions.ConflictException, lambda: admin.create_usage_plan_key(usagePlanId=plan_id, keyId=key["id"], keyType="API_KEY"), "a key in a plan twice")
raises(admin.exceptions.NotFoundException, lambda: admin.create_usage_plan_key(usagePlanId=plan_id, keyId="nope", keyType="API_KEY"), "an unknown key")
check(admin.get_usage_plan_key(usagePlanId=plan_id, keyId=key["id"])["name"] == "partner-a2", "GetUsagePlanKey")
plan_keys = [k["id"] for p in admin.get_paginator("get_usage_plan_keys").paginate(usagePlanId=plan_id, PaginationConfig={"PageSize": 1}) for k in p["items"]]
check(sorted(plan_keys) == sorted([key["id"], imported["ids"][0]]), f"GetUsagePlanKeys: {plan_keys}")
in_plans = [p["id"] for p in admin.get_usage_plans(keyId=key["id"])["items"]]
check(in_plans == [plan_id], "GetUsagePlans keyId")
all_plans = [p["id"] for pg in admin.get_paginator("get_usage_plans").paginate(PaginationConfig={"PageSize": 1}) for p in pg["items"]]
check(sorted(all_plans) == sorted([plan_id, other["id"]]), "GetUsagePlans paginated")

# --- usage -----------------------------------------------------------------
today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
usage = admin.get_usage(usagePlanId=plan_id, keyId=key["id"], startDate=today, endDate=today)
check(usage["items"][key["id"]] == [[0, 500]], f"GetUsage: {usage['items']}")
extended = admin.update_usage(usagePlanId=plan_id, keyId=key["id"], patchOperations=[{"op": "add", "path": "/remaining", "value": "25"}])
check(extended["items"][key["id"]] == [[0, 525]], f"UpdateUsage add: {extended['items']}")
raises(admin.exceptions.BadRequestException, lambda: admin.update_usage(usagePlanId=plan_id, keyId=key["id"], patchOperations=[{"op": "replace", "path": "/remaining", "value": "-4"}]), "a negative remaining")
raises(admin.exceptions.NotFoundException, lambda: admin.update_usage(usagePlanId=plan_id, keyId=given["id"], patchOperations=[{"op": "add", "path": "/remaining", "value": "1"}]), "UpdateUsage of a key not in the plan")
every = admin.get_usage(usagePlanId=plan_id, startDate=today, endDate=today, limit=1)
check(len(every["items"]) == 1 and "position" in every, "GetUsage pages keys")
raises(admin.exceptions.BadRequestException, lambda: admin.get_usage(usagePlanId=plan_id, startDate="yesterday", endDate=today), "a bad date")

# --- authorization ---------------------------------------------------------
error = raises(ClientError, lambda: nobody.get_usage_plans(), "a user without permission")
check(error.response["Error"]["Code"] == "AccessDeniedException", f"AccessDenied: {error.response['Error']}")
check("is not authorized to perform: apigateway:GET" in error.response["Error"]["Message"], "IAM's message")
error = raises(ClientError, lambda: unsigned.get_api_keys(), "an unsigned call")
check(error.response["ResponseMetadata"]["HTTPStatusCode"] == 403, "unsigned is 403")
check(error.response["Error"]["Code"] in ("MissingAuthenticationTokenException", "MissingAuthenticationToken"), f"unsigned code: {error.response['Error']}")

# --- deletions -------------------------------------------------------------
disabled = admin.update_api_key(apiKey=key["id"], patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}])
check(disabled["enabled"] is False, "disable a key")
check(admin.delete_usage_plan_key(usagePlanId=plan_id, keyId=imported["ids"][0])["ResponseMetadata"]["HTTPStatusCode"] == 202, "DeleteUsagePlanKey")
raises(admin.exceptions.NotFoundException, lambda: admin.get_usage_plan_key(usagePlanId=plan_id, keyId=imported["ids"][0]), "deleted plan key")
check(admin.delete_api_key(apiKey=given["id"])["ResponseMetadata"]["HTTPStatusCode"] == 202, "DeleteApiKey")
raises(admin.exceptions.NotFoundException, lambda: admin.delete_api_key(apiKey=given["id"]), "delete twice")
check(admin.delete_usage_plan(usagePlanId=other["id"])["ResponseMetadata"]["HTTPStatusCode"] == 202, "DeleteUsagePlan")
raises(admin.exceptions.NotFoundException, lambda: admin.get_usage_plan(usagePlanId=other["id"]), "deleted plan")

print(json.dumps({"checks": checks, "plan_id": plan_id, "key_id": key["id"]}))
