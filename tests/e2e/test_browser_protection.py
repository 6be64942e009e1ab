"""Security headers on every response, foreign origins refused on state-changing
requests, CORS closed unless configured."""

import pytest

from tests.support.identity import rest_headers

EXPECTED_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


async def test_every_kind_of_response_carries_the_security_headers(client):
    responses = [
        await client.get("/api/mbt/orders", headers=rest_headers("alice")),
        await client.get("/api/mbt/orders"),
        await client.post("/api/sessions/dev", json={"user_id": "alice"}),
        await client.get("/api/mbt/nowhere"),
        await client.put("/api/mbt/orders"),
        await client.get("/api/mbt/openapi.json"),
        await client.get("/healthz"),
        await client.get("/api/mbt/orders/" + "x" * 9000),
    ]
    for response in responses:
        for name, value in EXPECTED_HEADERS.items():
            assert response.headers.get(name) == value, (response.request.url, name)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "strict-transport-security" not in response.headers
        assert "access-control-allow-origin" not in response.headers


async def test_hsts_when_configured(upstream, tmp_path):
    async with upstream.gateway(tmp_path, MBT_HSTS_SECONDS="31536000") as client:
        response = await client.get("/healthz")
        assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost:8081"])
async def test_state_changing_requests_from_a_foreign_origin_are_refused(client, upstream, origin):
    headers = {**rest_headers("alice"), "Origin": origin}
    for method, path in (("POST", "/api/mbt/orders"), ("DELETE", "/api/mbt/orders/ord_1"),
                         ("PATCH", "/api/mbt/orders/ord_1"), ("POST", "/api/sessions/dev"),
                         ("DELETE", "/api/sessions/current")):
        response = await client.request(method, path, headers=headers, json={})
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["code"] == "permission_denied"
    assert upstream.api_calls() == []
    assert "mbt_session" not in client.cookies


async def test_the_web_apps_origin_and_the_gateways_own_host_may_change_state(client):
    for origin in ("http://localhost:8080", "https://mbt.test"):
        response = await client.post("/api/sessions/dev", json={"user_id": "alice"}, headers={"Origin": origin})
        assert response.status_code == 201, (origin, response.text)


async def test_reads_from_any_origin_get_no_cors_grant(client):
    response = await client.get("/api/mbt/orders", headers={**rest_headers("alice"), "Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


async def test_cors_is_closed_by_default(client):
    preflight = await client.options("/api/mbt/orders", headers={"Origin": "https://app.example",
                                                                  "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers


async def test_configured_cors_origins_get_credentialed_cors(upstream, tmp_path):
    async with upstream.gateway(tmp_path, MBT_CORS_ORIGINS="https://app.example") as client:
        preflight = await client.options("/api/mbt/orders", headers={"Origin": "https://app.example",
                                                                      "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        response = await client.post("/api/mbt/orders", json={},
                                     headers={**rest_headers("alice"), "Origin": "https://app.example"})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-ratelimit-remaining" in response.headers["access-control-expose-headers"]
        assert "origin" in response.headers["vary"].lower()
        other = await client.options("/api/mbt/orders", headers={"Origin": "https://evil.example",
                                                                  "Access-Control-Request-Method": "POST"})
        assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
