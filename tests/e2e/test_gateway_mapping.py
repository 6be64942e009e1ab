"""Every annotated route is reachable through the gateway and maps gRPC statuses to the
REST envelopes. The upstream here is a real gRPC server that answers whatever status
the test asks for, so the mapping is checked for every route independently of what
each service implements."""

import json

import grpc
import pytest

from gateway.routes import bindings
from services.common.errors import DomainError
from services.common.security.tokens import TokenKeys, TokenVerifier
from tests.support.identity import rest_headers

ROUTES = bindings()


@pytest.fixture
def gateway_client(upstream, tmp_path):
    return lambda **env: upstream.gateway(tmp_path, **env)


def call(client, binding, headers=None):
    path = binding.template
    for field_path in binding.path_params.values():
        path = path.replace("{" + field_path + "}", "x1")
    kwargs = {"headers": {**rest_headers("alice"), **(headers or {})}}
    if binding.body:
        kwargs["content"] = b"{}"
        kwargs["headers"]["Content-Type"] = "application/json"
    return client.request(binding.http_method, path, **kwargs)


ERROR_CASES = [
    (DomainError("UNIMPLEMENTED", "not yet"), 501, "unimplemented"),
    (DomainError("NOT_FOUND", "order 'x1' not found"), 404, "not_found"),
    (DomainError("INVALID_ARGUMENT", "qty must be positive"), 400, "invalid_argument"),
    (DomainError("INSUFFICIENT_BUYING_POWER", "needs $5,000.00"), 400, "insufficient_buying_power"),
    (DomainError("TRADING_DISABLED", "trading is disabled"), 503, "trading_disabled"),
    (DomainError("RATE_LIMITED", "slow down"), 429, "rate_limited"),
    (DomainError("CONFLICT", "retry"), 409, "conflict"),
    (grpc.StatusCode.UNIMPLEMENTED, 501, "unimplemented"),
    (grpc.StatusCode.UNAVAILABLE, 503, "unavailable"),
    (grpc.StatusCode.INTERNAL, 500, "internal"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "deadline_exceeded"),
]


@pytest.mark.parametrize("binding", ROUTES, ids=lambda b: f"{b.http_method} {b.template}")
async def test_each_route_reaches_its_rpc_and_maps_errors_to_the_envelope(gateway_client, upstream, binding):
    async with gateway_client() as client:
        for outcome, http_status, code in ERROR_CASES:
            upstream.outcome = outcome
            response = await call(client, binding)
            assert response.status_code == http_status, (outcome, response.text)
            body = response.json()
            assert set(body) == {"error"}
            assert body["error"]["code"] == code
            assert body["error"]["request_id"] == response.headers["x-request-id"]
            assert body["error"]["message"]
            method, _, metadata = upstream.api_calls()[-1]
            assert method == binding.grpc_path
            assert metadata["x-request-id"] == response.headers["x-request-id"]
            assert "Traceback" not in response.text


@pytest.mark.parametrize("binding", ROUTES, ids=lambda b: f"{b.http_method} {b.template}")
async def test_each_route_wraps_success_in_data_and_meta(gateway_client, upstream, binding):
    async with gateway_client() as client:
        upstream.outcome = None
        response = await call(client, binding)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"data", "meta"}
        assert body["meta"]["request_id"] == response.headers["x-request-id"]
        _, request, _ = upstream.api_calls()[-1]
        for field_path in binding.path_params.values():
            assert getattr(request, field_path) == "x1"


async def test_path_and_query_parameters_reach_the_request_with_the_callers_token(gateway_client, upstream):
    async with gateway_client() as client:
        await client.get(
            "/api/mbt/orders",
            params={"status": "filled", "page_size": "5", "page_token": "abc"},
            headers=rest_headers("alice"),
        )
        _, request, metadata = upstream.api_calls()[-1]
        assert (request.status, request.page_size, request.page_token) == (3, 5, "abc")
        verifier = TokenVerifier(TokenKeys.development())
        assert verifier.verify(metadata["authorization"].removeprefix("Bearer ")).subject == "alice"
        assert verifier.verify(metadata["x-mbt-forwarded-by"], ("service",)).subject == "gateway"


async def test_internal_details_of_a_500_are_not_leaked(gateway_client, upstream):
    async with gateway_client() as client:
        upstream.outcome = grpc.StatusCode.INTERNAL
        response = await client.get("/api/mbt/account", headers=rest_headers("alice"))
        assert "upstream said no" not in response.text


async def test_a_well_formed_incoming_request_id_is_kept_and_a_bad_one_replaced(gateway_client, upstream):
    async with gateway_client() as client:
        kept = await client.get("/api/mbt/account", headers={**rest_headers("a"), "X-Request-Id": "client-abc-123"})
        assert kept.headers["x-request-id"] == "client-abc-123"
        replaced = await client.get(
            "/api/mbt/account", headers={**rest_headers("a"), "X-Request-Id": "bad id with spaces"}
        )
        assert replaced.headers["x-request-id"].startswith("req_")


async def test_without_identity_every_api_route_is_401_and_the_upstream_is_not_called(gateway_client, upstream):
    async with gateway_client() as client:
        for binding in ROUTES:
            response = await client.request(binding.http_method, binding.template.replace("{", "").replace("}", ""))
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthenticated"
    assert upstream.api_calls() == []


async def test_the_foundations_development_header_identifies_nobody(gateway_client, upstream):
    async with gateway_client() as client:
        response = await client.get("/api/mbt/account", headers={"X-MBT-Dev-User": "alice"})
        assert response.status_code == 401
    assert upstream.api_calls() == []


@pytest.mark.parametrize(
    "method, path, kwargs, status, code",
    [
        ("GET", "/api/mbt/nowhere", {}, 404, "not_found"),
        ("PUT", "/api/mbt/orders", {}, 405, "method_not_allowed"),
        (
            "POST",
            "/api/mbt/orders",
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/api/mbt/orders",
            {"content": b"x" * 70_000, "headers": {"Content-Type": "application/json"}},
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/mbt/orders",
            {"content": json.dumps({"qty": 1}).encode(), "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/api/mbt/orders",
            {"content": b"qty=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            400,
            "invalid_argument",
        ),
        ("GET", "/api/mbt/orders?unknown=1", {}, 400, "invalid_argument"),
        (
            "POST",
            "/api/mbt/orders?status=filled",
            {"content": b"{}", "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_argument",
        ),
    ],
)
async def test_malformed_requests_get_the_error_envelope_and_change_nothing(
    gateway_client, upstream, method, path, kwargs, status, code
):
    async with gateway_client() as client:
        headers = {**rest_headers("alice"), **kwargs.pop("headers", {})}
        response = await client.request(method, path, headers=headers, **kwargs)
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        assert response.headers["x-request-id"] == response.json()["error"]["request_id"]
    assert upstream.api_calls() == []
