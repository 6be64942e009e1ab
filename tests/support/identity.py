"""Credentials tests present when they call services directly over gRPC.

Tests use these helpers instead of spelling metadata out, so the identity scheme can
change in one place."""

from __future__ import annotations

from services.common.auth import service_credentials, user_credentials


def as_user(user_id: str, tier: str = "") -> list[tuple[str, str]]:
    """A signed-in user; ``tier`` is free (also when empty), pro or pro_plus."""
    return list(user_credentials(user_id, tier))


def as_service(name: str) -> list[tuple[str, str]]:
    return list(service_credentials(name))
