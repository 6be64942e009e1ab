"""Identity on every hop: how a server learns who calls it, and what a client presents.

This is where real authentication plugs in. Today (mesh foundation) the gateway
forwards a development user id as metadata and services present their name; the
security issue replaces both with signed bearer tokens verified here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from services.common.context import ANONYMOUS, Identity

USER_HEADER = "x-mbt-user-id"
SERVICE_HEADER = "x-mbt-service"
# Development only: the user's tier (free, pro, pro_plus); signed tokens will carry it.
TIER_HEADER = "x-mbt-tier"


class Authenticator(Protocol):
    def authenticate(self, metadata: Mapping[str, str]) -> Identity:
        """The caller's identity from request metadata (ANONYMOUS when none is presented);
        raises ``DomainError("UNAUTHENTICATED", ...)`` for a credential that is presented but bad."""


class DevMetadataAuthenticator:
    """Development trust: identity comes from metadata the gateway and services set."""

    def authenticate(self, metadata: Mapping[str, str]) -> Identity:
        if metadata.get(SERVICE_HEADER):
            return Identity(kind="service", subject=metadata[SERVICE_HEADER])
        if metadata.get(USER_HEADER):
            return Identity(kind="user", subject=metadata[USER_HEADER], tier=metadata.get(TIER_HEADER, ""))
        return ANONYMOUS


def service_credentials(service: str) -> list[tuple[str, str]]:
    """Metadata a service presents when it calls another service."""
    return [(SERVICE_HEADER, service)]


def user_credentials(user_id: str, tier: str = "") -> list[tuple[str, str]]:
    """Metadata the gateway presents on behalf of a signed-in user."""
    return [(USER_HEADER, user_id), *([(TIER_HEADER, tier)] if tier else [])]
