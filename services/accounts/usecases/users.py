"""Users: their tier, investor profile and account type (internal and ops RPCs)."""

from __future__ import annotations

from services.accounts.domain.rules import AccountType, Profile, Tier
from services.accounts.domain.views import AccountHolding, User
from services.accounts.store import AccountRepository, PrivacyRepository, UserRow
from services.accounts.usecases.deps import Deps, user_row
from services.accounts.usecases.privacy import erasure_pending
from services.common.errors import invalid_argument, not_found


def as_user(row: UserRow) -> User:
    return User(row.user_id, Tier(row.tier), Profile(row.investor_profile), row.created_at, row.updated_at)


def snapshot(row: UserRow) -> dict[str, str]:
    return {"user_id": row.user_id, "tier": row.tier, "investor_profile": row.investor_profile}


MAX_HOLDINGS_PAGE = 500


class Users:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def holdings(self, after_account_id: str, size: int) -> tuple[list[AccountHolding], str]:
        """Up to ``size`` accounts (0: 500; at most 500) after ``after_account_id``, in id
        order, and the id to continue after ('' on the last page). invalid_argument for a
        negative size."""
        if size < 0:
            raise invalid_argument("page_size must not be negative", "page_size")
        limit = min(size or MAX_HOLDINGS_PAGE, MAX_HOLDINGS_PAGE)
        async with self.deps.db.reading() as session:
            rows = await AccountRepository(session).holdings(after_account_id, limit + 1)
        page = [AccountHolding(a, u, p, tuple(symbols), t) for a, u, p, symbols, t in rows[:limit]]
        return page, page[-1].account_id if len(rows) > limit else ""

    async def get(self, user_id: str) -> User:
        async with self.deps.db.reading() as session:
            row = await AccountRepository(session).user(user_id)
        if row is None:
            raise not_found("user", user_id)
        return as_user(row)

    async def update(
        self, user_id: str, tier: Tier | None, profile: Profile | None, account_type: AccountType | None
    ) -> User:
        """Change what is given (None keeps it); an account type changes only with no positions
        and no working orders. Audited."""
        if not user_id:
            raise invalid_argument("user_id is required", "user_id")
        async with self.deps.uow() as uow:
            repo = AccountRepository(uow.session, uow.collect)
            now = self.deps.clock.now()
            row = await user_row(repo, user_id, self.deps.clock, self.deps.user_key)
            if await PrivacyRepository(uow.session).pending_erasure(user_id) is not None:
                raise erasure_pending(user_id)
            before = snapshot(row)
            if tier is not None:
                row.tier = tier.value
            if profile is not None:
                row.investor_profile = profile.value
            if account_type is not None:
                account = await repo.account_of(user_id, lock=True)
                if account is not None:
                    account.change_type(account_type)
                    await repo.save(account)
            row.updated_at = now
            await uow.audit(
                action="update",
                entity_type="user",
                entity_id=user_id,
                user_id=user_id,
                before=before,
                after=snapshot(row),
                occurred_at=now,
            )
            return as_user(row)
