"""The ledger's side of what the orders service tells (events, exactly once through the
inbox, in the unit of work of the delivery): a fill moves cash and the position once; an
order that ended or was replaced stops holding what it no longer needs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.accounts.domain.account import Account
from services.accounts.domain.rules import SUPERSEDED, FillTerms
from services.accounts.store import AccountRepository
from services.accounts.usecases.deps import Deps, locked_account
from services.common.persistence.uow import UnitOfWork


class Ledger:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def apply_fill(
        self, uow: UnitOfWork, user_id: str, order_version: int, fill_id: str, fill: FillTerms, at: datetime
    ) -> None:
        """Apply a fill (``Account.apply_fill``: the ledger refuses, loudly, what would break
        it); the same fill id applied before with other terms is refused too."""
        await self._apply_once(
            uow,
            user_id,
            fill_id,
            fill_id,
            fill,
            lambda a: a.apply_fill(fill_id, fill, order_version, at),
            order_version,
            at,
        )

    async def apply_spread_fill(
        self, uow: UnitOfWork, user_id: str, order_version: int, fill_id: str, legs: list[FillTerms], at: datetime
    ) -> None:
        """Apply a multi-leg fill all or none (``Account.apply_spread_fill``); its legs are
        applied once, under ``{fill_id}.{index}``, and refused loudly when reused with other terms."""
        await self._apply_once(
            uow,
            user_id,
            fill_id,
            f"{fill_id}.0",
            legs[0],
            lambda a: a.apply_spread_fill(fill_id, legs, order_version, at),
            order_version,
            at,
        )

    async def _apply_once(
        self,
        uow: UnitOfWork,
        user_id: str,
        fill_id: str,
        entry_id: str,
        first: FillTerms,
        apply: Callable[[Account], object],
        order_version: int,
        at: datetime,
    ) -> None:
        """``apply`` unless ledger entry ``entry_id`` exists: the same terms again change
        nothing, other terms are refused loudly."""
        repo = AccountRepository(uow.session, uow.collect)
        account = await locked_account(repo, user_id, self.deps.clock, self.deps.user_key, order_id=first.order_id)
        applied = await repo.applied_fill(entry_id)
        if applied is None:
            apply(account)
        elif applied != first:
            account.refuse_reused_fill(fill_id, first, order_version, at)
        await repo.save(account)

    async def order_ended(self, uow: UnitOfWork, user_id: str, order_id: str, reason: str) -> None:
        """An order was canceled or expired: every version's hold goes back."""
        await self._change(uow, user_id, order_id, lambda a: a.release(order_id, reason, self.deps.clock.now()))

    async def order_replaced(self, uow: UnitOfWork, user_id: str, order_id: str, version: int) -> None:
        """A replace took effect: the versions before ``version`` stop holding."""
        await self._change(
            uow, user_id, order_id, lambda a: a.release(order_id, SUPERSEDED, self.deps.clock.now(), below=version)
        )

    async def _change(self, uow: UnitOfWork, user_id: str, order_id: str, change: Callable[[Account], object]) -> None:
        repo = AccountRepository(uow.session, uow.collect)
        account = await locked_account(repo, user_id, self.deps.clock, self.deps.user_key, order_id=order_id)
        change(account)
        await repo.save(account)
