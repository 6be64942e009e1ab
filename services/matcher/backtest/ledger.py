"""The simulated paper account of a backtest: orders under the orders service's rules
(validation, collars, the lifecycle table, fill checks) and cash and positions under the
accounts service's rules (holds, buying power, fills, realized P&L), imported, never
copied.

This is the only module of the backtest that touches the orders and accounts domains, so
when they change shape (Order and Account aggregates) only this file follows. Everything
here is pure: times come in as epoch nanoseconds, quotes as matcher ticks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from mbt.orders.v1 import orders_pb2
from services.accounts.domain import (DEFAULT_PROFILE, STARTING_CASH, AccountType, FillEffect, Hold, OrderRequest, Position, Valuation, apply_fill,
                                      buying_power, check_fits, hold_for, mark_price, market_value)
from services.accounts.domain import Side as AccountSide
from services.common.wire.conv import datetime_from_ns, datetime_to_ns, parse_decimal
from services.common.errors import DomainError, not_found
from services.common.ids import derived_id
from services.common.instruments import parse_symbol
from services.matcher import domain as matcher
from services.matcher.usecases.matching import fill_message
from services.orders import wire
from services.orders.domain import (Event, Fill, Order, OrderType, Session, Status, TimeInForce, check_fill,
                                    check_market_hours, collar_price, replacement, validate_spec)

ACCOUNT_ID = "acct_backtest"
DEFAULT_STARTING_CASH = STARTING_CASH[DEFAULT_PROFILE]
MULTIPLIER = Decimal(1)  # v1 backtests trade US equities
PRICED_AT_LIMIT = (OrderType.LIMIT, OrderType.STOP_LIMIT)

Marks = dict[str, tuple[Decimal, Decimal] | None]  # symbol -> usable (bid, ask) now, or None


@dataclass(frozen=True)
class LedgerEntry:
    """One movement of cash, as the accounts service's ledger writes it (kind opening or fill)."""

    entry_id: str
    kind: str
    fill_id: str
    order_id: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    multiplier: Decimal
    cash_delta: Decimal
    realized_pl: Decimal
    cash_after: Decimal
    occurred_at_ns: int


@dataclass(frozen=True)
class OrderRecord:
    """An order as a strategy and the results see it (times in epoch ns, 0 when unset)."""

    order_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    order_type: str
    time_in_force: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    collar_price: Decimal | None
    status: str
    reject_reason: str
    cancel_reason: str
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    version: int
    created_ns: int
    accepted_ns: int
    triggered_ns: int
    replaced_ns: int
    filled_ns: int
    canceled_ns: int
    expired_ns: int
    expires_ns: int

    @property
    def is_working(self) -> bool:
        return self.status == Status.ACCEPTED.value


@dataclass(frozen=True)
class FillRecord:
    """A fill and the NBBO it was priced from."""

    fill_id: str
    order_id: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    bid_price: Decimal
    bid_size: Decimal
    ask_price: Decimal
    ask_size: Decimal
    quote_at_ns: int
    quote_sequence: int
    rule: str
    filled_ns: int


@dataclass(frozen=True)
class PositionView:
    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    realized_pl: Decimal


@dataclass(frozen=True)
class AccountView:
    """Cash, positions and what is held, valued at the latest quotes."""

    cash: Decimal
    long_market_value: Decimal
    short_market_value: Decimal
    held: Decimal
    buying_power: Decimal
    positions: dict[str, PositionView]

    @property
    def equity(self) -> Decimal:
        return self.cash + self.long_market_value + self.short_market_value


def account_type(name: str) -> AccountType:
    try:
        return AccountType(name)
    except ValueError:
        raise DomainError("INVALID_ARGUMENT", f"account_type must be cash or margin, got {name!r}",
                          field="account_type") from None


class PaperAccount:
    """One user's simulated account and orders. Not thread-safe: one backtest owns it."""

    def __init__(self, *, user_id: str, kind: AccountType, starting_cash: Decimal, collar_pct: Decimal,
                 max_quote_age_ns: int, opened_ns: int) -> None:
        if starting_cash <= 0:
            raise DomainError("INVALID_ARGUMENT", "starting_cash must be positive", field="starting_cash")
        self.user_id = user_id
        self.kind = kind
        self.starting_cash = starting_cash
        self.cash = starting_cash
        self.collar_pct = collar_pct
        self.max_quote_age_ns = max_quote_age_ns
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.entries: list[LedgerEntry] = [LedgerEntry(
            derived_id("led", user_id, "opening"), "opening", "", "", "", "", Decimal(0), Decimal(0), MULTIPLIER,
            starting_cash, Decimal(0), starting_cash, opened_ns)]
        self.positions: dict[str, Position] = {}
        self._by_client_id: dict[str, Order] = {}
        self._holds: dict[str, tuple[str, Hold]] = {}  # order id -> (symbol, hold)
        self._held = Decimal(0)
        self._shares_held: dict[str, Decimal] = {}  # symbol -> shares held by working sells

    # -- orders -----------------------------------------------------------------------------

    def submit(self, request: orders_pb2.SubmitOrderRequest, order_id: str, now_ns: int, session: Session,
               quote: Callable[[str], matcher.Tick | None], marks: Marks, symbols: Container[str]) -> Order:
        """The submit saga of the orders service, in one step: validated, held, accepted.

        Raises DomainError like SubmitOrder: invalid_argument, not_found (a symbol the feed
        does not have), market_closed, stale_quote, unusable_quote before any order exists; insufficient_buying_power after storing
        the order as rejected. A repeated client_order_id returns the first order. ``quote``
        gives a symbol's latest quote (asked for market orders only)."""
        client_order_id = request.client_order_id.strip() or order_id
        spec = validate_spec(wire.spec_from_request(request, client_order_id))
        existing = self._by_client_id.get(client_order_id)
        if existing is not None:
            return existing
        if parse_symbol(spec.symbol).symbol not in symbols:
            raise not_found("symbol", spec.symbol)  # market data knows no quotes for it
        now = datetime_from_ns(now_ns)
        check_market_hours(spec, now, session)
        reference = None
        if spec.order_type is OrderType.MARKET:
            reference = _reference(spec.symbol, spec.side.value == "buy", quote(spec.symbol), now_ns,
                                   self.max_quote_age_ns, session.contains(now))
        order = Order(order_id=order_id, user_id=self.user_id, account_id=ACCOUNT_ID, spec=spec,
                      multiplier=MULTIPLIER, status=Status.NEW, created_at=now, updated_at=now,
                      collar_price=collar_price(spec.side, spec.order_type, reference, spec.stop_price,
                                                self.collar_pct),
                      expires_at=session.close_at if spec.time_in_force is TimeInForce.DAY else None)
        self._by_client_id[client_order_id] = order
        try:
            hold = self._hold_for(order, marks)
        except DomainError as refusal:
            self._store(order.apply(Event.REJECT, now, reject_reason=refusal.reason.lower()))
            raise DomainError(refusal.reason, refusal.message, order_id=order_id) from None
        self._take(order_id, spec.symbol, hold)
        return self._store(order.apply(Event.ACCEPT, now))

    def replace(self, order_id: str, request: orders_pb2.ReplaceOrderRequest, now_ns: int, session: Session,
                marks: Marks) -> Order:
        """ReplaceOrder: new terms in place, buying power re-checked first."""
        order = self.order(order_id)
        if order.status is not Status.ACCEPTED:
            raise DomainError("ORDER_NOT_REPLACEABLE", f"cannot replace an order that is {order.status.value}")
        spec = replacement(order, qty=parse_decimal(request.qty, "qty"),
                           limit_price=parse_decimal(request.limit_price, "limit_price"),
                           stop_price=parse_decimal(request.stop_price, "stop_price"),
                           time_in_force=wire.tif_filter(request.time_in_force))
        now = datetime_from_ns(now_ns)
        check_market_hours(spec, now, session)
        collar = order.collar_price
        if spec.order_type is OrderType.STOP:
            collar = collar_price(spec.side, spec.order_type, None, spec.stop_price, self.collar_pct)
        candidate = dataclasses.replace(order, spec=spec, collar_price=collar)
        _, released = self._holds[order_id]
        hold = self._hold_for(candidate, marks, released)
        expires_at = order.expires_at if spec.time_in_force is order.spec.time_in_force else (
            session.close_at if spec.time_in_force is TimeInForce.DAY else None)
        self._release(order_id)
        self._take(order_id, spec.symbol, hold)
        return self._store(order.apply(Event.REPLACE, now, spec=spec, collar_price=collar, version=order.version + 1,
                                       expires_at=expires_at))

    def cancel(self, order_id: str, now_ns: int, reason: str = "user") -> Order:
        """CancelOrder (idempotent); a filled order is order_not_cancelable."""
        order = self.order(order_id)
        if order.status is Status.CANCELED:
            return order
        canceled = order.apply(Event.CANCEL, datetime_from_ns(now_ns), cancel_reason=reason)
        self._release(order_id)
        return self._store(canceled)

    def expire(self, order_id: str) -> Order:
        """A day order at its session close."""
        order = self.order(order_id)
        self._release(order_id)
        return self._store(order.apply(Event.EXPIRE, order.expires_at))

    def decided(self, working: matcher.WorkingOrder, decision: matcher.Decision) -> Fill | None:
        """Apply what the fill function decided, as the orders and accounts services do
        with the matcher's RecordFill, MarkOrderTriggered and CancelUnfilledOrder."""
        action, at_ns = decision.action, max(working.accepted_ns, decision.tick.at_ns if decision.tick else 0)
        if action is matcher.Action.FILL:
            return self._fill(working, decision)
        if action is matcher.Action.TRIGGER:
            order = self.order(working.order_id)
            if order.triggered_at is None:
                self._store(order.apply(Event.TRIGGER, datetime_from_ns(at_ns)))
        elif action is matcher.Action.CANCEL:
            self.cancel(working.order_id, at_ns, decision.rule)
        elif action is matcher.Action.EXPIRE:
            self.expire(working.order_id)
        return None

    def _fill(self, working: matcher.WorkingOrder, decision: matcher.Decision) -> Fill:
        fill = wire.fill_from_proto(fill_message(working, decision, str(MULTIPLIER)))
        order = self.order(fill.order_id)
        if order.status is not Status.ACCEPTED:
            raise DomainError("CONFLICT", f"order {order.order_id} is {order.status.value}; the fill is refused")
        check_fill(order, fill)
        stop_reached = order.spec.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        self._store(order.apply(Event.FILL, fill.filled_at, filled_qty=order.filled_qty + fill.qty,
                                filled_avg_price=fill.price,
                                triggered_at=order.triggered_at or (fill.filled_at if stop_reached else None)))
        self._release(order.order_id)
        effect = apply_fill(self.positions.get(fill.symbol), fill.symbol, AccountSide(fill.side.value), fill.qty,
                            fill.price, fill.multiplier)
        self._book(fill, effect)
        self.fills.append(fill)
        return fill

    def _book(self, fill: Fill, effect: FillEffect) -> None:
        self.cash += effect.cash_delta
        self.positions[fill.symbol] = effect.position
        self.entries.append(LedgerEntry(
            derived_id("led", fill.fill_id), "fill", fill.fill_id, fill.order_id, fill.symbol, fill.side.value,
            fill.qty, fill.price, fill.multiplier, effect.cash_delta, effect.realized_pl, self.cash,
            datetime_to_ns(fill.filled_at)))

    def order(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise not_found("order", order_id)
        return order

    def _store(self, order: Order) -> Order:
        self.orders[order.order_id] = order
        self._by_client_id[order.spec.client_order_id] = order
        return order

    # -- buying power ---------------------------------------------------------------------

    def _hold_for(self, order: Order, marks: Marks, released: Hold | None = None) -> Hold:
        """What ReserveBuyingPower holds for this order version (raises if it does not fit)."""
        spec = order.spec
        bound = spec.limit_price if spec.order_type in PRICED_AT_LIMIT else order.collar_price
        if bound is None or bound <= 0:
            raise DomainError("INVALID_ARGUMENT", "the order has no price to hold buying power against",
                              field="reference_price")
        request = OrderRequest(spec.symbol, AccountSide(spec.side.value), spec.qty, bound, order.multiplier)
        position = self.positions.get(spec.symbol)
        shares_held = self._shares_held.get(spec.symbol, Decimal(0)) - (released.qty if released else Decimal(0))
        hold = hold_for(self.kind, request, position.qty if position else Decimal(0), shares_held)
        check_fits(self.kind, self.valuation(marks), hold, released=released.amount if released else Decimal(0))
        return hold

    def _take(self, order_id: str, symbol: str, hold: Hold) -> None:
        self._holds[order_id] = (symbol, hold)
        self._held += hold.amount
        self._shares_held[symbol] = self._shares_held.get(symbol, Decimal(0)) + hold.qty

    def _release(self, order_id: str) -> None:
        taken = self._holds.pop(order_id, None)
        if taken is not None:
            symbol, hold = taken
            self._held -= hold.amount
            self._shares_held[symbol] -= hold.qty

    @property
    def held(self) -> Decimal:
        return self._held

    # -- valuation ------------------------------------------------------------------------

    def valuation(self, marks: Marks) -> Valuation:
        """Positions marked at what closing would get now (the bid for a long, the ask for
        a short; the entry price without a usable quote)."""
        long_value = short_value = Decimal(0)
        for symbol, position in self.positions.items():
            if not position.is_open:
                continue
            mark = marks.get(symbol)
            value = market_value(position, mark_price(position, *(mark or (None, None))))
            if value >= 0:
                long_value += value
            else:
                short_value += value
        return Valuation(self.cash, long_value, short_value, self._held)

    def view(self, marks: Marks) -> AccountView:
        value = self.valuation(marks)
        positions = {symbol: PositionView(symbol, p.qty, p.avg_entry_price, p.realized_pl)
                     for symbol, p in sorted(self.positions.items())}
        return AccountView(value.cash, value.long_market_value, value.short_market_value, value.held,
                           buying_power(self.kind, value), positions)

    def has_open_position(self) -> bool:
        return any(p.is_open for p in self.positions.values())

    def fill_messages(self) -> list[orders_pb2.Fill]:
        """The fills as the orders service returns them (GetOrder, the fill events)."""
        return [wire.fill_to_proto(fill) for fill in self.fills]


def working_order(order: Order) -> matcher.WorkingOrder:
    """The order as the fill function works it (the matcher's view of an accepted order:
    its terms date from the last replace)."""
    spec = order.spec
    accepted_ns = datetime_to_ns(order.accepted_at)
    if order.replaced_at is not None:
        accepted_ns = max(accepted_ns, datetime_to_ns(order.replaced_at))
    return matcher.WorkingOrder(
        order_id=order.order_id, symbol=spec.symbol, side=matcher.Side(spec.side.value), qty=spec.qty,
        order_type=matcher.OrderType(spec.order_type.value), time_in_force=matcher.TimeInForce(spec.time_in_force.value),
        limit_price=spec.limit_price, stop_price=spec.stop_price, collar_price=order.collar_price,
        accepted_ns=accepted_ns, triggered=order.triggered_at is not None,
        expires_ns=datetime_to_ns(order.expires_at) if order.expires_at is not None else None)


def is_working(order: Order) -> bool:
    return order.status is Status.ACCEPTED


def order_session(open_ns: int, close_ns: int) -> Session:
    return Session(datetime_from_ns(open_ns), datetime_from_ns(close_ns))


def _reference(symbol: str, buying: bool, quote: matcher.Tick | None, now_ns: int, max_age_ns: int,
               market_open: bool) -> Decimal:
    """The touch a market order is submitted against (its collar's basis): refused without
    a usable quote, or with an old one while the market is open (as the orders service)."""
    if quote is None or not matcher.is_usable(quote):
        reason = "STALE_QUOTE" if quote is None else "UNUSABLE_QUOTE"
        raise DomainError(reason, f"no usable quote for {symbol} to price a market order; use a limit order")
    if market_open and now_ns - quote.at_ns > max_age_ns:
        raise DomainError("STALE_QUOTE", f"the latest {symbol} quote is {(now_ns - quote.at_ns) / 1e9:.0f}s old; "
                                         "a market order needs a fresh one")
    return quote.ask if buying else quote.bid


def _ns(moment: datetime | None) -> int:
    return 0 if moment is None else datetime_to_ns(moment)


def order_record(order: Order) -> OrderRecord:
    spec = order.spec
    return OrderRecord(
        order.order_id, spec.client_order_id, spec.symbol, spec.side.value, spec.qty, spec.order_type.value,
        spec.time_in_force.value, spec.limit_price, spec.stop_price, order.collar_price, order.status.value,
        order.reject_reason, order.cancel_reason, order.filled_qty, order.filled_avg_price, order.version,
        _ns(order.created_at), _ns(order.accepted_at), _ns(order.triggered_at), _ns(order.replaced_at),
        _ns(order.filled_at), _ns(order.canceled_at), _ns(order.expired_at), _ns(order.expires_at))


def fill_record(fill: Fill) -> FillRecord:
    return FillRecord(fill.fill_id, fill.order_id, fill.symbol, fill.side.value, fill.qty, fill.price,
                      fill.bid_price, fill.bid_size, fill.ask_price, fill.ask_size, fill.quote_at_ns,
                      fill.quote_sequence, fill.rule, _ns(fill.filled_at))


def replay_positions(fills: list[FillRecord]) -> dict[str, Position]:
    """Positions recomputed from fills alone (the ledger must agree with them)."""
    positions: dict[str, Position] = {}
    for fill in fills:
        positions[fill.symbol] = apply_fill(positions.get(fill.symbol), fill.symbol, AccountSide(fill.side), fill.qty,
                                            fill.price, MULTIPLIER).position
    return positions


def validate_submit(request: orders_pb2.SubmitOrderRequest) -> None:
    """SubmitOrder's validation of the fields alone (no account, no market)."""
    validate_spec(wire.spec_from_request(request, request.client_order_id.strip() or "ord_check"))
