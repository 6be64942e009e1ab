"""Sessions through the gateway: the development login, the current session, refresh,
sign-out taking effect at once, and every kind of bad token refused with the envelope."""

import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from gateway.identity import SESSION_COOKIE
from services.common.security.tokens import LEEWAY_SECONDS, TokenIssuer, TokenKeys, TokenVerifier, development_key
from tests.support.identity import TOKENS, sign_in
from tests.support.mesh import TEST_HOST

ROOT = Path(__file__).resolve().parents[2]


def assert_refused(response, status=401, code="unauthenticated"):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert body["error"]["request_id"] == response.headers["x-request-id"]


async def test_the_development_login_mints_a_real_session(client, upstream):
    response = await client.post("/api/sessions/dev", json={"user_id": "alice"})
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert (data["user_id"], data["method"], data["tier"], data["elevated"]) == ("alice", "dev", "free", False)
    assert data["session_id"].startswith("ses_") and data["token"]
    assert client.cookies[SESSION_COOKIE] == data["token"]
    current = await client.get("/api/sessions/current")
    assert current.json()["data"]["session_id"] == data["session_id"]
    assert current.json()["data"]["token"] is None  # never re-exposed after sign-in
    assert (await client.get("/api/mbt/orders")).status_code == 200
    assert upstream.api_calls()[-1][2]["authorization"] == f"Bearer {data['token']}"


async def test_the_tier_comes_from_accounts_and_rides_in_the_token(client, upstream):
    upstream.tiers["pat"] = "pro"
    token = await sign_in(client, "pat")
    assert TokenVerifier(TokenKeys.development()).verify(token).tier == "pro"
    response = await client.get("/api/mbt/orders")
    assert response.headers["x-ratelimit-limit"] == "600"


async def test_signing_out_refuses_the_same_cookie_and_token_at_once(client):
    token = await sign_in(client, "alice")
    cookie = client.cookies[SESSION_COOKIE]
    signed_out = await client.delete("/api/sessions/current")
    assert signed_out.status_code == 200 and signed_out.json()["data"]["ended"] is True
    cleared = signed_out.headers["set-cookie"]
    assert cleared.startswith(f'{SESSION_COOKIE}="";') and "Max-Age=0" in cleared and "Path=/" in cleared
    client.cookies.set(SESSION_COOKIE, cookie, domain=TEST_HOST)
    assert_refused(await client.get("/api/sessions/current"))
    assert_refused(await client.get("/api/mbt/account"))
    assert_refused(await client.post("/api/sessions/refresh", json={}))
    client.cookies.clear()
    assert_refused(await client.get("/api/mbt/account", headers={"Authorization": f"Bearer {token}"}))


async def test_an_expired_token_is_refused_but_its_live_session_can_refresh(client, wall):
    await sign_in(client, "alice")
    wall.advance(900 + LEEWAY_SECONDS + 1)  # past MBT_SESSION_TOKEN_TTL_SECONDS, well within the session
    assert_refused(await client.get("/api/mbt/account"))
    refreshed = await client.post("/api/sessions/refresh", json={})
    assert refreshed.status_code == 200, refreshed.text
    assert (await client.get("/api/mbt/account")).status_code == 200


async def test_a_session_past_its_lifetime_cannot_refresh(client, wall):
    await sign_in(client, "alice")
    wall.advance(43_201)
    assert_refused(await client.post("/api/sessions/refresh", json={}))


def forged(
    payload_changes: dict | None = None, *, key: bytes | None = None, kid: str = "dev-user", algorithm: str = "HS256"
) -> str:
    good = jwt.decode(TOKENS.user("alice", tier="free", ttl_seconds=600), options={"verify_signature": False})
    payload = {**good, **(payload_changes or {})}
    return jwt.encode(
        payload, key if key is not None else development_key("user")[1], algorithm=algorithm, headers={"kid": kid}
    )


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: forged(key=b"x" * 32), id="bad signature"),
        pytest.param(lambda: forged(kid="k-unknown"), id="unknown kid"),
        pytest.param(lambda: forged({"exp": 1_000_000}), id="expired"),
        pytest.param(lambda: forged({"aud": "mbt-internal"}), id="wrong audience"),
        pytest.param(lambda: forged({"typ": "service"}), id="user key posing as service"),
        pytest.param(lambda: TokenIssuer(TokenKeys.development()).service("gateway"), id="service token"),
        pytest.param(lambda: TokenIssuer(TokenKeys.development()).ops("carol", ttl_seconds=60), id="ops token on REST"),
        pytest.param(lambda: forged(key="", algorithm="none"), id="alg none"),
        pytest.param(lambda: forged({"typ": ["user"]}, key=b"x" * 32), id="bad signature, kind a list"),
        pytest.param(lambda: forged({"typ": ["user"]}), id="signed, kind a list"),
        pytest.param(lambda: forged({"elv": "soon"}), id="signed, elevated-until a string"),
        pytest.param(lambda: forged({"sid": {"id": 1}}), id="signed, session an object"),
        pytest.param(lambda: "not.a.token", id="garbage"),
        pytest.param(lambda: "x" * 5000, id="huge"),
    ],
)
@pytest.mark.parametrize("carrier", ["bearer", "cookie"])
async def test_bad_tokens_are_refused_with_the_envelope(client, upstream, token, carrier):
    value = token()
    if carrier == "bearer":
        response = await client.get("/api/mbt/account", headers={"Authorization": f"Bearer {value}"})
    else:
        client.cookies.set(SESSION_COOKIE, value, domain=TEST_HOST)
        response = await client.get("/api/mbt/account")
    assert_refused(response)
    assert upstream.api_calls() == []


async def test_an_authorization_header_that_is_not_bearer_is_refused(client):
    assert_refused(await client.get("/api/mbt/account", headers={"Authorization": "Basic YWxpY2U6cHc="}))


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"user_id": ""},
        {"user_id": "a b"},
        {"user_id": "x" * 129},
        {"user_id": 5},
        {"user_id": "alice", "tier": "pro_plus"},
        [1],
    ],
)
async def test_the_development_login_validates_its_input(client, body):
    assert_refused(await client.post("/api/sessions/dev", json=body), 400, "invalid_argument")


async def test_the_development_login_is_refused_when_off(upstream, tmp_path):
    async with upstream.gateway(tmp_path, MBT_DEV_LOGIN="0") as client:
        response = await client.post("/api/sessions/dev", json={"user_id": "alice"})
        assert_refused(response, 403, "permission_denied")
        assert SESSION_COOKIE not in client.cookies


def test_the_gateway_refuses_to_start_in_production_with_the_development_login(tmp_path):
    env = {**os.environ, "MBT_ENV": "production", "MBT_DEV_LOGIN": "1", "MBT_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "gateway"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "MBT_DEV_LOGIN" in result.stdout


@pytest.mark.parametrize("module", ["gateway", "services.orders", "services.marketdata"])
def test_a_process_listening_beyond_loopback_refuses_to_start_on_the_development_keys(tmp_path, module):
    env = {key: value for key, value in os.environ.items() if not key.startswith("MBT_")}
    env.update({"MBT_BIND_HOST": "0.0.0.0", "MBT_DATA_DIR": str(tmp_path)})
    result = subprocess.run(
        [sys.executable, "-m", module], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "MBT_USER_TOKEN_KEYS and MBT_SERVICE_TOKEN_KEYS are not set" in result.stdout
    assert list(tmp_path.iterdir()) == []  # refused before it opened anything


async def test_a_cli_token_without_a_session_is_its_own_session_view(client):
    token = TOKENS.user("mia", tier="pro_plus", ttl_seconds=600, scopes=("read",))
    current = await client.get("/api/sessions/current", headers={"Authorization": f"Bearer {token}"})
    assert current.status_code == 200
    data = current.json()["data"]
    assert (data["session_id"], data["method"], data["tier"], data["user_id"]) == (None, "token", "pro_plus", "mia")
    refresh = await client.post("/api/sessions/refresh", json={}, headers={"Authorization": f"Bearer {token}"})
    assert_refused(refresh, 400, "invalid_argument")


async def test_an_expired_token_without_a_session_cannot_be_refreshed(client, wall):
    token = TokenIssuer(TokenKeys.development(), now=wall).user("mia", tier="free", ttl_seconds=60)
    wall.advance(60 + LEEWAY_SECONDS + 1)
    assert_refused(await client.post("/api/sessions/refresh", json={}, headers={"Authorization": f"Bearer {token}"}))
