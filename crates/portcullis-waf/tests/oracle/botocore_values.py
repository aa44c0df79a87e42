"""Prints, as one JSON array, benign text that nobody in this project wrote:
botocore's service models (Apache-2.0, AWS): the string values of every
request example (`examples-1.json`, the "input" of each example) and the
text between the HTML tags of every documentation string (`service-2.json`),
one sentence-sized segment per value. Used by tests/benign_botocore.rs."""

import glob
import gzip
import json
import os
import re
import sys

import botocore

DATA = os.path.join(os.path.dirname(botocore.__file__), "data")


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def strings(value, out):
    if isinstance(value, dict):
        for v in value.values():
            strings(v, out)
    elif isinstance(value, list):
        for v in value:
            strings(v, out)
    elif isinstance(value, str):
        out.append(value)


examples = []
for path in sorted(glob.glob(os.path.join(DATA, "*", "*", "examples-1.json"))):
    for cases in load(path).get("examples", {}).values():
        for case in cases:
            strings(case.get("input", {}), examples)

docs = []
tag = re.compile(r"<[^>]*>")


def documentation(value):
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "documentation" and isinstance(v, str):
                for segment in tag.split(v):
                    segment = " ".join(segment.split())
                    if len(segment) >= 3:
                        docs.append(segment)
            else:
                documentation(v)
    elif isinstance(value, list):
        for v in value:
            documentation(v)


for path in sorted(glob.glob(os.path.join(DATA, "*", "*", "service-2.json*"))):
    if "sdk-extras" not in path:
        documentation(load(path))

json.dump(
    {"botocore": botocore.__version__, "examples": examples, "documentation": docs},
    sys.stdout,
)
