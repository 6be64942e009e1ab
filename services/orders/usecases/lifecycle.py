"""The rest of an order's life: a user's cancel, and every working order of a user
canceled before their erasure; what the matcher decides (fills, stops reached, ioc/fok
orders that could not fill); day orders expiring at their session's close, and any order
on an option contract at the contract's last trading time (the orders service is the one
owner of expiry: the matcher only drops them from its book); and the housekeeping loop
that finishes interrupted sagas."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from services.common.background import spawn
from services.common.errors import DomainError, invalid_argument, not_found
from services.orders.domain.model import Fill, Order, Status, same_execution
from services.orders.domain.rules import expiry_reason
from services.orders.store import OrderRepository
from services.orders.usecases.deps import Deps
from services.orders.usecases.family import change_in_family
from services.orders.usecases.replace import ReplaceSaga
from services.orders.usecases.submit import SubmitSaga

log = logging.getLogger(__name__)

RESUME_EVERY_SECONDS = 2.0
CANCEL_BATCH = 500
ACCOUNT_ERASED = "account_erased"
EXPIRE_EVERY_SECONDS = 0.25


@dataclass(frozen=True)
class UserOrdersCanceled:
    """What ``cancel_user_orders`` did: orders it canceled, the user's orders still working
    after it (a submit that raced it), and the user's events not yet acknowledged by every
    subscriber (until then the matcher may still hold a canceled order in its book)."""

    canceled: int
    working: int
    undelivered_events: int


class Lifecycle:
    def __init__(self, deps: Deps, activate: Callable[[Order], Awaitable[object]] | None = None) -> None:
        self.deps = deps
        # Submits an exit its entry's fill activated (the submit saga's completion); the
        # activations running, kept referenced until they end.
        self.activate = activate
        self._activations: set[asyncio.Future[None]] = set()

    async def cancel(self, user_id: str | None, order_id: str, reason: str = "user") -> Order:
        """Cancel ``order_id`` (a user's own, or any with ``user_id`` None); idempotent. A
        filled or expired order is ``order_not_cancelable``. An entry's exits are canceled
        with it, and an exit of a bracket or oco pair cancels its sibling, in the same
        transaction (``classes.linked_changes``)."""
        if user_id is not None:
            self.deps.check_switches(new_exposure=False)
        now = self.deps.clock.now()
        async with self.deps.uow() as uow:
            repo = OrderRepository(uow.session, uow.collect)
            order, _ = await change_in_family(repo, order_id, lambda o: o.cancel(reason, now), now, user_id=user_id)
            return order

    async def cancel_user_orders(self, user_id: str, reason: str = ACCOUNT_ERASED) -> UserOrdersCanceled:
        """Cancel every working order of ``user_id`` through ``cancel`` (so the matcher drops
        each from its book and accounts releases its hold when they receive the
        OrderCanceled event), for the GDPR erasure (README, Security, "Privacy"). Idempotent:
        a repeat cancels nothing. An order that filled meanwhile is left as it is."""
        if not user_id:
            raise invalid_argument("user_id is required", "user_id")
        canceled = 0
        seen: set[str] = set()
        while True:
            async with self.deps.db.reading() as session:
                working = await OrderRepository(session).working_of_user(user_id, limit=CANCEL_BATCH)
            fresh = [order_id for order_id in working if order_id not in seen]
            if not fresh:
                break
            for order_id in fresh:
                seen.add(order_id)
                try:
                    await self.cancel(None, order_id, reason)
                except DomainError as exc:
                    if exc.reason != "ORDER_NOT_CANCELABLE":
                        raise
                    continue
                canceled += 1
        async with self.deps.db.reading() as session:
            repo = OrderRepository(session)
            left = len(await repo.working_of_user(user_id, limit=CANCEL_BATCH))
            undelivered = await repo.undelivered_events(user_id)
        return UserOrdersCanceled(canceled=canceled, working=left, undelivered_events=undelivered)

    async def record_fill(self, fill: Fill) -> tuple[Order, bool]:
        """Record what the matcher decided; returns (the order, whether the fill was already
        recorded). The same fill id with other terms is ``idempotency_key_reused``."""
        async with self.deps.uow() as uow:
            repo = OrderRepository(uow.session, uow.collect)
            recorded = await repo.get_fill(fill.fill_id)
            if recorded is not None:
                if not same_execution(recorded, fill):
                    raise DomainError(
                        "IDEMPOTENCY_KEY_REUSED",
                        f"fill {fill.fill_id} was recorded before with other terms; it is not recorded again",
                    )
                return await repo.load(fill.order_id, with_fills=True), True
            order, linked = await change_in_family(repo, fill.order_id, lambda o: o.fill(fill), fill.filled_at)
        self._submit_activated([o for o in linked if o.status is Status.NEW])
        return order, False

    def _submit_activated(self, exits: list[Order]) -> None:
        """Submit the exits an entry's fill activated, in the background (the matcher's
        RecordFill does not wait for accounts); housekeeping finishes any left ``new``."""
        if self.activate is None:
            return
        for order in exits:
            spawn(self._activate(order), self._activations)

    async def _activate(self, order: Order) -> None:
        assert self.activate is not None
        try:
            await self.activate(order)
        except DomainError as exc:
            log.info("exit not working yet", extra={"fields": {"order_id": order.order_id, "reason": exc.reason}})

    async def mark_triggered(self, order_id: str, at: datetime) -> Order:
        """The matcher saw the stop reached without a fill; idempotent."""
        async with self.deps.uow() as uow:
            repo = OrderRepository(uow.session, uow.collect)
            order = await repo.get(order_id, lock=True)
            if order is None:
                raise not_found("order", order_id)
            return await repo.save(order.trigger(at))

    async def expire_due(self, as_of: datetime | None = None) -> int:
        """Expire the working orders whose ``expires_at`` is by ``as_of`` (now at most): day
        orders at their session's close, and orders of any time in force on an option
        contract at its last trading time, with the cancel reason ``contract_expired``
        (``expiry_reason``). Returns how many expired."""
        now = self.deps.clock.now()
        as_of = min(as_of, now) if as_of else now
        async with self.deps.db.reading() as session:
            due = await OrderRepository(session).due_to_expire(as_of, limit=500)
        expired = 0
        for candidate in due:
            if candidate.expires_at is None:
                continue
            try:
                last_trades = await self.deps.last_trades(candidate.spec, expired_too=True)
            except DomainError as exc:  # this order waits for the next pass; the others go on
                log.info(
                    "order not expired yet",
                    extra={"fields": {"order_id": candidate.order_id, "reason": exc.reason}},
                )
                continue
            reason = expiry_reason(candidate.expires_at, last_trades)
            async with self.deps.uow() as uow:
                repo = OrderRepository(uow.session, uow.collect)
                order, _ = await change_in_family(
                    repo,
                    candidate.order_id,
                    partial(_expire_if_due, reason=reason, due=candidate.expires_at),
                    candidate.expires_at,
                )
            expired += order.status is Status.EXPIRED and order.expired_at == candidate.expires_at
        return expired


def _expire_if_due(order: Order, reason: str, due: datetime) -> Order:
    """``order`` expired at ``due``, unless it changed since it was found due."""
    return order.expire(reason) if order.status is Status.ACCEPTED and order.expires_at == due else order


async def run_housekeeping(lifecycle: Lifecycle, submits: SubmitSaga, replaces: ReplaceSaga) -> None:
    """Background: expire day orders at the close, finish interrupted submits and replaces."""
    last_resume = 0.0
    loop = asyncio.get_running_loop()
    while True:
        try:
            await lifecycle.expire_due()
            if loop.time() - last_resume >= RESUME_EVERY_SECONDS:
                last_resume = loop.time()
                await submits.resume_new()
                await replaces.resume()
        except asyncio.CancelledError:
            raise
        except DomainError as exc:
            log.info("housekeeping waits", extra={"fields": {"reason": exc.reason}})
        except Exception:
            log.exception("housekeeping failed; retrying")
        await asyncio.sleep(EXPIRE_EVERY_SECONDS)
