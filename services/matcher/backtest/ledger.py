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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from mbt.orders.v1 import orders_pb2
from services.accounts.domain.account import Account, FillRefused, OptionSettled
from services.accounts.domain.rules import (
    DEFAULT_PROFILE,
    STARTING_CASH,
    SUPERSEDED,
    AccountType,
    FillTerms,
    HoldTerms,
    Mark,
    Position,
    Valuation,
    apply_fill,
    buying_power,
    contract_multiplier,
)
from services.common.errors import DomainError, not_found
from services.common.ids import derived_id
from services.common.instruments import contract_terms, parse_symbol
from services.common.trading import AssetClass, OrderType, Side
from services.common.wire.conv import datetime_from_ns, datetime_to_ns
from services.matcher import domain as matcher
from services.matcher.wire import fill_message
from services.orders import wire
from services.orders.domain.model import Fill, Instrument, Order, OrderSpec, Replacement, Status, spec_digest
from services.orders.domain.options import validate_option_spec
from services.orders.domain.rules import (
    QuoteSnapshot,
    ReplaceTerms,
    Session,
    check_market_hours,
    collar_price,
    expiry_reason,
    held_price,
    market_reference,
    order_expiry,
    replaced_collar,
    replacement,
    validate_spec,
)
from services.orders.usecases.submit import checked_for

ACCOUNT_ID = "acct_backtest"
DEFAULT_STARTING_CASH = STARTING_CASH[DEFAULT_PROFILE]
STOCK_MULTIPLIER = Decimal(1)

Marks = dict[str, tuple[Decimal, Decimal] | None]  # symbol -> usable (bid, ask) now, or None


@dataclass(frozen=True)
class LedgerEntry:
    """One movement of cash, as the accounts service's ledger writes it: kind ``opening``,
    ``fill``, or an option's expiration leg (``exercised``, ``assigned``, ``cash_settled``,
    ``expired_worthless``: the contracts closed at 0, or the cash-settled intrinsic value,
    and the shares delivered at the strike)."""

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
        raise DomainError(
            "INVALID_ARGUMENT", f"account_type must be cash or margin, got {name!r}", field="account_type"
        ) from None


class PaperAccount:
    """One user's simulated account and orders: the accounts service's Account aggregate and
    the orders service's Order aggregate, driven as their use cases drive them. Not
    thread-safe: one backtest owns it."""

    def __init__(
        self,
        *,
        user_id: str,
        kind: AccountType,
        starting_cash: Decimal,
        collar_pct: Decimal,
        max_quote_age_ns: int,
        opened_ns: int,
    ) -> None:
        if starting_cash <= 0:
            raise DomainError("INVALID_ARGUMENT", "starting_cash must be positive", field="starting_cash")
        opened = datetime_from_ns(opened_ns)
        self.account = Account(
            ACCOUNT_ID,
            user_id,
            kind,
            DEFAULT_PROFILE,
            starting_cash,
            starting_cash,
            created_at=opened,
            updated_at=opened,
        )
        self.user_id = user_id
        self.collar_pct = collar_pct
        self.max_age_seconds = Decimal(max_quote_age_ns) / 1_000_000_000
        self.orders: dict[str, Order] = {}
        # Each order's contract's last trading time (market data's), None for stock.
        self.last_trades: dict[str, datetime | None] = {}
        self.fills: list[Fill] = []
        self.entries: list[LedgerEntry] = [
            LedgerEntry(
                derived_id("led", user_id, "opening"),
                "opening",
                "",
                "",
                "",
                "",
                Decimal(0),
                Decimal(0),
                STOCK_MULTIPLIER,
                starting_cash,
                Decimal(0),
                starting_cash,
                opened_ns,
            )
        ]
        self._by_client_id: dict[str, Order] = {}

    @property
    def cash(self) -> Decimal:
        return self.account.cash

    @property
    def positions(self) -> dict[str, Position]:
        return self.account.positions

    # -- orders -----------------------------------------------------------------------------

    def submit(
        self,
        spec: OrderSpec,
        order_id: str,
        now_ns: int,
        session: Session,
        quote: Callable[[str], matcher.Tick | None],
        marks: Marks,
        instrument: Callable[[str], Instrument],
    ) -> Order:
        """The submit saga of the orders service, in one step: validated, held, accepted.

        Raises DomainError like SubmitOrder: invalid_argument (an option order by the option
        rules: whole contracts, the price grid, a position intent matching the side and the
        position), not_found (a symbol the feed does not have), contract_expired,
        market_closed, stale_quote, unusable_quote before any order exists;
        insufficient_buying_power after storing the order as rejected (an option order by
        the accounts domain's option requirement: a covered call locks shares, a
        cash-secured put holds the strike). A repeated client_order_id answers as the first
        submit did (idempotency_key_reused with other terms). ``quote`` gives a symbol's
        latest quote (asked for market orders only); ``instrument`` what market data says of
        a symbol (``GetSymbol``)."""
        spec = validate_spec(dataclasses.replace(spec, client_order_id=spec.client_order_id or order_id))
        digest = spec_digest(spec)
        existing = self._by_client_id.get(spec.client_order_id)
        if existing is not None:
            return _replayed(existing, digest)
        now = datetime_from_ns(now_ns)
        known = instrument(spec.symbol)
        spec = checked_for(spec, known, now)
        check_market_hours(spec, now, session)
        reference = None
        if spec.order_type is OrderType.MARKET:
            reference = market_reference(
                spec, _snapshot(quote(spec.symbol)), now, session.contains(now), self.max_age_seconds
            )
        order = Order(
            order_id=order_id,
            user_id=self.user_id,
            account_id="",
            spec=spec,
            multiplier=known.multiplier,
            status=Status.NEW,
            created_at=now,
            updated_at=now,
            collar_price=collar_price(spec, reference, self.collar_pct),
            expires_at=order_expiry(spec.time_in_force, session.close_at, [known.last_trade_at]),
            request_digest=digest,
        )
        self.last_trades[order_id] = known.last_trade_at
        terms = _terms(order, spec, order.collar_price)
        try:
            intent = self.account.position_intent(terms, spec.position_intent)
            self.account.hold(order_id, order.version, terms, _marks(marks), now)
        except DomainError as refusal:
            self._store(order.reject(refusal.reason.lower(), refusal.message, now))
            raise DomainError(refusal.reason, refusal.message, order_id=order_id) from None
        resolved = dataclasses.replace(spec, position_intent=intent or spec.position_intent)
        return self._store(order.accept(ACCOUNT_ID, now, resolved))

    def replace(self, order_id: str, terms: ReplaceTerms, now_ns: int, session: Session, marks: Marks) -> Order:
        """The replace saga in one step: the new version held beside the current one, then
        the order takes it and the old version's hold goes."""
        order = self.order(order_id)
        if order.status is not Status.ACCEPTED:
            raise DomainError("ORDER_NOT_REPLACEABLE", f"cannot replace an order that is {order.status.value}")
        spec = replacement(order, terms)
        if spec.asset_class is AssetClass.US_OPTION:
            spec = validate_option_spec(spec, parse_symbol(spec.symbol))
        now = datetime_from_ns(now_ns)
        check_market_hours(spec, now, session)
        collar = replaced_collar(order, spec, self.collar_pct)
        expires_at = (
            order.expires_at
            if spec.time_in_force is order.spec.time_in_force
            else order_expiry(spec.time_in_force, session.close_at, [self.last_trades.get(order_id)])
        )
        pending = Replacement(order.version + 1, spec, collar, expires_at, now, now)
        working = order.begin_replace(pending)
        self.account.hold(order_id, pending.version, _terms(order, spec, collar), _marks(marks), now)
        replaced = working.replace_terms(now)
        self.account.release(order_id, SUPERSEDED, now, below=replaced.version)
        return self._store(replaced)

    def cancel(self, order_id: str, now_ns: int, reason: str = "user") -> Order:
        """CancelOrder (idempotent); a filled order is order_not_cancelable."""
        now = datetime_from_ns(now_ns)
        canceled = self.order(order_id).cancel(reason, now)
        self.account.release(order_id, "canceled", now)
        return self._store(canceled)

    def expire(self, order_id: str) -> Order:
        """A day order at its session close, or an order on a contract at its last trading
        time (``contract_expired``), as the orders service expires them."""
        order = self.order(order_id)
        last_trades = [self.last_trades.get(order_id)]
        expired = order.expire("" if order.expires_at is None else expiry_reason(order.expires_at, last_trades))
        if expired.expired_at is None:
            raise ValueError(f"{order_id} expired without its time")
        self.account.release(order_id, "expired", expired.expired_at)
        return self._store(expired)

    def decided(self, working: matcher.WorkingOrder, decision: matcher.Decision) -> Fill | None:
        """Apply what the fill function decided, as the orders and accounts services do
        with the matcher's RecordFill, MarkOrderTriggered and CancelUnfilledOrder."""
        action, at_ns = decision.action, max(working.accepted_ns, decision.tick.at_ns if decision.tick else 0)
        if action is matcher.Action.FILL:
            return self._fill(working, decision)
        if action is matcher.Action.TRIGGER:
            self._store(self.order(working.order_id).trigger(datetime_from_ns(at_ns)))
        elif action is matcher.Action.CANCEL:
            self.cancel(working.order_id, at_ns, decision.rule)
        elif action is matcher.Action.EXPIRE:
            self.expire(working.order_id)
        return None

    def _fill(self, working: matcher.WorkingOrder, decision: matcher.Decision) -> Fill:
        fill = wire.fill_from_proto(fill_message(working, decision, self.order(working.order_id).multiplier))
        filled = self.order(fill.order_id).fill(fill)
        terms = FillTerms(fill.order_id, fill.symbol, fill.side, fill.qty, fill.price, fill.multiplier)
        effect = self.account.apply_fill(fill.fill_id, terms, filled.version, fill.filled_at)
        if effect is None:  # the ledger refused it: the engine broke one of its rules
            refused = self.account.events[-1]
            why = refused.why if isinstance(refused, FillRefused) else f"{type(refused).__name__} recorded instead"
            raise DomainError("LEDGER_INVARIANT", f"fill {fill.fill_id} refused by the ledger: {why}")
        self.entries.append(
            LedgerEntry(
                derived_id("led", fill.fill_id),
                "fill",
                fill.fill_id,
                fill.order_id,
                fill.symbol,
                fill.side.value,
                fill.qty,
                fill.price,
                fill.multiplier,
                effect.cash_delta,
                effect.realized_pl,
                self.account.cash,
                datetime_to_ns(fill.filled_at),
            )
        )
        self.account.events.clear()
        self._store(filled)
        self.fills.append(fill)
        return fill

    def expire_options(self, on: date, settlement_prices: Mapping[str, Decimal], at_ns: int) -> list[LedgerEntry]:
        """Settle the option positions expiring on ``on`` at the underlyings'
        ``settlement_prices`` (the accounts domain's ``Account.expire_options``: exercised,
        assigned, cash-settled or expired worthless); returns the ledger legs written."""
        expiring = self.account.expiring(on)
        if not expiring:
            return []
        at = datetime_from_ns(at_ns)
        terms = {spec.symbol: contract_terms(spec) for spec in expiring}
        self.account.expire_options(on, terms, settlement_prices, at)
        written: list[LedgerEntry] = []
        for event in self.account.events:
            if not isinstance(event, OptionSettled):
                continue
            cash = event.cash_after - sum((effect.cash_delta for _, effect in event.legs), Decimal(0))
            for leg, effect in event.legs:
                cash += effect.cash_delta
                written.append(
                    LedgerEntry(
                        leg.entry_id,
                        event.effect.outcome.value,
                        "",
                        "",
                        leg.symbol,
                        leg.side.value,
                        leg.qty,
                        leg.price,
                        leg.multiplier,
                        effect.cash_delta,
                        effect.realized_pl,
                        cash,
                        at_ns,
                    )
                )
        self.account.events.clear()
        self.entries.extend(written)
        return written

    def order(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise not_found("order", order_id)
        return order

    def _store(self, order: Order) -> Order:
        order = dataclasses.replace(order, events=())
        self.orders[order.order_id] = order
        self._by_client_id[order.spec.client_order_id] = order
        self.account.events.clear()
        return order

    @property
    def held(self) -> Decimal:
        return self.account.held().amount

    # -- valuation ------------------------------------------------------------------------

    def valuation(self, marks: Marks) -> Valuation:
        """Positions marked at what closing would get now (the bid for a long, the ask for
        a short; the entry price without a usable quote)."""
        return self.account.valuation(_marks(marks))

    def view(self, marks: Marks) -> AccountView:
        value = self.valuation(marks)
        positions = {
            symbol: PositionView(symbol, p.qty, p.avg_entry_price, p.realized_pl)
            for symbol, p in sorted(self.positions.items())
        }
        return AccountView(
            value.cash,
            value.long_market_value,
            value.short_market_value,
            value.held,
            buying_power(self.account.account_type, value),
            positions,
        )

    def has_open_position(self) -> bool:
        return bool(self.positions)

    def fill_messages(self) -> list[orders_pb2.Fill]:
        """The fills as the orders service returns them (GetOrder, the fill events)."""
        return [wire.fill_to_proto(fill) for fill in self.fills]


def _replayed(order: Order, digest: str) -> Order:
    """A client_order_id sent again answers as its first submit did (the orders service's rule)."""
    if not order.submitted_with(digest):
        raise DomainError(
            "IDEMPOTENCY_KEY_REUSED",
            f"client_order_id {order.spec.client_order_id!r} was used for order {order.order_id} with other terms",
        )
    if order.status is Status.REJECTED:
        raise DomainError(order.reject_reason.upper(), order.reject_message, order_id=order.order_id)
    return order


def _terms(order: Order, spec: OrderSpec, collar: Decimal | None) -> HoldTerms:
    return HoldTerms(spec.symbol, spec.side, spec.qty, held_price(spec, collar), order.multiplier)


def _marks(marks: Marks) -> dict[str, Mark]:
    return {symbol: Mark(*quote, None) for symbol, quote in marks.items() if quote is not None}


def _snapshot(tick: matcher.Tick | None) -> QuoteSnapshot | None:
    if tick is None:
        return None
    return QuoteSnapshot(tick.bid, tick.ask, datetime_from_ns(tick.at_ns), matcher.is_usable(tick))


def working_order(order: Order) -> matcher.WorkingOrder:
    """The order as the fill function works it (the matcher's view of an accepted order:
    its terms date from the last replace)."""
    spec = order.spec
    if order.accepted_at is None:
        raise ValueError(f"{order.order_id} is not accepted: the fill function works accepted orders")
    accepted_ns = datetime_to_ns(order.accepted_at)
    if order.replaced_at is not None:
        accepted_ns = max(accepted_ns, datetime_to_ns(order.replaced_at))
    return matcher.WorkingOrder(
        order_id=order.order_id,
        symbol=spec.symbol,
        side=spec.side,
        qty=spec.qty,
        order_type=spec.order_type,
        time_in_force=spec.time_in_force,
        limit_price=spec.limit_price,
        stop_price=spec.stop_price,
        collar_price=order.collar_price,
        accepted_ns=accepted_ns,
        triggered=order.triggered_at is not None,
        expires_ns=datetime_to_ns(order.expires_at) if order.expires_at is not None else None,
    )


def is_working(order: Order) -> bool:
    return order.status is Status.ACCEPTED


def order_session(open_ns: int, close_ns: int) -> Session:
    return Session(datetime_from_ns(open_ns), datetime_from_ns(close_ns))


def _ns(moment: datetime | None) -> int:
    return 0 if moment is None else datetime_to_ns(moment)


def order_record(order: Order) -> OrderRecord:
    spec = order.spec
    return OrderRecord(
        order.order_id,
        spec.client_order_id,
        spec.symbol,
        spec.side.value,
        spec.qty,
        spec.order_type.value,
        spec.time_in_force.value,
        spec.limit_price,
        spec.stop_price,
        order.collar_price,
        order.status.value,
        order.reject_reason,
        order.cancel_reason,
        order.filled_qty,
        order.filled_avg_price,
        order.version,
        _ns(order.created_at),
        _ns(order.accepted_at),
        _ns(order.triggered_at),
        _ns(order.replaced_at),
        _ns(order.filled_at),
        _ns(order.canceled_at),
        _ns(order.expired_at),
        _ns(order.expires_at),
    )


def fill_record(fill: Fill) -> FillRecord:
    return FillRecord(
        fill.fill_id,
        fill.order_id,
        fill.symbol,
        fill.side.value,
        fill.qty,
        fill.price,
        fill.bid_price,
        fill.bid_size,
        fill.ask_price,
        fill.ask_size,
        fill.quote_at_ns,
        fill.quote_sequence,
        fill.rule,
        _ns(fill.filled_at),
    )


def replay_positions(fills: list[FillRecord]) -> dict[str, Position]:
    """Open positions recomputed from fills alone, as the accounts service keeps them (a
    position that reaches zero is closed; the next fill opens a new one): the ledger must
    agree with them when no option expired (an expiration moves positions without a fill)."""
    positions: dict[str, Position] = {}
    for fill in fills:
        position = apply_fill(
            positions.get(fill.symbol),
            fill.symbol,
            Side(fill.side),
            fill.qty,
            fill.price,
            contract_multiplier(fill.symbol),
        ).position
        if position.is_open:
            positions[fill.symbol] = position
        else:
            positions.pop(fill.symbol, None)
    return positions


def validate_submit(request: orders_pb2.SubmitOrderRequest) -> None:
    """SubmitOrder's validation of the fields alone (no account, no market)."""
    spec = wire.spec_from_request(request)
    validate_spec(dataclasses.replace(spec, client_order_id=spec.client_order_id or "ord_check"))
