"""The replace saga: the new version's terms are recorded as pending, accounts holds buying
power for them beside the current version's, then the order takes them (version +1,
OrderReplaced, which releases the old version's hold). A replace cut short stays pending and
is finished by the next replace or by housekeeping; one refused for good is abandoned and
whatever it held is released — a hold never outlives the version it was taken for."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from services.common.errors import DomainError
from services.common.instruments import parse_symbol
from services.common.trading import AssetClass
from services.orders.domain.model import Order, Replacement, Status
from services.orders.domain.options import validate_mleg_spec, validate_option_spec
from services.orders.domain.rules import (
    ReplaceTerms,
    check_market_hours,
    held_price,
    order_expiry,
    replaced_collar,
    replacement,
)
from services.orders.store import OrderRepository
from services.orders.usecases.deps import DEFINITIVE_REFUSALS, Deps

log = logging.getLogger(__name__)

# A replace belongs to the request that started it (or to its resumer) for this many RPC
# timeouts of wall time; after that housekeeping or the next replace may finish it.
LEASE_TIMEOUTS = 2


class ReplaceSaga:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def replace(self, user_id: str, order_id: str, terms: ReplaceTerms) -> Order:
        """Replace ``user_id``'s working order with ``terms`` (refusals raise DomainError:
        order_not_replaceable, insufficient_buying_power, conflict while another replace of
        the order is in flight, limit_price_sign for a multi-leg limit whose sign contradicts
        its structure's market, invalid_argument…). A multi-leg order changes its net limit,
        its number of spreads and its time in force; its legs never change."""
        deps = self.deps
        deps.check_switches(new_exposure=True)
        order = await self._load(order_id, user_id)
        if order.status is Status.ACCEPTED and order.pending is not None:
            order = await self._settle_interrupted(order)
        if order.status is not Status.ACCEPTED:
            raise DomainError("ORDER_NOT_REPLACEABLE", f"cannot replace an order that is {order.status.value}")
        spec = replacement(order, terms)
        if spec.is_multileg:
            # The same rules as at submit (negative and zero limits included), on the order's
            # own legs: the contracts' checks, then the limit's sign on the legs' quotes now.
            spec, structure = validate_mleg_spec(spec, [parse_symbol(leg.symbol) for leg in spec.legs])
            await deps.checked_spread_limit(spec, structure)
        elif spec.asset_class is AssetClass.US_OPTION:
            spec = validate_option_spec(spec, parse_symbol(spec.symbol))
        now = deps.clock.now()
        session = await deps.market.session(now)
        check_market_hours(spec, now, session)
        last_trades = await deps.last_trades(spec)
        async with deps.uow() as uow:
            repo = OrderRepository(uow.session, uow.collect)
            current = await repo.load(order_id, lock=True)
            if current.version != order.version:
                raise DomainError(
                    "ORDER_NOT_REPLACEABLE", "the order changed while it was being replaced; fetch it and try again"
                )
            expires_at = (
                current.expires_at
                if spec.time_in_force is current.spec.time_in_force
                else order_expiry(spec.time_in_force, session.close_at, last_trades)
            )
            # A version an abandoned attempt used is never used again: accounts may still hear
            # of that attempt, and must not mistake it for this one.
            version = max(current.version, await repo.last_replacement_version(order_id)) + 1
            pending = Replacement(
                version=version,
                spec=spec,
                collar_price=replaced_collar(current, spec, deps.settings.market_order_collar_pct),
                expires_at=expires_at,
                requested_at=now,
                lease_until=self._lease_until(),
            )
            current.begin_replace(pending)  # refuses a second replace in flight
            await repo.add_replacement(order_id, pending)
        return await self._run(order, pending, resumed=False)

    async def _load(self, order_id: str, user_id: str | None = None) -> Order:
        async with self.deps.db.reading() as session:
            return await OrderRepository(session).load(order_id, user_id=user_id)

    async def _settle_interrupted(self, order: Order) -> Order:
        """Finish (or abandon) a replace that was cut short, before a new one starts."""
        if order.pending is None:
            return order
        pending = await self._take_over(order.order_id, order.pending.version)
        if pending is None:
            raise DomainError("CONFLICT", f"order {order.order_id} is being replaced right now; retry in a few seconds")
        try:
            await self._run(order, pending, resumed=True)
        except DomainError as exc:
            if exc.reason not in DEFINITIVE_REFUSALS | {"ORDER_NOT_REPLACEABLE"}:
                raise
        return await self._load(order.order_id, order.user_id)

    def _lease_until(self) -> datetime:
        return self.deps.wall.now() + timedelta(seconds=LEASE_TIMEOUTS * self.deps.timeout)

    async def _take_over(self, order_id: str, version: int) -> Replacement | None:
        """Lease an interrupted replace to finish it; None while its owner may still be at work."""
        async with self.deps.db.writing() as session:
            repo = OrderRepository(session)
            if not await repo.lease_replacement(order_id, version, self.deps.wall.now(), self._lease_until()):
                return None
            order = await repo.load(order_id)
            return order.pending if order.pending is not None and order.pending.version == version else None

    async def _run(self, order: Order, pending: Replacement, *, resumed: bool) -> Order:
        deps = self.deps
        try:
            await deps.accounts.hold(
                order, pending.version, pending.spec, held_price(pending.spec, pending.collar_price)
            )
        except DomainError as refusal:
            if refusal.reason not in DEFINITIVE_REFUSALS:
                raise  # stays pending: finished later, by the next replace or by housekeeping
            if resumed:
                # An earlier attempt's request may have held something, or may still arrive:
                # release that version for good (a late reservation of it is then refused).
                await deps.accounts.release(order, pending.version)
            async with deps.db.writing() as session:
                repo = OrderRepository(session)
                if resumed:
                    await repo.close_replacement(order.order_id, pending.version, "abandoned")
                else:  # refused on its only request: nothing was held, the version may serve again
                    await repo.forget_replacement(order.order_id, pending.version)
            raise
        async with deps.uow() as uow:
            repo = OrderRepository(uow.session, uow.collect)
            current = await repo.load(order.order_id, lock=True, with_fills=True)
            if current.version == pending.version:
                return current  # a concurrent resume committed it
            if (
                current.status is not Status.ACCEPTED
                or current.pending is None
                or current.pending.version != pending.version
            ):
                raise DomainError(
                    "ORDER_NOT_REPLACEABLE", f"the order was {current.status.value} before the replace took effect"
                )
            await repo.close_replacement(order.order_id, pending.version, "committed")
            return await repo.save(current.replace_terms(deps.clock.now()))

    async def resume(self) -> int:
        """Finish (or abandon) replaces whose owner stopped: housekeeping, and tests."""
        async with self.deps.db.reading() as session:
            unleased = await OrderRepository(session).unleased_replacements(self.deps.wall.now(), limit=100)
        resumed = 0
        for order_id, version in unleased:
            pending = await self._take_over(order_id, version)
            if pending is None:
                continue
            try:
                await self._run(await self._load(order_id), pending, resumed=True)
                resumed += 1
            except DomainError as exc:
                log.info(
                    "replace not finished",
                    extra={"fields": {"order_id": order_id, "version": version, "reason": exc.reason}},
                )
        return resumed
