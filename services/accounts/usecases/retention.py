"""The retention purge of accounts' history (``PurgeExpiredHistory``, run by the
``mbt.purge_expired`` job): for each user, the ledger entries before the user's cutoff are
folded into the account's carried-forward entries and deleted (``domain.retention``: cash
and positions still reconcile with the ledger), positions closed before the cutoff are
deleted (open ones never) and so are end-of-day snapshots of sessions before it. A batch of
at most ``batch_size`` rows per transaction, each audited with its counts; a repeat with the
same cutoffs finds nothing left to purge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.accounts.domain.retention import CarriedForward
from services.accounts.store import AccountRepository
from services.accounts.usecases.deps import Deps
from services.common.errors import not_found
from services.common.retention import UserCutoff, batch_size


@dataclass(frozen=True)
class HistoryPurged:
    ledger_entries: int = 0
    closed_positions: int = 0
    snapshots: int = 0
    batches: int = 0


class HistoryRetention:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def carried_forward(self, user_id: str) -> tuple[str, CarriedForward | None]:
        """(account id, its carried-forward balance or None); NotFound for a user without
        an account."""
        async with self.deps.db.reading() as session:
            repo = AccountRepository(session)
            account_id = (await repo.account_ids_of([user_id])).get(user_id)
            if account_id is None:
                raise not_found("account", user_id)
            return account_id, await repo.carried_forward(account_id)

    async def purge(self, users: Sequence[UserCutoff], requested_batch: int) -> HistoryPurged:
        """Purge each user's history before its cutoff (users without an account have none);
        InvalidArgument for a bad batch size, before anything is deleted."""
        limit = batch_size(requested_batch)
        async with self.deps.db.reading() as session:
            accounts = await AccountRepository(session).account_ids_of([user.user_id for user in users])
        entries = positions = snapshots = batches = 0
        for user in users:
            account_id = accounts.get(user.user_id)
            if account_id is None:
                continue
            while True:
                async with self.deps.uow() as uow:
                    repo = AccountRepository(uow.session)
                    folded = await repo.fold_ledger_before(account_id, user.cutoff, limit)
                    closed = await repo.delete_closed_positions_before(account_id, user.cutoff, limit)
                    dropped = await repo.delete_snapshots_before(account_id, user.cutoff.date())
                    if not (folded or closed or dropped):
                        break
                    counts = {"ledger_entries": folded, "closed_positions": closed, "snapshots": dropped}
                    await uow.audit(
                        action="retention_purge",
                        entity_type="account",
                        entity_id=account_id,
                        user_id=user.user_id,
                        before=counts,
                        after=None,
                        occurred_at=self.deps.clock.now(),
                    )
                entries, positions, snapshots = entries + folded, positions + closed, snapshots + dropped
                batches += 1
        return HistoryPurged(entries, positions, snapshots, batches)
