"""The OpenAPI 3.1 document: generated from the same bindings as the routes, following
the transcoding rules, served without auth; and the gateway answers exactly as it says,
under Schemathesis fuzzing (valid and invalid input) with no 5xx."""

import pytest

from gateway.routes import bindings
from mbt.common.v1 import errors_pb2
from tests.support.fuzz import fuzz
from tests.support.identity import BULK_TIER, rest_headers


@pytest.fixture
async def document(client):
    response = await client.get("/api/mbt/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


async def test_the_document_is_openapi_3_1_with_every_route_and_the_session_endpoints(document):
    assert document["openapi"] == "3.1.0"
    served = {(method, path) for method, path, _ in operations(document)}
    assert {(b.http_method, b.starlette_path) for b in bindings()} <= served
    assert {
        ("POST", "/api/sessions"),
        ("GET", "/api/sessions/current"),
        ("DELETE", "/api/sessions/current"),
        ("POST", "/api/sessions/refresh"),
        ("POST", "/api/sessions/step-up"),
        ("POST", "/api/sessions/dev"),
        ("POST", "/api/sessions/passkeys/registration/options"),
        ("POST", "/api/sessions/passkeys/registration"),
        ("POST", "/api/sessions/passkeys/assertion/options"),
        ("GET", "/healthz"),
        ("GET", "/api/mbt/openapi.json"),
    } <= served
    assert len({operation["operationId"] for _, _, operation in operations(document)}) == len(served)


async def test_auth_is_described_cookie_and_bearer(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["sessionCookie"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "__Host-mbt_session",
        "description": schemes["sessionCookie"]["description"],
    }
    assert schemes["bearerToken"]["scheme"] == "bearer"
    assert document["security"] == [{"sessionCookie": []}, {"bearerToken": []}]
    public = {(m, p) for m, p, op in operations(document) if op.get("security") == []}
    assert public == {
        ("POST", "/api/sessions"),
        ("POST", "/api/sessions/dev"),
        ("GET", "/healthz"),
        ("GET", "/api/mbt/openapi.json"),
        ("POST", "/api/sessions/passkeys/registration"),
        ("POST", "/api/sessions/passkeys/assertion/options"),
    }


async def test_the_error_envelope_lists_every_error_code(document):
    envelope = document["components"]["schemas"]["ErrorEnvelope"]
    codes = set(envelope["properties"]["error"]["properties"]["code"]["enum"])
    reasons = {
        v.name.removeprefix("ERROR_REASON_").lower() for v in errors_pb2.ErrorReason.DESCRIPTOR.values if v.number
    }
    assert reasons | {"unimplemented", "deadline_exceeded", "unavailable", "internal"} <= codes
    submit = document["paths"]["/api/mbt/orders"]["post"]["responses"]
    assert {"400", "401", "403", "404", "413", "429", "500", "501", "503", "default"} <= set(submit)
    assert "Retry-After" in submit["429"]["headers"]


async def test_schemas_follow_the_transcoding_rules(document):
    schemas = document["components"]["schemas"]
    order = schemas["mbt.orders.v1.Order"]
    assert set(order["required"]) == set(order["properties"])  # every field present
    assert order["additionalProperties"] is False
    assert order["properties"]["qty"]["type"] == ["string", "null"]
    assert order["properties"]["qty"]["pattern"] == r"^-?[0-9]+(\.[0-9]+)?$"
    assert order["properties"]["status"]["enum"] == [
        "new",
        "accepted",
        "filled",
        "canceled",
        "rejected",
        "expired",
        "held",
        None,
    ]
    assert order["properties"]["created_at"] == {"type": ["string", "null"], "format": "date-time"}
    assert order["properties"]["fills"]["items"] == {"$ref": "#/components/schemas/mbt.orders.v1.Fill"}
    assert order["properties"]["version"]["type"] == "integer"
    submit = document["paths"]["/api/mbt/orders"]["post"]
    body = submit["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False
    assert set(body["required"]) == {"qty", "order_type", "time_in_force"}  # side: single-leg only
    assert body["properties"]["side"] == {"type": ["string", "null"], "enum": ["buy", "sell", None]}
    data = submit["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    assert data["data"] == {"anyOf": [{"$ref": "#/components/schemas/mbt.orders.v1.Order"}, {"type": "null"}]}
    assert set(data["meta"]["required"]) == {"idempotent_replay", "request_id"}
    activities = {p["name"]: p for p in document["paths"]["/api/mbt/activities"]["get"]["parameters"]}
    assert {"type", "from", "to", "page_size", "page_token"} <= set(activities)
    assert activities["from"]["schema"]["format"] == "date-time"
    chain = {p["name"]: p for p in document["paths"]["/api/mbt/options/chain"]["get"]["parameters"]}
    assert set(chain) == {"underlying", "expiry"} and chain["expiry"]["schema"]["format"] == "date"
    listed = document["paths"]["/api/mbt/orders"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed["properties"]["meta"]["properties"]["next_page_token"] == {"type": ["string", "null"]}


async def test_without_a_session_every_endpoint_but_health_openapi_and_sign_in_is_401(client, document, upstream):
    for method, path, operation in operations(document):
        if operation.get("security") == [] or {} in operation.get("security", []):
            continue
        concrete = path.replace("{", "").replace("}", "")
        response = await client.request(method, concrete, json={} if method in ("POST", "PATCH") else None)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "unauthenticated"
    assert upstream.api_calls() == []


async def test_schemathesis_finds_no_5xx_and_every_response_matches_the_document(client, document, wall):
    failures = await fuzz(
        client,
        document,
        headers=rest_headers("fuzzer", BULK_TIER),
        between_operations=lambda: wall.advance(60),
        skip=frozenset({("GET", "/healthz")}),
    )  # health reports on upstreams this test fakes
    assert failures == []
