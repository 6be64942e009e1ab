"""Per-user request budgets by tier (DESIGN §8): Free 60, Pro 600, Pro+ 3000 per minute.

The algorithm is GCRA (the generic cell rate algorithm, a leaky bucket kept as one
number): each user has a "theoretical arrival time" ``tat``; a request costs one
emission interval (window / limit) and is allowed while ``tat`` stays within one window
of now. A full budget can be spent at once, then refills smoothly, one request per
interval, and ``Retry-After`` is exact. Times are integer microseconds so the arithmetic
is exact in Python and in Redis' Lua alike.

With ``MBT_REDIS_URL`` the state is one Redis key per user, updated atomically by a Lua
script, so every gateway replica and every service share one budget per user. Without it
each process keeps its own (the embedded default). Callers pass "now": replicas are
NTP-synchronised, and tests use a fixed clock instead of racing the real one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis

from services.common.config import Settings
from services.common.errors import DomainError
from services.common.security.tokens import WallTime

WINDOW_SECONDS = 60
TIER_LIMITS = {"free": 60, "pro": 600, "pro_plus": 3000}
_MICROS = 1_000_000
WINDOW_MICROS = WINDOW_SECONDS * _MICROS


def limit_for(tier: str) -> int:
    """Requests per minute for a tier; anything unknown gets the smallest budget."""
    return TIER_LIMITS.get(tier, TIER_LIMITS["free"])


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until the budget is whole again, and (when refused) until one request fits.
    reset_seconds: int
    retry_after_seconds: int

    def headers(self) -> dict[str, str]:
        """As HTTP response headers and gRPC trailing metadata (lower-case keys)."""
        values = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset_seconds),
        }
        if not self.allowed:
            values["retry-after"] = str(self.retry_after_seconds)
        return values


def interval_micros(limit: int) -> int:
    return WINDOW_MICROS // limit


def gcra(tat: int | None, now: int, limit: int) -> tuple[int | None, RateDecision]:
    """One request at ``now`` against stored ``tat``: (the new tat to store, or None when
    refused; the decision). Pure; the Redis script below is the same arithmetic."""
    interval = interval_micros(limit)
    start = max(tat or now, now)
    new_tat = start + interval
    if new_tat - now <= WINDOW_MICROS:
        return new_tat, decide(True, new_tat, now, limit)
    return None, decide(False, start, now, limit)


def decide(allowed: bool, tat: int, now: int, limit: int) -> RateDecision:
    interval = interval_micros(limit)
    used = max(0, tat - now)
    remaining = max(0, (WINDOW_MICROS - used) // interval)
    retry_after = 0 if allowed else math.ceil((used + interval - WINDOW_MICROS) / _MICROS)
    return RateDecision(allowed, limit, remaining, math.ceil(used / _MICROS), max(retry_after, 0 if allowed else 1))


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int) -> RateDecision: ...


class InProcessRateLimiter:
    def __init__(self, now: WallTime = time.time, max_keys: int = 100_000) -> None:
        self.now = now
        self.max_keys = max_keys
        self._tats: dict[str, int] = {}

    async def hit(self, key: str, limit: int) -> RateDecision:
        now = int(self.now() * _MICROS)
        if len(self._tats) >= self.max_keys:
            # A key whose tat has passed holds a whole budget: forgetting it changes nothing.
            self._tats = {k: tat for k, tat in self._tats.items() if tat > now}
        new_tat, decision = gcra(self._tats.get(key), now, limit)
        if new_tat is not None:
            self._tats[key] = new_tat
        return decision


# KEYS[1] the user's key; ARGV now, interval, window (microseconds). Returns {allowed, tat}.
_GCRA_SCRIPT = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now <= window then
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
  return {1, string.format('%d', new_tat)}
end
return {0, string.format('%d', tat)}
"""


class RedisRateLimiter:
    def __init__(self, client: redis.Redis, prefix: str, now: WallTime = time.time) -> None:
        self.script = client.register_script(_GCRA_SCRIPT)
        self.prefix = prefix
        self.now = now

    async def hit(self, key: str, limit: int) -> RateDecision:
        now = int(self.now() * _MICROS)
        allowed, tat = await self.script(
            keys=[f"{self.prefix}ratelimit:{key}"], args=[now, interval_micros(limit), WINDOW_MICROS]
        )
        return decide(bool(int(allowed)), int(tat), now, limit)


def build_rate_limiter(settings: Settings, client: redis.Redis | None, now: WallTime = time.time) -> RateLimiter:
    if client is not None:
        return RedisRateLimiter(client, settings.redis_key_prefix, now)
    return InProcessRateLimiter(now)


class RateLimited(DomainError):
    def __init__(self, decision: RateDecision, whose: str = "your plan allows") -> None:
        super().__init__(
            "RATE_LIMITED",
            f"too many requests: {whose} {decision.limit} per minute; retry in {decision.retry_after_seconds}s",
            headers=decision.headers(),
        )


def user_key(user_id: str) -> str:
    """One budget per user, shared by REST (gateway) and native gRPC (services)."""
    return f"user:{user_id}"


def client_key(address: str) -> str:
    """One budget per client address, for what needs no sign-in (the gateway's anonymous endpoints)."""
    return f"client:{address}"
