"""The published per-service documents, checked by third-party validators.

The OpenAPI documents (schema/openapi/<service>.json) must pass openapi-spec-validator, the
reference validator of OpenAPI 3.1; the per-service OpenRPC documents must describe exactly
their service's methods, resolve every reference inside themselves and agree with the
whole-protocol document.
"""

import json
import pathlib

import pytest
from openapi_spec_validator import validate

SCHEMA = pathlib.Path(__file__).resolve().parents[2] / "schema"
WHOLE = json.loads((SCHEMA / "vproto.openrpc.json").read_text())
SERVICES = sorted({method["name"].split(".")[0] for method in WHOLE["methods"]})


def references(value):
    """Every `$ref` string inside a JSON value."""
    if isinstance(value, dict):
        for key, member in value.items():
            if key == "$ref" and isinstance(member, str):
                yield member
            else:
                yield from references(member)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def test_every_service_has_its_documents():
    assert SERVICES, "the protocol has services"
    for service in SERVICES:
        assert (SCHEMA / "openrpc" / f"{service}.json").is_file(), service
    assert sorted(p.stem for p in (SCHEMA / "openrpc").glob("*.json")) == SERVICES


@pytest.mark.parametrize("path", sorted((SCHEMA / "openapi").glob("*.json")), ids=lambda p: p.stem)
def test_openapi_documents_are_valid_openapi_3_1(path):
    document = json.loads(path.read_text())
    assert document["openapi"].startswith("3.1")
    validate(document)
    routes = {
        (method["x-http"]["method"].lower(), method["x-http"]["path"]): method
        for method in WHOLE["methods"]
        if method["name"].startswith(path.stem + ".") and "x-http" in method
    }
    described = {(verb, route) for route, item in document["paths"].items() for verb in item}
    assert described == set(routes), "exactly the service's routes"
    for (verb, route), method in routes.items():
        operation = document["paths"][route][verb]
        assert operation["operationId"] == method["name"]
        body = method["x-http"].get("body")
        if body:
            param = next(p for p in method["params"] if p["name"] == body)
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert schema == param["schema"], "the body is the param itself"


@pytest.mark.parametrize("service", SERVICES)
def test_service_openrpc_documents_hold_only_their_service(service):
    document = json.loads((SCHEMA / "openrpc" / f"{service}.json").read_text())
    own = [m for m in WHOLE["methods"] if m["name"].split(".")[0] == service]
    assert document["methods"] == own
    own_events = [e for e in WHOLE.get("x-events", []) if e["name"].split(".")[0] == service]
    assert document.get("x-events", []) == own_events
    schemas = document["components"]["schemas"]
    for reference in references(document):
        name = reference.removeprefix("#/components/schemas/")
        assert name in schemas, f"{service}: dangling {reference}"
        assert schemas[name] == WHOLE["components"]["schemas"][name]
    reached = set()
    roots = [document["methods"], document.get("x-events", [])]
    pending = [r.removeprefix("#/components/schemas/") for root in roots for r in references(root)]
    while pending:
        name = pending.pop()
        if name not in reached:
            reached.add(name)
            pending.extend(r.removeprefix("#/components/schemas/") for r in references(schemas[name]))
    assert set(schemas) == reached, "no component the methods and events do not reach"
