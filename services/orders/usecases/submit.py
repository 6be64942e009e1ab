"""The submit saga (DESIGN §4): the order is stored as ``new``, accounts holds buying power
for its terms, then the order is ``accepted`` — or ``rejected`` with the reason. A submit a
dependency cut short stays ``new`` and is finished by housekeeping or by the client's retry
with the same ``client_order_id``, whichever comes first."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from functools import partial

from sqlalchemy.exc import IntegrityError

from services.common.errors import DomainError
from services.common.ids import new_id
from services.common.instruments import parse_symbol
from services.common.spreads import natural
from services.common.trading import AssetClass, OrderType
from services.orders.domain.classes import (
    check_against_entry,
    checked_exit,
    entry_base,
    exit_group_of,
    exit_specs,
    exits_of,
    family_id,
    validate_class,
)
from services.orders.domain.model import Instrument, Order, OrderClass, OrderSpec, Status, spec_digest
from services.orders.domain.options import spread_collar, validate_mleg_spec, validate_option_spec
from services.orders.domain.rules import (
    check_market_hours,
    collar_price,
    held_price,
    market_reference,
    order_expiry,
    validate_spec,
)
from services.orders.store import OrderRepository
from services.orders.usecases.deps import DEFINITIVE_REFUSALS, Deps
from services.orders.usecases.family import change_in_family

log = logging.getLogger(__name__)

CONTRACT_MULTIPLIER = Decimal(100)
# An activated exit waits for accounts to apply its entry's fill (``conflict`` meanwhile):
# tried again after these delays, then left to housekeeping.
ACTIVATION_RETRY_SECONDS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def checked_for(spec: OrderSpec, instrument: Instrument, now: datetime) -> OrderSpec:
    """``spec`` checked against what market data says of its symbol: an option contract by
    the option rules (``validate_option_spec``; ``contract_expired`` from its last trade on),
    stock as us_equity; ``invalid_argument`` for an index or a class that does not match,
    ``symbol_not_tradable`` for a symbol no quote could ever fill."""
    if instrument.asset_class is AssetClass.US_OPTION:
        if instrument.last_trade_at is not None and now >= instrument.last_trade_at:
            raise DomainError(
                "CONTRACT_EXPIRED",
                f"{instrument.symbol} stopped trading at {instrument.last_trade_at:%Y-%m-%d %H:%M} UTC",
                field="symbol",
            )
        spec = validate_option_spec(spec, parse_symbol(instrument.symbol))
    elif instrument.asset_class is not AssetClass.US_EQUITY:
        raise DomainError("INVALID_ARGUMENT", f"{spec.symbol} is an index: it is never traded", field="symbol")
    elif spec.asset_class is not AssetClass.US_EQUITY:
        raise DomainError("INVALID_ARGUMENT", f"{spec.symbol} is a stock, not an option contract", field="asset_class")
    if not instrument.tradable:
        raise DomainError(
            "SYMBOL_NOT_TRADABLE",
            f"{spec.symbol} cannot be traded here: market data has no quotes for it, so no order on it could ever fill",
        )
    return spec


# An order that ended while its hold was being taken (canceled meanwhile) hands the hold
# back; one concluded by a concurrent run and already working or filled keeps it: its fill
# needs it.
ENDED_UNFILLED = frozenset({Status.CANCELED, Status.EXPIRED, Status.REJECTED})


class SubmitSaga:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        # Sagas running in this process right now: a replay or a resume awaits the same run.
        self._running: dict[str, asyncio.Future[Order]] = {}

    async def submit(self, user_id: str, spec: OrderSpec) -> tuple[Order, bool]:
        """Submit ``spec`` for ``user_id``; returns (the order, whether this was a replay of an
        earlier submit with the same client_order_id). An empty client_order_id becomes the
        order id. Refusals raise ``DomainError`` (the first refusal again, on a replay)."""
        deps = self.deps
        deps.check_switches(new_exposure=True)
        order_id = new_id("ord")
        spec = validate_spec(validate_class(replace(spec, client_order_id=spec.client_order_id or order_id)))
        digest = spec_digest(spec)
        async with deps.db.reading() as session:
            existing = await OrderRepository(session).by_client_order_id(user_id, spec.client_order_id)
        if existing is not None:
            return await self._with_legs(await self._replay(existing, digest)), True
        now = deps.clock.now()
        session_ = await deps.market.session(now)
        exits: list[OrderSpec] = []
        if spec.is_multileg:
            spec, collar = await self._priced_spread(spec, now, session_.contains(now))
            multiplier = CONTRACT_MULTIPLIER
        else:
            instrument = await deps.market.instrument(spec.symbol)
            spec = checked_for(spec, instrument, now)
            multiplier = instrument.multiplier
            reference = None
            if spec.order_type is OrderType.MARKET:  # the others carry their own price bound
                reference = market_reference(
                    spec,
                    await deps.market.quote(spec.symbol),
                    now,
                    session_.contains(now),
                    deps.settings.max_quote_age_seconds,
                )
            collar = collar_price(spec, reference, deps.settings.market_order_collar_pct)
            check_against_entry(spec, entry_base(spec, reference))
            exits = [
                checked_exit(lambda exit_: checked_for(validate_spec(exit_), instrument, now), exit_spec)
                for exit_spec in exit_specs(spec, [new_id("ord") for _ in range(2)])
            ]
        check_market_hours(spec, now, session_)
        expires_at = order_expiry(spec.time_in_force, session_.close_at, await deps.last_trades(spec))
        order = Order(
            order_id=order_id,
            user_id=user_id,
            account_id="",
            spec=spec,
            multiplier=multiplier,
            status=Status.NEW,
            created_at=now,
            updated_at=now,
            collar_price=collar,
            expires_at=expires_at,
            request_digest=digest,
            exit_group=order_id if spec.order_class is OrderClass.OCO else None,
        )
        children = [self._exit(order, exit_spec, expires_at) for exit_spec in exits]
        try:
            async with deps.uow() as uow:
                repo = OrderRepository(uow.session, uow.collect)
                for new in (order, *children):
                    await repo.add(new)
        except IntegrityError:
            # A concurrent submit with the same client_order_id won the insert.
            async with deps.db.reading() as session:
                winner = await OrderRepository(session).by_client_order_id(user_id, spec.client_order_id)
            if winner is None:
                raise
            return await self._with_legs(await self._replay(winner, digest)), True
        completed = await self._complete_once(order)
        for child in children:
            if child.status is Status.NEW and completed.status is Status.ACCEPTED:
                await self._complete_once(child)  # an oco's stop-loss works with its take-profit
        return await self._with_legs(completed), False

    def _exit(self, root: Order, spec: OrderSpec, expires_at: datetime | None) -> Order:
        """An exit hung from ``root``: held until a bracket's or oto's entry fills; an oco's
        stop-loss is submitted with its take-profit. A stop exit is collared from its stop."""
        held = root.order_class is not OrderClass.OCO
        child = replace(
            root,
            order_id=spec.client_order_id,
            spec=spec,
            status=Status.HELD if held else Status.NEW,
            collar_price=collar_price(spec, None, self.deps.settings.market_order_collar_pct),
            expires_at=expires_at,
            request_digest=spec_digest(spec),
            parent_order_id=root.order_id,
            exit_group=exit_group_of(root.spec, root.order_id),
        )
        return child.hold_exit() if held else child

    async def _with_legs(self, order: Order) -> Order:
        """``order`` with its exits (``leg_orders``, take-profit first), as Alpaca answers a
        bracket, oco or oto order; unchanged for an order of no class."""
        if order.order_class is OrderClass.SIMPLE:
            return order
        async with self.deps.db.reading() as session:
            family = await OrderRepository(session).family(family_id(order))
        return replace(family[0], leg_orders=exits_of(family)) if family[0].order_id == order.order_id else order

    async def activate(self, order: Order) -> Order:
        """Submit an exit its entry's fill activated: hold buying power and accept it. Accounts
        answers ``conflict`` until it has applied the entry's fill (the exit sells what the
        entry bought); tried again a few times, then left ``new`` for housekeeping."""
        attempt = 0
        while True:
            try:
                return await self._complete_once(order)
            except DomainError as exc:
                if exc.reason != "CONFLICT" or attempt >= len(ACTIVATION_RETRY_SECONDS):
                    raise
            await asyncio.sleep(ACTIVATION_RETRY_SECONDS[attempt])
            attempt += 1

    async def _priced_spread(
        self, spec: OrderSpec, now: datetime, market_open: bool
    ) -> tuple[OrderSpec, Decimal | None]:
        """A multi-leg submission checked against market data: each leg a listed, unexpired,
        tradable contract (``checked_for``), the legs by ``validate_mleg_spec``, a limit's
        sign against the legs' quotes now (``check_limit_sign``, when they are usable), and a
        market order's collar from its natural (``spread_collar``). Returns the spec and the
        collar."""
        deps = self.deps
        contracts = []
        for index, leg in enumerate(spec.legs):
            instrument = await deps.market.instrument(leg.symbol)
            if instrument.asset_class is not AssetClass.US_OPTION:
                raise DomainError(
                    "INVALID_ARGUMENT",
                    f"legs[{index}] {leg.symbol} is not an option contract: multi-leg orders take option legs only",
                    field=f"legs[{index}].symbol",
                )
            leg_spec = replace(spec, symbol=leg.symbol, side=leg.side, legs=(), order_type=OrderType.MARKET)
            checked_for(replace(leg_spec, limit_price=None, stop_price=None, qty=Decimal(1)), instrument, now)
            contracts.append(parse_symbol(instrument.symbol))
        spec, structure = validate_mleg_spec(spec, contracts)
        market = await deps.checked_spread_limit(spec, structure)
        if spec.order_type is OrderType.LIMIT:
            return spec, None
        if not market.usable or market.oldest is None:
            raise DomainError(
                "UNUSABLE_QUOTE", "no usable quote for every leg to price a multi-leg market order; use a limit order"
            )
        age = Decimal(str((now - market.oldest).total_seconds()))
        if market_open and age > deps.settings.max_quote_age_seconds:
            raise DomainError("STALE_QUOTE", "a leg's latest quote is too old to price a multi-leg market order")
        return spec, spread_collar(natural(market.quotes), deps.settings.market_order_collar_pct)

    async def _replay(self, order: Order, digest: str) -> Order:
        """A client_order_id sent again answers what its first submit answered: the same
        order, or the same refusal; with other terms it is refused. A submit a crash left
        unfinished is finished now."""
        if not order.submitted_with(digest):
            raise DomainError(
                "IDEMPOTENCY_KEY_REUSED",
                f"client_order_id {order.spec.client_order_id!r} was used for order {order.order_id} "
                f"({order.spec.side.value} {order.spec.qty.normalize():f} {order.spec.symbol}) with "
                "other terms; send a new client_order_id for a new order",
                order_id=order.order_id,
            )
        if order.status is Status.REJECTED:
            raise DomainError(
                order.reject_reason.upper(),
                order.reject_message or f"the order was rejected: {order.reject_reason}",
                order_id=order.order_id,
            )
        if order.status is Status.NEW:
            return await self._complete_once(order)
        return order

    async def _complete_once(self, order: Order) -> Order:
        """Complete ``order``'s saga, or await the run already completing it in this process
        (a replay answers what that run answers). The run goes on if the caller goes away."""
        running = self._running.get(order.order_id)
        if running is None:
            running = asyncio.ensure_future(self._complete(order))
            self._running[order.order_id] = running
            running.add_done_callback(partial(self._finished, order.order_id))
        return await asyncio.shield(running)

    def _finished(self, order_id: str, run: asyncio.Future[Order]) -> None:
        self._running.pop(order_id, None)
        if not run.cancelled():
            run.exception()  # seen here: a run whose caller went away (a deadline) logs no "never retrieved"

    async def _complete(self, order: Order) -> Order:
        """new -> hold buying power -> accepted, or rejected with the reason."""
        deps = self.deps
        try:
            reservation = await deps.accounts.hold(
                order, order.version, order.spec, held_price(order.spec, order.collar_price)
            )
        except DomainError as refusal:
            if refusal.reason not in DEFINITIVE_REFUSALS:
                raise  # stays new: housekeeping finishes it, a retry with the client_order_id returns it
            reason, message = refusal.reason, refusal.message
            rejected = await self._conclude(
                order.order_id, lambda o: o.reject(reason.lower(), message, deps.clock.now())
            )
            if rejected.status is Status.REJECTED:
                raise DomainError(reason, message, order_id=order.order_id) from None
            return rejected  # canceled meanwhile
        accepted = await self._conclude(
            order.order_id,
            lambda o: o.accept(reservation.account_id, deps.clock.now(), reservation.resolve(o.spec)),
        )
        if accepted.status in ENDED_UNFILLED:
            await deps.accounts.release(order)  # canceled while we held: hand the hold back
        return accepted

    async def _conclude(self, order_id: str, conclude: Callable[[Order], Order]) -> Order:
        """The saga's last step, once: an order no longer new (canceled meanwhile, or concluded
        by a concurrent resume) is left as it is."""
        now = self.deps.clock.now()
        async with self.deps.uow() as uow:
            repo = OrderRepository(uow.session, uow.collect)
            order, _ = await change_in_family(
                repo, order_id, lambda o: conclude(o) if o.status is Status.NEW else o, now
            )
            return order

    async def resume_new(self) -> int:
        """Finish submits a crash or an unavailable dependency left at ``new``."""
        async with self.deps.db.reading() as session:
            stuck = await OrderRepository(session).stuck_new(self.deps.clock.now(), limit=100)
        resumed = 0
        for order in stuck:
            if order.order_id in self._running:
                continue
            try:
                await self._complete_once(order)
                resumed += 1
            except DomainError as exc:
                log.info(
                    "order saga not finished yet", extra={"fields": {"order_id": order.order_id, "reason": exc.reason}}
                )
        return resumed
