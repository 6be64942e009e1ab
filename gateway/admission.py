"""Admission of a request that needs a user: a verified caller, then one unit of that
user's per-minute budget (``services.common.ratelimit``; shared with native gRPC through
Redis). Refusals are ``DomainError``s: 401 ``unauthenticated`` or 429 ``rate_limited``."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from gateway.identity import Caller, GatewayIdentity
from services.common.errors import DomainError
from services.common.ratelimit import RateDecision, RateLimited, RateLimiter, limit_for, user_key


@dataclass(frozen=True)
class Admitted:
    caller: Caller
    decision: RateDecision

    def stamp(self, response: Response) -> Response:
        """Tell the client what is left of its budget (X-RateLimit-*)."""
        response.headers.update(self.decision.headers())
        return response


class Admission:
    def __init__(self, identity: GatewayIdentity, rate_limiter: RateLimiter) -> None:
        self.identity = identity
        self.rate_limiter = rate_limiter

    async def admit(self, request: Request, *, allow_expired: bool = False) -> Admitted:
        caller = await self.identity.caller(request, allow_expired=allow_expired)
        if caller is None:
            raise DomainError("UNAUTHENTICATED", "sign in first: this endpoint needs a session")
        decision = await self.rate_limiter.hit(user_key(caller.user_id), limit_for(caller.tier))
        if not decision.allowed:
            raise RateLimited(decision)
        return Admitted(caller, decision)
