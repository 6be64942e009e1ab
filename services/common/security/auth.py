"""Identity on every hop: how a server learns who calls it, and what a client presents.

Every caller presents ``authorization: Bearer <token>`` (``services.common.security.tokens``):

* users: a session token (from the gateway's sign-in) or a CLI-issued user token;
* ops: an ops token, naming the user whose data it reads in ``x-mbt-act-as-user``
  (honoured for ops tokens only, and only on read-only RPCs: see ``access``);
* services: a service token, minted and cached by ``ServiceCredentials``.

The gateway forwards a signed-in user's token and adds its own service token as
``x-mbt-forwarded-by``: proof that the call already passed the gateway's rate limit, so the
service does not count it twice. Nothing else in the metadata says who the caller is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Protocol

from services.common.errors import DomainError
from services.common.rpc.context import ANONYMOUS, Identity
from services.common.security.shared_state import SharedState
from services.common.security.tokens import (
    OPS,
    SERVICE,
    SERVICE_TOKEN_TTL_SECONDS,
    USER,
    InvalidToken,
    TokenIssuer,
    TokenVerifier,
    WallTime,
)

AUTHORIZATION = "authorization"
FORWARDED_BY = "x-mbt-forwarded-by"
ACT_AS_USER = "x-mbt-act-as-user"
SESSION_NAMESPACE = "session"
USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")
_BEARER = re.compile(r"^Bearer ([A-Za-z0-9._~+/=-]+)$")


class Authenticator(Protocol):
    async def authenticate(self, metadata: Mapping[str, str]) -> Identity:
        """The caller's identity from request metadata (ANONYMOUS when none is presented);
        raises ``DomainError("UNAUTHENTICATED", ...)`` for a credential that is presented but bad."""


def bearer(token: str) -> list[tuple[str, str]]:
    return [(AUTHORIZATION, f"Bearer {token}")]


def bearer_token(header: str) -> str:
    match = _BEARER.match(header.strip())
    if match is None:
        raise InvalidToken("authorization must be 'Bearer <token>'")
    return match.group(1)


class TokenAuthenticator:
    """Verifies bearer tokens. With ``sessions`` (the shared state the gateway keeps session
    rows in) a signed-out session's token fails here too, at once; without it (a runtime
    built by hand in a test) a token is good until it expires."""

    def __init__(self, verifier: TokenVerifier, sessions: SharedState | None = None) -> None:
        self.verifier = verifier
        self.sessions = sessions

    async def authenticate(self, metadata: Mapping[str, str]) -> Identity:
        header = metadata.get(AUTHORIZATION)
        if not header:
            if metadata.get(ACT_AS_USER):
                raise DomainError("UNAUTHENTICATED", f"{ACT_AS_USER} needs an ops token")
            return ANONYMOUS
        token = bearer_token(header)
        claims = self.verifier.verify(token)
        act_as = metadata.get(ACT_AS_USER, "")
        if act_as and claims.kind != OPS:
            raise DomainError("PERMISSION_DENIED", f"only ops tokens may use {ACT_AS_USER}")
        if claims.kind == SERVICE:
            return Identity(kind=SERVICE, subject=claims.subject)
        if claims.kind == OPS:
            if act_as and not USER_ID.match(act_as):
                raise DomainError("INVALID_ARGUMENT", f"{ACT_AS_USER} is not a user id")
            return Identity(kind=OPS, subject=claims.subject, scopes=claims.scopes, acting_for=act_as)
        forwarded_by = ""
        if metadata.get(FORWARDED_BY):
            forwarded_by = self.verifier.verify(metadata[FORWARDED_BY], (SERVICE,)).subject
        # A forwarded call's session row was checked by the gateway a moment ago; a native one's is checked here.
        if claims.session_id and self.sessions is not None and not forwarded_by:
            row = await self.sessions.get(SESSION_NAMESPACE, claims.session_id)
            if row is None or row.get("user_id") != claims.subject:
                raise InvalidToken("the session has ended; sign in again")
        return Identity(
            kind=USER,
            subject=claims.subject,
            tier=claims.tier,
            scopes=claims.scopes,
            session_id=claims.session_id,
            elevated_until=claims.elevated_until,
            forwarded_by=forwarded_by,
            token=token,
        )


def on_behalf_of(caller: Identity, credentials: ServiceCredentials) -> list[tuple[str, str]]:
    """Metadata for calling another service for ``caller``, so that service applies the
    caller's own entitlements (market data's tier gating): a user's token plus this
    component's service token as ``x-mbt-forwarded-by`` (the call was counted against the
    user's budget already). Anyone else: nothing, and the channel presents the component's
    own service token (services and operators see everything they may read)."""
    if caller.kind != USER or not caller.token:
        return []
    return [*bearer(caller.token), (FORWARDED_BY, credentials.token())]


class ServiceCredentials:
    """What a component presents when it calls a service: a service token, re-minted
    when half its lifetime has passed. Used as a channel's metadata source."""

    def __init__(self, issuer: TokenIssuer, name: str, now: WallTime = time.time) -> None:
        self.issuer = issuer
        self.name = name
        self.now = now
        self._token = ""
        self._renew_at = 0.0

    def token(self) -> str:
        now = self.now()
        if now >= self._renew_at:
            self._token = self.issuer.service(self.name, ttl_seconds=SERVICE_TOKEN_TTL_SECONDS)
            self._renew_at = now + SERVICE_TOKEN_TTL_SECONDS / 2
        return self._token

    def __call__(self) -> list[tuple[str, str]]:
        return bearer(self.token())
