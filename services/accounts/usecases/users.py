"""Users: their tier, investor profile, account type and fill preference default (internal
and ops RPCs, and the user's own settings)."""

from __future__ import annotations

from decimal import Decimal

from services.accounts.domain.account import Account
from services.accounts.domain.rules import (
    DEFAULT_FILL_PREFERENCE,
    DEFAULT_PROFILE,
    STARTING_CASH,
    STARTING_CASH_CAP,
    AccountType,
    Profile,
    Tier,
    check_starting_cash,
)
from services.accounts.domain.views import AccountHolding, Settings, User
from services.accounts.store import AccountRepository, PrivacyRepository, UserRow
from services.accounts.usecases.deps import Deps, locked_account, user_row
from services.accounts.usecases.privacy import erasure_pending
from services.common.errors import DomainError, invalid_argument, not_found
from services.common.trading import FillPreference


def as_user(row: UserRow) -> User:
    return User(row.user_id, Tier(row.tier), Profile(row.investor_profile), row.created_at, row.updated_at)


def snapshot(row: UserRow) -> dict[str, str | None]:
    return {
        "user_id": row.user_id,
        "tier": row.tier,
        "investor_profile": row.investor_profile,
        "fill_preference": row.fill_preference,
        "starting_cash": None if row.starting_cash is None else f"{row.starting_cash:f}",
    }


def as_settings(row: UserRow | None, account: Account | None) -> Settings:
    """A user's settings from their row (None: not seen yet, the defaults) and their account
    (None: not opened yet, cash). The fill preference is the user's choice, else the default
    of the profile the account was opened with (what ``Account.fill_preference`` applies)."""
    profile = Profile(row.investor_profile) if row else DEFAULT_PROFILE
    chosen = FillPreference(row.fill_preference) if row and row.fill_preference else None
    tier = Tier(row.tier) if row else Tier.FREE
    if account is not None:
        starting_cash = account.starting_cash
    elif row is not None and row.starting_cash is not None:
        starting_cash = row.starting_cash
    else:
        starting_cash = STARTING_CASH[profile]
    return Settings(
        tier,
        profile,
        account.account_type if account else AccountType.CASH,
        chosen or DEFAULT_FILL_PREFERENCE[account.profile if account else profile],
        chosen is not None,
        starting_cash,
        STARTING_CASH_CAP[tier],
    )


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

    async def settings(self, user_id: str) -> Settings:
        """The user's own settings (``as_settings``); nothing is created by reading them."""
        async with self.deps.db.reading() as session:
            repo = AccountRepository(session)
            row = await repo.user(user_id)
            account = await repo.account_of(user_id)
        return as_settings(row, account)

    async def change_settings(
        self,
        user_id: str,
        profile: Profile | None,
        account_type: AccountType | None,
        fill_preference: FillPreference | None,
        starting_cash: Decimal | None = None,
    ) -> Settings:
        """The user's own change (``update``'s rules; never the tier); returns the settings
        after it."""
        await self.update(user_id, None, profile, account_type, fill_preference, starting_cash)
        return await self.settings(user_id)

    async def update(
        self,
        user_id: str,
        tier: Tier | None,
        profile: Profile | None,
        account_type: AccountType | None,
        fill_preference: FillPreference | None = None,
        starting_cash: Decimal | None = None,
    ) -> User:
        """Change what is given (None keeps it); an account type changes only with no positions
        and no working orders (``Account.change_type``: invalid_argument); the starting cash
        (USD) within the tier's cap (``check_starting_cash``: invalid_argument) and only
        before the account opens (failed_precondition). Nothing changes on a refusal.
        Audited, with the user's row before and after."""
        if not user_id:
            raise invalid_argument("user_id is required", "user_id")
        async with self.deps.uow() as uow:
            repo = AccountRepository(uow.session, uow.collect)
            now = self.deps.clock.now()
            row = await user_row(repo, user_id, self.deps.clock, self.deps.user_key)
            if await PrivacyRepository(uow.session).pending_erasure(user_id) is not None:
                raise erasure_pending(user_id)
            before = snapshot(row)
            if starting_cash is not None:
                amount = check_starting_cash(starting_cash, Tier(row.tier))
                opened = await repo.account_of(user_id)
                if opened is not None:
                    raise DomainError(
                        "FAILED_PRECONDITION",
                        "the starting cash is chosen before the account opens (its first order or first "
                        f"read); this account is open with {opened.starting_cash:.2f} and keeps it",
                        field="starting_cash",
                    )
                row.starting_cash = amount
            if tier is not None:
                row.tier = tier.value
            if profile is not None:
                row.investor_profile = profile.value
            if fill_preference is not None:
                row.fill_preference = fill_preference.value
            if account_type is not None:
                account = await locked_account(repo, user_id, self.deps.clock, self.deps.user_key)
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
