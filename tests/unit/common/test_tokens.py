import base64
import hashlib
import hmac
import json

import jwt
import pytest

from services.common.config import Settings
from services.common.security.tokens import (
    CLAIM_TYPES,
    LEEWAY_SECONDS,
    InvalidToken,
    TokenIssuer,
    TokenKeys,
    TokenVerifier,
    development_key,
    new_key,
)
from tests.support.wall import Wall

OLD = ("k-old", b"o" * 32)
NEW = ("k-new", b"n" * 32)
SERVICE = ("k-svc", b"s" * 32)


@pytest.fixture
def wall():
    return Wall(1_800_000_000)


def pair(wall, user=(OLD,), service=(SERVICE,)):
    keys = TokenKeys.of(user, service)
    return TokenIssuer(keys, wall), TokenVerifier(keys, wall)


def test_each_kind_round_trips_with_its_claims(wall):
    issuer, verifier = pair(wall)
    user = verifier.verify(
        issuer.user("alice", tier="pro", ttl_seconds=900, session_id="ses_1", elevated_until=1_800_000_300)
    )
    assert (user.kind, user.subject, user.tier, user.scopes, user.session_id, user.elevated_until, user.expires_at) == (
        "user",
        "alice",
        "pro",
        {"read", "trade"},
        "ses_1",
        1_800_000_300,
        1_800_000_900,
    )
    ops = verifier.verify(issuer.ops("carol", ttl_seconds=60))
    assert (ops.kind, ops.subject, ops.scopes) == ("ops", "carol", {"read"})
    assert verifier.verify(issuer.service("orders")).kind == "service"


def test_tokens_name_their_key(wall):
    issuer, _ = pair(wall)
    assert jwt.get_unverified_header(issuer.user("a", tier="free", ttl_seconds=60))["kid"] == "k-old"
    assert jwt.get_unverified_header(issuer.service("orders"))["kid"] == "k-svc"


def test_rotation_signs_with_the_new_key_and_still_accepts_the_old(wall):
    old_issuer, _ = pair(wall, user=(OLD,))
    new_issuer, verifier = pair(wall, user=(NEW, OLD))
    old_token = old_issuer.user("alice", tier="free", ttl_seconds=60)
    new_token = new_issuer.user("alice", tier="free", ttl_seconds=60)
    assert jwt.get_unverified_header(new_token)["kid"] == "k-new"
    assert verifier.verify(old_token).subject == verifier.verify(new_token).subject == "alice"
    _, retired = pair(wall, user=(NEW,))
    with pytest.raises(InvalidToken, match="unknown key"):
        retired.verify(old_token)


def test_expiry_is_checked_against_the_given_clock_with_a_small_leeway(wall):
    issuer, verifier = pair(wall)
    token = issuer.user("alice", tier="free", ttl_seconds=60)
    wall.advance(60 + LEEWAY_SECONDS - 1)
    assert verifier.verify(token).subject == "alice"
    wall.advance(2)
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)
    assert verifier.verify(token, allow_expired=True).subject == "alice"


def test_a_token_from_the_future_is_refused(wall):
    issuer, verifier = pair(wall)
    token = issuer.user("alice", tier="free", ttl_seconds=60)
    wall.advance(-60)
    with pytest.raises(InvalidToken, match="not valid yet"):
        verifier.verify(token)


def sign(payload: dict, key: tuple[str, bytes], algorithm="HS256") -> str:
    return jwt.encode(payload, key[1], algorithm=algorithm, headers={"kid": key[0]})


def claims(wall, **changes) -> dict:
    return {
        "iss": "mbt",
        "aud": "mbt",
        "typ": "user",
        "sub": "alice",
        "tier": "free",
        "scope": "read trade",
        "iat": int(wall()),
        "exp": int(wall()) + 60,
        "jti": "j",
        **changes,
    }


def test_a_user_key_cannot_make_a_service_token_and_a_service_key_cannot_make_a_user_token(wall):
    _, verifier = pair(wall)
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(sign(claims(wall, typ="service", aud="mbt-internal"), OLD))
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(sign(claims(wall), SERVICE))
    with pytest.raises(InvalidToken):
        verifier.verify(sign(claims(wall, typ="service"), SERVICE))  # the user audience on the service ring


def test_kinds_are_enforced_where_they_are_asked_for(wall):
    issuer, verifier = pair(wall)
    with pytest.raises(InvalidToken, match="not accepted here"):
        verifier.verify(issuer.service("orders"), ("user",))
    with pytest.raises(InvalidToken, match="not accepted here"):
        verifier.verify(issuer.user("a", tier="free", ttl_seconds=60), ("service",))


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "elsewhere"},
        {"iss": "someone"},
        {"tier": "platinum"},
        {"sub": ""},
        {"typ": "ops", "scope": "read trade"},
        {"exp": "soon"},
        {"typ": "admin"},
    ],
)
def test_claims_that_do_not_add_up_are_refused(wall, changes):
    _, verifier = pair(wall)
    with pytest.raises(InvalidToken):
        verifier.verify(sign(claims(wall, **changes), OLD))


def sign_any(payload: dict, key: tuple[str, bytes]) -> str:
    """HS256 over any JSON payload (PyJWT itself refuses to encode some wrong types)."""

    def part(value) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    signing_input = part({"alg": "HS256", "typ": "JWT", "kid": key[0]}) + b"." + part(payload)
    signature = base64.urlsafe_b64encode(hmac.new(key[1], signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


def wrong_types(kind: type) -> list:
    return [value for value in (["user"], {"a": 1}, True, None, 1.5, "7", 7) if type(value) is not kind]


WRONG_CLAIMS = [(claim, value) for claim, kind in sorted(CLAIM_TYPES.items()) for value in wrong_types(kind)]


def test_the_token_helper_signs_what_the_verifier_accepts(wall):
    _, verifier = pair(wall)
    assert verifier.verify(sign_any(claims(wall, sid="ses_1", elv=int(wall())), OLD)).session_id == "ses_1"


@pytest.mark.parametrize(("claim", "value"), WRONG_CLAIMS, ids=[f"{c}={v!r}" for c, v in WRONG_CLAIMS])
def test_every_claim_of_a_signed_token_is_type_checked_before_use(wall, claim, value):
    """A signed token is input too: a claim of the wrong JSON type is InvalidToken, never a crash."""
    _, verifier = pair(wall)
    with pytest.raises(InvalidToken):
        verifier.verify(sign_any({**claims(wall, sid="ses_1", elv=int(wall())), claim: value}, OLD))


@pytest.mark.parametrize("value", wrong_types(str), ids=repr)
def test_a_token_whose_kind_is_not_a_string_is_refused_before_its_signature_is_read(wall, value):
    _, verifier = pair(wall)
    for key in (OLD, ("k-unknown", b"u" * 32)):
        with pytest.raises(InvalidToken):
            verifier.verify(sign_any(claims(wall, typ=value), key))


@pytest.mark.parametrize("token", ["", "a.b.c", "x" * 5000, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0."])
def test_malformed_tokens_are_refused(wall, token):
    _, verifier = pair(wall)
    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_alg_none_and_other_algorithms_are_refused(wall):
    _, verifier = pair(wall)
    with pytest.raises(InvalidToken):
        verifier.verify(jwt.encode(claims(wall), None, algorithm="none", headers={"kid": "k-old"}))
    with pytest.raises(InvalidToken):
        verifier.verify(sign(claims(wall), ("k-old", b"o" * 64), algorithm="HS512"))


def test_a_bad_signature_is_refused(wall):
    _, verifier = pair(wall)
    with pytest.raises(InvalidToken, match="signature"):
        verifier.verify(sign(claims(wall), ("k-old", b"x" * 32)))


def test_the_development_keys_are_the_default_and_the_same_in_every_process():
    keys = TokenKeys.from_settings(Settings.from_env({}))
    assert keys.user.signing == development_key("user") and keys.service.signing == development_key("service")
    assert development_key("user") != development_key("service")


def test_configured_keys_replace_the_development_ones():
    entry = new_key()
    settings = Settings.from_env({"MBT_USER_TOKEN_KEYS": entry})
    assert TokenKeys.from_settings(settings).user.signing[0] == entry.split(":")[0]
