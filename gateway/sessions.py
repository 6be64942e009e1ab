"""Sessions: a short-lived signed token plus a server-side row that can end it at once.

The row (``session:<id>`` in shared state: Redis, or this process's memory in the
embedded default) lives for ``MBT_SESSION_MAX_AGE_SECONDS``; the token it issues lives
``MBT_SESSION_TOKEN_TTL_SECONDS`` and names the row (``sid``). The gateway checks the row
on every request, so deleting it (sign-out) refuses the very next one; services check it
too when Redis is shared. A refresh issues a new token while the row lives. A fresh
passkey assertion (sign-in or step-up) marks the row, and the tokens it issues, elevated
for ``MBT_STEP_UP_SECONDS``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from services.common.config import Settings
from services.common.ids import new_id
from services.common.security.auth import SESSION_NAMESPACE
from services.common.security.shared_state import SharedState
from services.common.security.tiers import TierLookup
from services.common.security.tokens import TokenIssuer, WallTime

PASSKEY, DEV = "passkey", "dev"


@dataclass(frozen=True)
class SessionRow:
    session_id: str
    user_id: str
    tier: str
    # How the user signed in: "passkey" or "dev" (development login).
    method: str
    credential_id: str
    created_at: int
    expires_at: int
    elevated_until: int


@dataclass(frozen=True)
class IssuedToken:
    row: SessionRow
    token: str
    token_expires_at: int


class Sessions:
    def __init__(
        self, settings: Settings, state: SharedState, issuer: TokenIssuer, tiers: TierLookup, now: WallTime
    ) -> None:
        self.settings = settings
        self.state = state
        self.issuer = issuer
        self.tiers = tiers
        self.now = now

    async def start(self, user_id: str, method: str, *, credential_id: str = "", elevated: bool) -> IssuedToken:
        now = int(self.now())
        row = SessionRow(
            session_id=new_id("ses"),
            user_id=user_id,
            tier=await self.tiers.tier(user_id),
            method=method,
            credential_id=credential_id,
            created_at=now,
            expires_at=now + self.settings.session_max_age_seconds,
            elevated_until=now + self.settings.step_up_seconds if elevated else 0,
        )
        await self._save(row)
        return self.issue(row)

    async def get(self, session_id: str) -> SessionRow | None:
        raw = await self.state.get(SESSION_NAMESPACE, session_id)
        return None if raw is None else SessionRow(**raw)

    async def refresh(self, row: SessionRow) -> IssuedToken:
        """A new token for a live session, with the user's tier as accounts says now."""
        row = replace(row, tier=await self.tiers.tier(row.user_id))
        await self._save(row)
        return self.issue(row)

    async def elevate(self, row: SessionRow) -> IssuedToken:
        row = replace(row, elevated_until=int(self.now()) + self.settings.step_up_seconds)
        await self._save(row)
        return self.issue(row)

    async def end(self, session_id: str) -> None:
        await self.state.delete(SESSION_NAMESPACE, session_id)

    def issue(self, row: SessionRow) -> IssuedToken:
        now = int(self.now())
        ttl = min(self.settings.session_token_ttl_seconds, row.expires_at - now)
        token = self.issuer.user(
            row.user_id, tier=row.tier, ttl_seconds=ttl, session_id=row.session_id, elevated_until=row.elevated_until
        )
        return IssuedToken(row, token, now + ttl)

    async def _save(self, row: SessionRow) -> None:
        await self.state.put(SESSION_NAMESPACE, row.session_id, asdict(row), row.expires_at - self.now())
