"""The retention purge of orders (``PurgeExpiredOrders``, run by the ``mbt.purge_expired``
job): a user's orders that reached a final status before the user's cutoff are deleted with
their fills and replace attempts, a batch per transaction, each batch audited with its
counts. Working orders (``new``, ``accepted``) are never deleted, whatever their age. The
cutoffs come from the job (the tier windows of README "Retention"); a repeat with the same
cutoffs finds nothing left to delete."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.common.retention import UserCutoff, batch_size
from services.orders.domain.model import FINAL
from services.orders.store import OrderRepository
from services.orders.usecases.deps import Deps


@dataclass(frozen=True)
class Purged:
    orders: int = 0
    fills: int = 0
    batches: int = 0


class OrderRetention:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def purge(self, users: Sequence[UserCutoff], requested_batch: int) -> Purged:
        """Delete each user's final orders (and fills) that ended before its cutoff, at
        most ``requested_batch`` orders a transaction; InvalidArgument for a bad batch size,
        before anything is deleted."""
        limit = batch_size(requested_batch)
        orders = fills = batches = 0
        for user in users:
            while True:
                async with self.deps.uow() as uow:
                    repo = OrderRepository(uow.session)
                    ids = await repo.ended_before(user.user_id, FINAL, user.cutoff, limit)
                    if not ids:
                        break
                    deleted_fills = await repo.delete_orders(ids)
                    await uow.audit(
                        action="retention_purge",
                        entity_type="order",
                        entity_id=ids[0],
                        user_id=user.user_id,
                        before={"orders": len(ids), "fills": deleted_fills, "first_order_id": ids[0]},
                        after=None,
                        occurred_at=self.deps.clock.now(),
                        cause=f"retention:{user.user_id}:{user.cutoff.isoformat()}:{ids[0]}",
                    )
                orders, fills, batches = orders + len(ids), fills + deleted_fills, batches + 1
        return Purged(orders, fills, batches)
