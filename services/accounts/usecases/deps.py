"""What every accounts use case works with (wired by ``app.build``), and the one way an
account comes to exist: opened on first use from the user's investor profile."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

from services.accounts.clients import MarketDataClient
from services.accounts.domain.account import Account
from services.accounts.domain.privacy import erased_user_hash
from services.accounts.domain.rules import DEFAULT_PROFILE, Profile, Tier
from services.accounts.store import AccountRepository, PrivacyRepository, UserRow
from services.common.clock import Clock
from services.common.errors import DomainError
from services.common.ids import new_id
from services.common.persistence.db import Database
from services.common.persistence.uow import UnitOfWork

T = TypeVar("T")


@dataclass(frozen=True)
class Deps:
    db: Database
    uow: Callable[[], AbstractAsyncContextManager[UnitOfWork]]
    clock: Clock
    market: MarketDataClient
    # The keyed-hash key of erasure tombstones (MBT_AUDIT_ACTOR_KEY).
    user_key: bytes


async def user_row(repo: AccountRepository, user_id: str, clock: Clock, key: bytes) -> UserRow:
    """The user, created Free with the default profile when first seen; an erased user is
    never created again (PERMISSION_DENIED)."""
    user = await repo.user(user_id)
    if user is None:
        if await PrivacyRepository(repo.session).is_erased(erased_user_hash(key, user_id)):
            raise DomainError("PERMISSION_DENIED", f"{user_id} was erased; this account no longer exists")
        now = clock.now()
        user = UserRow(
            user_id=user_id,
            tier=Tier.FREE.value,
            investor_profile=DEFAULT_PROFILE.value,
            created_at=now,
            updated_at=now,
        )
        await repo.add_user(user)
    return user


async def locked_account(
    repo: AccountRepository, user_id: str, clock: Clock, key: bytes, *, order_id: str | None = None
) -> Account:
    """The user's account, row-locked, opened from their profile on first use (concurrent
    first uses race on the account's unique user id: the loser's transaction fails with
    IntegrityError and is retried by ``with_account``)."""
    account = await repo.account_of(user_id, lock=True, order_id=order_id)
    if account is None:
        user = await user_row(repo, user_id, clock, key)
        account = Account.open(
            new_id("acct"), user_id, Profile(user.investor_profile), clock.now(), starting_cash=user.starting_cash
        )
    return account


async def with_account(deps: Deps, user_id: str, change: Callable[[Account], T], *, order_id: str | None = None) -> T:
    """Run ``change(account)`` on the user's locked account in one unit of work and save it;
    returns what ``change`` returned. A concurrent first use that opened the account is
    retried once against it."""
    attempt = 0
    while True:
        attempt += 1
        try:
            async with deps.uow() as uow:
                repo = AccountRepository(uow.session, uow.collect)
                account = await locked_account(repo, user_id, deps.clock, deps.user_key, order_id=order_id)
                result = change(account)
                await repo.save(account)
                return result
        except IntegrityError:
            if attempt >= 2:
                raise
