"""Admission of a request that needs a user: a verified caller, then one unit of that
user's per-minute budget (``services.common.security.ratelimit``; shared with native gRPC through
Redis). A request that needs no sign-in but writes shared state (passkey challenges,
sessions) spends one unit of its client address's budget instead
(``MBT_ANONYMOUS_RATE_LIMIT``), so a flood cannot fill that state. Refusals are
``DomainError``s: 401 ``unauthenticated`` or 429 ``rate_limited``."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from gateway.identity import Caller, GatewayIdentity
from services.common.errors import DomainError
from services.common.security.ratelimit import RateDecision, RateLimited, RateLimiter, client_key, limit_for, user_key


@dataclass(frozen=True)
class Admitted:
    caller: Caller
    decision: RateDecision

    def stamp(self, response: Response) -> Response:
        """Tell the client what is left of its budget (X-RateLimit-*)."""
        response.headers.update(self.decision.headers())
        return response


class Admission:
    def __init__(self, identity: GatewayIdentity, rate_limiter: RateLimiter, anonymous_limit: int) -> None:
        self.identity = identity
        self.rate_limiter = rate_limiter
        self.anonymous_limit = anonymous_limit

    async def admit_anonymous(self, request: Request) -> RateDecision:
        """One unit of the client address's budget (the peer, or the client a trusted proxy
        names: ``MBT_TRUSTED_PROXIES``); ``RateLimited`` past it."""
        address = request.client.host if request.client else "unknown"
        decision = await self.rate_limiter.hit(client_key(address), self.anonymous_limit)
        if not decision.allowed:
            raise RateLimited(decision, "without signing in, one address may send")
        return decision

    async def admit(self, request: Request, *, allow_expired: bool = False) -> Admitted:
        caller = await self.identity.caller(request, allow_expired=allow_expired)
        if caller is None:
            raise DomainError("UNAUTHENTICATED", "sign in first: this endpoint needs a session")
        decision = await self.rate_limiter.hit(user_key(caller.user_id), limit_for(caller.tier))
        if not decision.allowed:
            raise RateLimited(decision)
        return Admitted(caller, decision)
