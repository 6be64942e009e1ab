"""Who is calling the gateway, and what it presents upstream on their behalf.

A caller presents a user token: the session cookie (browsers) or ``Authorization: Bearer``
(native clients and scripts; the header wins when both are sent). The token must verify,
and when it belongs to a session (``sid``) that session's row must still exist: a
sign-out refuses the very next request. Upstream, the gateway sends the same token as
``authorization: Bearer`` plus its own service token as ``x-mbt-forwarded-by``, so the
service knows the gateway already counted the request against the user's rate limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from gateway.sessions import SessionRow, Sessions
from services.common.security.auth import FORWARDED_BY, ServiceCredentials, bearer, bearer_token
from services.common.security.tokens import USER, Claims, InvalidToken, TokenVerifier

# ``__Host-``: browsers keep it only if Secure, Path=/ and without Domain, so no sibling
# subdomain can set or shadow it.
SESSION_COOKIE = "__Host-mbt_session"


@dataclass(frozen=True)
class Caller:
    claims: Claims
    token: str
    # None for a token that belongs to no session (issued by the mbt CLI).
    session: SessionRow | None

    @property
    def user_id(self) -> str:
        return self.claims.subject

    @property
    def tier(self) -> str:
        return self.claims.tier

    @property
    def elevated_until(self) -> int:
        """The session row's word when there is one (a step-up raises it), else the token's."""
        return self.session.elevated_until if self.session else self.claims.elevated_until


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        return bearer_token(header)
    return request.cookies.get(SESSION_COOKIE) or None


class GatewayIdentity:
    def __init__(self, verifier: TokenVerifier, sessions: Sessions, credentials: ServiceCredentials) -> None:
        self.verifier = verifier
        self.sessions = sessions
        self.credentials = credentials

    async def caller(self, request: Request, *, allow_expired: bool = False) -> Caller | None:
        """The signed-in caller, None when no credential is presented; ``InvalidToken`` for
        a credential that is presented but not good (expired, forged, signed out)."""
        token = presented_token(request)
        if token is None:
            return None
        claims = self.verifier.verify(token, (USER,), allow_expired=allow_expired)
        if allow_expired and not claims.session_id:
            claims = self.verifier.verify(token, (USER,))  # only a live session can vouch for an expired token
        session = None
        if claims.session_id:
            session = await self.sessions.get(claims.session_id)
            if session is None or session.user_id != claims.subject:
                raise InvalidToken("the session has ended; sign in again")
        return Caller(claims, token, session)

    def upstream_metadata(self, caller: Caller) -> list[tuple[str, str]]:
        return [*bearer(caller.token), (FORWARDED_BY, self.credentials.token())]
