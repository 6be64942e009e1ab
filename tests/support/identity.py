"""Credentials tests present: gRPC metadata for calling services directly, and signing in
over REST.

Tests use these helpers instead of spelling credentials out, so the identity scheme can
change in one place. They sign real tokens with the development keys, which every
service and gateway built from test settings (no MBT_*_TOKEN_KEYS) verifies; ``TOKENS``
mints other kinds (expired, read-only, another tier) for the tests of security itself.

REST: ``await sign_in(mesh.http, "alice")`` signs a client in through the real
development login (the cookie then rides on every request of that client); for several
users on one client pass ``headers=rest_headers("bob")`` per request instead."""

from __future__ import annotations

import httpx

from services.common.security.auth import ACT_AS_USER, bearer
from services.common.security.tokens import TokenIssuer, TokenKeys

TOKENS = TokenIssuer(TokenKeys.development())
# Module constants hold tokens minted when the tests are collected: they must outlive the
# longest run (an hour was not enough for a whole suite on a loaded box, 79 minutes).
TEST_TOKEN_TTL_SECONDS = 24 * 3600
# For tests that make many calls as one user (polling, bursts, fuzzing) and are not about
# rate limits: the largest per-minute budget. Otherwise a test user is "free", like a new user.
BULK_TIER = "pro_plus"


def user_token(user_id: str, tier: str = "", scopes: tuple[str, ...] = ("read", "trade")) -> str:
    """A signed user token; ``tier`` free (also when empty), pro or pro_plus."""
    return TOKENS.user(user_id, tier=tier or "free", scopes=scopes, ttl_seconds=TEST_TOKEN_TTL_SECONDS)


def as_user(user_id: str, tier: str = "") -> list[tuple[str, str]]:
    """gRPC metadata of a signed-in user (a native client's bearer token)."""
    return bearer(user_token(user_id, tier))


def as_service(name: str) -> list[tuple[str, str]]:
    """gRPC metadata of an MBT service calling another."""
    return bearer(TOKENS.service(name, ttl_seconds=TEST_TOKEN_TTL_SECONDS))


def as_ops(operator: str, reading_user: str = "") -> list[tuple[str, str]]:
    """gRPC metadata of an operator, reading ``reading_user``'s data when given."""
    metadata = bearer(TOKENS.ops(operator, ttl_seconds=TEST_TOKEN_TTL_SECONDS))
    return metadata + ([(ACT_AS_USER, reading_user)] if reading_user else [])


def rest_headers(user_id: str, tier: str = "") -> dict[str, str]:
    """HTTP headers that sign a REST request in as ``user_id`` (a bearer token; browsers use
    the session cookie from ``POST /api/sessions`` or ``POST /api/sessions/dev`` instead)."""
    return {"Authorization": f"Bearer {user_token(user_id, tier)}"}


async def sign_in(http: httpx.AsyncClient, user_id: str) -> str:
    """Sign ``http`` in as ``user_id`` with ``POST /api/sessions/dev``; returns the session token."""
    response = await http.post("/api/sessions/dev", json={"user_id": user_id})
    assert response.status_code == 201, response.text
    return response.json()["data"]["token"]
