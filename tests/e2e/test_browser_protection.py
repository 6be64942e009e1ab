"""Security headers on every response, foreign origins refused on state-changing
requests, CORS closed unless configured."""

import pytest

from gateway.identity import SESSION_COOKIE
from tests.support.identity import rest_headers
from tests.support.mesh import TEST_HOST

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
    for method, path in (
        ("POST", "/api/mbt/orders"),
        ("DELETE", "/api/mbt/orders/ord_1"),
        ("PATCH", "/api/mbt/orders/ord_1"),
        ("POST", "/api/sessions/dev"),
        ("DELETE", "/api/sessions/current"),
    ):
        response = await client.request(method, path, headers=headers, json={})
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["code"] == "permission_denied"
    assert upstream.api_calls() == []
    assert SESSION_COOKIE not in client.cookies


async def test_only_configured_origins_may_change_state_whatever_the_host_says(client, upstream, tmp_path):
    """The web app's origin (MBT_PUBLIC_ORIGINS) may; an Origin that merely matches the Host
    header may not: Host is the client's word."""
    allowed = await client.post(
        "/api/sessions/dev", json={"user_id": "alice"}, headers={"Origin": "http://localhost:8080"}
    )
    assert allowed.status_code == 201, allowed.text
    same_as_host = await client.post(
        "/api/sessions/dev", json={"user_id": "alice"}, headers={"Origin": f"https://{TEST_HOST}"}
    )
    assert same_as_host.status_code == 403
    async with upstream.gateway(tmp_path, MBT_PUBLIC_ORIGINS=f"https://{TEST_HOST}") as configured:
        response = await configured.post(
            "/api/sessions/dev", json={"user_id": "alice"}, headers={"Origin": f"https://{TEST_HOST}"}
        )
        assert response.status_code == 201, response.text


async def test_a_dns_rebinding_page_cannot_use_the_development_login(upstream, tmp_path):
    """evil.example resolved to the gateway's address: the browser sends Host and Origin
    both naming evil.example, which an Origin == Host check would have let through."""
    async with upstream.gateway(tmp_path, MBT_ALLOWED_HOSTS="") as client:  # the default: loopback + web app
        for method, path in (
            ("POST", "/api/sessions/dev"),
            ("GET", "/api/sessions/current"),
            ("POST", "/api/sessions/passkeys/assertion/options"),
        ):
            response = await client.request(
                method,
                path,
                json={"user_id": "alice"} if method == "POST" else None,
                headers={"Host": "evil.example:8080", "Origin": "http://evil.example:8080"},
            )
            assert response.status_code == 400, (path, response.text)
            assert response.json()["error"]["code"] == "invalid_argument"
            assert response.headers["x-content-type-options"] == "nosniff"
        assert SESSION_COOKIE not in client.cookies
        for host in ("localhost:8080", "127.0.0.1:8080", "[::1]:8080", "LOCALHOST"):
            response = await client.post("/api/sessions/dev", json={"user_id": "alice"}, headers={"Host": host})
            assert response.status_code == 201, (host, response.text)


@pytest.mark.parametrize("host", ["evil.example", "", "mbt.test.evil.example", "mbt.test:notaport", "mbt.test@evil"])
async def test_a_host_that_is_not_configured_is_refused_before_anything_runs(client, upstream, host):
    response = await client.get("/api/mbt/orders", headers={**rest_headers("alice"), "Host": host})
    assert response.status_code == 400, response.text
    assert upstream.api_calls() == []


async def test_health_answers_any_host_because_probes_address_the_pod(client):
    response = await client.get("/healthz", headers={"Host": "10.1.2.3:8080"})
    assert set(response.json()) == {"data", "meta"}  # the scripted upstream has no health: "degraded"


@pytest.mark.parametrize("path", ["/api/mbt/orders/", "/api/sessions/current/", "/healthz/"])
async def test_no_redirect_is_built_from_the_host_header(client, path):
    response = await client.get(path, headers={**rest_headers("alice"), "Host": TEST_HOST}, follow_redirects=False)
    assert response.status_code == 404, response.text
    assert "location" not in response.headers


async def test_the_session_cookie_is_host_prefixed_secure_and_scoped_to_the_whole_host(client):
    response = await client.post("/api/sessions/dev", json={"user_id": "alice"})
    cookie = response.headers["set-cookie"]
    name, attributes = cookie.split("=", 1)[0], [part.strip().lower() for part in cookie.split(";")[1:]]
    assert name == "__Host-mbt_session" == SESSION_COOKIE
    assert {"secure", "httponly", "path=/", "samesite=strict"} <= set(attributes)
    assert not [part for part in attributes if part.startswith("domain")]


async def test_reads_from_any_origin_get_no_cors_grant(client):
    response = await client.get("/api/mbt/orders", headers={**rest_headers("alice"), "Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


async def test_cors_is_closed_by_default(client):
    preflight = await client.options(
        "/api/mbt/orders", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers


async def test_configured_cors_origins_get_credentialed_cors(upstream, tmp_path):
    async with upstream.gateway(tmp_path, MBT_CORS_ORIGINS="https://app.example") as client:
        preflight = await client.options(
            "/api/mbt/orders", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        response = await client.post(
            "/api/mbt/orders", json={}, headers={**rest_headers("alice"), "Origin": "https://app.example"}
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-ratelimit-remaining" in response.headers["access-control-expose-headers"]
        assert "origin" in response.headers["vary"].lower()
        other = await client.options(
            "/api/mbt/orders", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
