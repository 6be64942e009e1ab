"""Credentials tests present when they call services directly over gRPC.

Tests use these helpers instead of spelling metadata out, so the identity scheme can
change in one place."""

from __future__ import annotations

from services.common.auth import service_credentials, user_credentials


def as_user(user_id: str) -> list[tuple[str, str]]:
    return list(user_credentials(user_id))


def as_service(name: str) -> list[tuple[str, str]]:
    return list(service_credentials(name))
