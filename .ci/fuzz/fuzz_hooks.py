"""Schemathesis hooks for fuzz_http.py (loaded through SCHEMATHESIS_HOOKS).

- OPTIONS (every path) and HEAD (every path with a GET) are added to the schema
  the run tests, with the answers DRF gives them, so they are fuzzed too.
- A request that would name the run's own identity (its user or its API key) in
  the path is sent for a random id instead: the run may deactivate, demote or
  revoke anything else, but cannot lock itself out.
- Every answer's (method, path template, status) goes to FUZZ_RESULTS, for the
  share of operations that reached a 2xx.
"""

import copy
import json
import os
import uuid

import schemathesis

PROTECTED = set(json.loads(os.environ.get("FUZZ_PROTECTED_IDS", "[]")))
RESULTS = os.environ.get("FUZZ_RESULTS")
DETAIL = {
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
        }
    }
}


@schemathesis.hook
def before_load_schema(context, raw_schema):
    for path, item in raw_schema.get("paths", {}).items():
        sample = next((item[m] for m in ("get", "post", "put", "patch", "delete") if m in item), None)
        if sample is None:
            continue
        base_id = sample.get("operationId", path.strip("/").replace("/", "_"))
        errors = {code: {"description": "refused", **DETAIL} for code in ("401", "403", "404", "429")}
        item["options"] = {
            "operationId": f"{base_id}_options",
            "summary": f"OPTIONS {path}",
            "parameters": copy.deepcopy([p for p in sample.get("parameters", []) if p.get("in") == "path"]),
            "security": copy.deepcopy(sample.get("security", [])),
            "responses": {
                "200": {
                    "description": "The endpoint's name, description, renders and parses.",
                    "content": {"application/json": {"schema": {"type": "object", "required": ["name"]}}},
                },
                **errors,
            },
        }
        if "get" in item:
            head = copy.deepcopy(item["get"])
            head["operationId"] = f"{item['get'].get('operationId', base_id)}_head"
            head["summary"] = f"HEAD {path}"
            head["responses"] = {
                code: {"description": r.get("description", "")} for code, r in head["responses"].items()
            }
            item["head"] = head


@schemathesis.hook
def before_call(context, case, kwargs):
    for name, value in list((case.path_parameters or {}).items()):
        if str(value) in PROTECTED:
            case.path_parameters[name] = str(uuid.uuid4())


@schemathesis.hook
def after_call(context, case, response):
    if RESULTS:
        with open(RESULTS, "a") as results:
            results.write(json.dumps([case.operation.method.upper(), case.operation.path, response.status_code]) + "\n")
