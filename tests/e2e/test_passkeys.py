"""Passkeys through the real endpoints, with a software authenticator: registration,
sign-in, step-up, and every way an assertion must be refused (replay, wrong origin, wrong
RP id, a counter that went backwards, someone else's key, garbage)."""

import copy

import pytest

from gateway.identity import SESSION_COOKIE
from tests.support.passkeys import SoftPasskey, b64url

ORIGIN = "http://localhost:8080"  # the default MBT_PUBLIC_ORIGINS for the default gateway port


async def register(client, key: SoftPasskey, *, origin=ORIGIN, rp_id=None, user_name="alice@example.com"):
    options = await client.post("/api/sessions/passkeys/registration/options", json={"user_name": user_name})
    assert options.status_code == 200, options.text
    credential = key.create(options.json()["data"]["options"], origin, rp_id)
    return (
        options.json()["data"]["user_id"],
        credential,
        await client.post("/api/sessions/passkeys/registration", json={"credential": credential}),
    )


async def assertion(client, key: SoftPasskey, *, origin=ORIGIN, rp_id=None) -> dict:
    options = await client.post("/api/sessions/passkeys/assertion/options", json={})
    assert options.status_code == 200, options.text
    return key.get(options.json()["data"]["options"], origin, rp_id)


async def registered(client) -> tuple[str, SoftPasskey]:
    key = SoftPasskey()
    user_id, _, response = await register(client, key)
    assert response.status_code == 201, response.text
    return user_id, key


async def test_a_passkey_registers_signs_in_and_reaches_the_api(client, upstream):
    key = SoftPasskey()
    user_id, _, response = await register(client, key)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["user_id"] == user_id and user_id.startswith("usr_")
    assert response.json()["data"]["credential_id"] == b64url(key.device.credential_id)

    signed_in = await client.post("/api/sessions", json={"credential": await assertion(client, key)})
    assert signed_in.status_code == 201, signed_in.text
    session = signed_in.json()["data"]
    assert (session["user_id"], session["method"], session["tier"], session["elevated"]) == (
        user_id,
        "passkey",
        "free",
        True,
    )
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}={session['token']};")
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= {part.strip().lower() for part in cookie.split(";")}

    current = await client.get("/api/sessions/current")
    assert current.status_code == 200 and current.json()["data"]["session_id"] == session["session_id"]
    account = await client.get("/api/mbt/account")
    assert account.status_code == 200, account.text
    _, _, metadata = upstream.api_calls()[-1]
    assert metadata["authorization"] == f"Bearer {session['token']}"


async def test_a_replayed_assertion_is_refused(client):
    _, key = await registered(client)
    credential = await assertion(client, key)
    assert (await client.post("/api/sessions", json={"credential": credential})).status_code == 201
    client.cookies.clear()
    replay = await client.post("/api/sessions", json={"credential": credential})
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "unauthenticated"
    assert SESSION_COOKIE not in replay.headers.get("set-cookie", "")


async def test_a_replayed_registration_is_refused(client):
    key = SoftPasskey()
    _, credential, first = await register(client, key)
    assert first.status_code == 201
    again = await client.post("/api/sessions/passkeys/registration", json={"credential": credential})
    assert again.status_code == 401 and again.json()["error"]["code"] == "unauthenticated"


async def test_an_assertion_made_for_another_origin_is_refused(client):
    _, key = await registered(client)
    response = await client.post(
        "/api/sessions", json={"credential": await assertion(client, key, origin="https://evil.example")}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


async def test_an_assertion_for_another_relying_party_is_refused(client):
    _, key = await registered(client)
    response = await client.post(
        "/api/sessions", json={"credential": await assertion(client, key, rp_id="evil.example")}
    )
    assert response.status_code == 401
    assert "RP ID" in response.json()["error"]["message"]


async def test_a_signature_counter_that_went_backwards_is_refused(client):
    _, key = await registered(client)
    for _ in range(3):
        signed_in = await client.post("/api/sessions", json={"credential": await assertion(client, key)})
        assert signed_in.status_code == 201
    key.sign_count = 1  # a clone of the authenticator, still at an old counter
    response = await client.post("/api/sessions", json={"credential": await assertion(client, key)})
    assert response.status_code == 401
    assert "sign count" in response.json()["error"]["message"]


async def test_registration_from_another_origin_or_rp_is_refused_and_stores_nothing(client):
    for kwargs in ({"origin": "https://evil.example"}, {"rp_id": "evil.example"}):
        key = SoftPasskey()
        _, _, response = await register(client, key, **kwargs)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_argument"
        signed_in = await client.post("/api/sessions", json={"credential": await assertion(client, key)})
        assert signed_in.status_code == 401


async def test_an_unregistered_passkey_is_refused(client):
    stranger = SoftPasskey()
    stranger.device.cred_init("localhost", b"usr_nobody")
    response = await client.post("/api/sessions", json={"credential": await assertion(client, stranger)})
    assert response.status_code == 401


async def test_an_assertion_naming_another_user_is_refused(client):
    _, key = await registered(client)
    credential = await assertion(client, key)
    forged = copy.deepcopy(credential)
    forged["response"]["userHandle"] = b64url(b"usr_someone_else")
    assert (await client.post("/api/sessions", json={"credential": forged})).status_code == 401


NOT_A_CREDENTIAL = (400, "invalid_argument")
NO_SUCH_CHALLENGE = (401, "unauthenticated")  # shaped like an answer, to a challenge nobody issued


@pytest.mark.parametrize(
    "credential, refusal",
    [
        ({}, NOT_A_CREDENTIAL),
        ({"id": "x"}, NOT_A_CREDENTIAL),
        ({"response": "nope"}, NOT_A_CREDENTIAL),
        ({"response": {"clientDataJSON": "!!!"}}, NOT_A_CREDENTIAL),
        ({"response": {"clientDataJSON": b64url(b'{"challenge": 5}')}}, NOT_A_CREDENTIAL),
        ({"response": {"clientDataJSON": b64url(b"[]")}}, NOT_A_CREDENTIAL),
        (
            {"id": 7, "response": {"clientDataJSON": b64url(b'{"challenge": "AAAAAAAAAAAAAAAAAAAAAA"}')}},
            NO_SUCH_CHALLENGE,
        ),
    ],
)
async def test_garbage_credentials_are_refused_with_the_envelope(client, credential, refusal):
    for path in ("/api/sessions", "/api/sessions/passkeys/registration"):
        response = await client.post(path, json={"credential": credential})
        assert (response.status_code, response.json()["error"]["code"]) == refusal, (path, response.text)
        assert set(response.json()) == {"error"}


async def test_a_damaged_signature_with_a_live_challenge_is_refused(client):
    _, key = await registered(client)
    credential = await assertion(client, key)
    credential["response"]["signature"] = b64url(b"\x30\x02\x00\x00")
    response = await client.post("/api/sessions", json={"credential": credential})
    assert response.status_code == 401 and "Traceback" not in response.text


async def test_step_up_elevates_for_a_few_minutes(client, wall):
    _, key = await registered(client)
    signed_in = await client.post("/api/sessions", json={"credential": await assertion(client, key)})
    assert signed_in.json()["data"]["elevated"] is True
    wall.advance(301)  # past MBT_STEP_UP_SECONDS
    assert (await client.post("/api/sessions/refresh", json={})).json()["data"]["elevated"] is False
    stepped = await client.post("/api/sessions/step-up", json={"credential": await assertion(client, key)})
    assert stepped.status_code == 200, stepped.text
    assert stepped.json()["data"]["elevated"] is True
    assert stepped.json()["data"]["session_id"] == signed_in.json()["data"]["session_id"]
    assert (await client.get("/api/sessions/current")).json()["data"]["elevated"] is True


async def test_step_up_with_another_users_passkey_is_refused(client):
    _, mine = await registered(client)
    _, theirs = await registered(client)
    assert (await client.post("/api/sessions", json={"credential": await assertion(client, mine)})).status_code == 201
    response = await client.post("/api/sessions/step-up", json={"credential": await assertion(client, theirs)})
    assert response.status_code == 401
    assert (await client.get("/api/sessions/current")).json()["data"]["user_id"] != ""


async def test_adding_a_second_passkey_needs_an_elevated_session(client, wall):
    user_id, key = await registered(client)
    assert (await client.post("/api/sessions", json={"credential": await assertion(client, key)})).status_code == 201
    second = SoftPasskey()
    added_user, _, added = await register(client, second)  # just signed in: elevated
    assert added.status_code == 201 and added_user == user_id
    wall.advance(301)
    refused = await client.post("/api/sessions/passkeys/registration/options", json={})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
