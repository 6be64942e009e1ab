"""The Order aggregate: what an order is, its lifecycle as one transition table, and the
domain events each transition records (``OrderAccepted``, ``OrderFilled``…). A transition
returns the new order with its event appended to ``events``; the unit of work collects them
from the repository and publishes them (outbox message and audit row) in the same
transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from services.common.errors import DomainError, invalid_argument
from services.common.trading import AssetClass, FillPreference, OrderType, PositionIntent, Side, TimeInForce


class Status(StrEnum):
    # An exit of a bracket or oto order until its entry fills (Alpaca's "held").
    HELD = "held"
    NEW = "new"
    ACCEPTED = "accepted"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Transition(StrEnum):
    ACTIVATE = "activate"
    ACCEPT = "accept"
    REJECT = "reject"
    TRIGGER = "trigger"
    REPLACE = "replace"
    FILL = "fill"
    CANCEL = "cancel"
    EXPIRE = "expire"


# The lifecycle: (state, transition) -> state. Anything not listed is refused.
TRANSITIONS: dict[tuple[Status, Transition], Status] = {
    # A held exit: its entry filled (it is submitted now: hold, then accept), or it went
    # with its entry (canceled, expired).
    (Status.HELD, Transition.ACTIVATE): Status.NEW,
    (Status.HELD, Transition.CANCEL): Status.CANCELED,
    # The submit saga: buying power reserved, or not.
    (Status.NEW, Transition.ACCEPT): Status.ACCEPTED,
    (Status.NEW, Transition.REJECT): Status.REJECTED,
    # A user may cancel while the saga is still reserving; the reservation, if any, is released.
    (Status.NEW, Transition.CANCEL): Status.CANCELED,
    # A stop reached, or a replace, keeps the order working.
    (Status.ACCEPTED, Transition.TRIGGER): Status.ACCEPTED,
    (Status.ACCEPTED, Transition.REPLACE): Status.ACCEPTED,
    # v1 fills are full fills: one fill ends the order.
    (Status.ACCEPTED, Transition.FILL): Status.FILLED,
    (Status.ACCEPTED, Transition.CANCEL): Status.CANCELED,
    (Status.ACCEPTED, Transition.EXPIRE): Status.EXPIRED,
}

WORKING = frozenset({Status.HELD, Status.NEW, Status.ACCEPTED})
FINAL = frozenset({Status.FILLED, Status.CANCELED, Status.REJECTED, Status.EXPIRED})

# Refusals by event, with the reason the caller sees (FAILED_PRECONDITION: the order is not in
# the state the change needs; retrying will not help).
REFUSAL_REASONS = {Transition.CANCEL: "ORDER_NOT_CANCELABLE", Transition.REPLACE: "ORDER_NOT_REPLACEABLE"}
STAMPS = {
    Transition.ACTIVATE: "updated_at",
    Transition.ACCEPT: "accepted_at",
    Transition.REJECT: "rejected_at",
    Transition.TRIGGER: "triggered_at",
    Transition.FILL: "filled_at",
    Transition.CANCEL: "canceled_at",
    Transition.EXPIRE: "expired_at",
    Transition.REPLACE: "replaced_at",
}


def next_status(status: Status, transition: Transition) -> Status:
    try:
        return TRANSITIONS[(status, transition)]
    except KeyError:
        reason = REFUSAL_REASONS.get(transition, "FAILED_PRECONDITION")
        raise DomainError(
            reason, f"cannot {transition.value} an order that is {status.value}", status=status.value
        ) from None


class OrderClass(StrEnum):
    """How an order is linked to others (Alpaca's order classes; README "Order classes").
    A multi-leg order is ``simple`` here: its class on the wire, ``mleg``, follows from its
    legs."""

    SIMPLE = "simple"
    # An entry, a take-profit limit and a stop-loss; the exits are held until the entry fills.
    BRACKET = "bracket"
    # Two exits of a position held: the take-profit limit (the parent) and a stop-loss.
    OCO = "oco"
    # An entry and one exit, held until the entry fills.
    OTO = "oto"


@dataclass(frozen=True)
class TakeProfit:
    """The limit exit of a bracket, oco or oto order (Alpaca's ``take_profit``)."""

    limit_price: Decimal


@dataclass(frozen=True)
class StopLoss:
    """The stop exit of a bracket, oco or oto order (Alpaca's ``stop_loss``): a stop, or a
    stop-limit when ``limit_price`` is set."""

    stop_price: Decimal
    limit_price: Decimal | None = None


@dataclass(frozen=True)
class Instrument:
    """What market data says of a symbol an order names; ``last_trade_at`` is when an
    option contract stops trading (None for stock)."""

    symbol: str
    asset_class: AssetClass
    multiplier: Decimal
    tradable: bool
    last_trade_at: datetime | None = None


@dataclass(frozen=True)
class Leg:
    """One leg of a multi-leg order: ``ratio`` contracts of ``symbol`` per spread."""

    symbol: str
    side: Side
    ratio: int
    position_intent: PositionIntent | None = None


@dataclass(frozen=True)
class OrderSpec:
    """What the user asked for, validated."""

    client_order_id: str
    symbol: str
    asset_class: AssetClass
    side: Side
    qty: Decimal
    order_type: OrderType
    time_in_force: TimeInForce
    limit_price: Decimal | None
    stop_price: Decimal | None
    legs: tuple[Leg, ...] = ()
    # Options: opening or closing (None for stock, and for an option until inferred).
    position_intent: PositionIntent | None = None
    # Multi-leg: how it is priced (None until the profile's default is known).
    fill_preference: FillPreference | None = None
    # Bracket, oco, oto: the class and, as submitted, the exits (None on the orders stored).
    order_class: OrderClass = OrderClass.SIMPLE
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None

    @property
    def is_multileg(self) -> bool:
        return bool(self.legs)


@dataclass(frozen=True)
class LegExecution:
    """One leg of a multi-leg fill: ``qty`` contracts at ``price`` inside the leg's NBBO, and
    the quote that NBBO is (sizes, time in epoch ns, market-data sequence: explain finds it
    in the tick archive by them; 0 for fills recorded before legs kept them)."""

    symbol: str
    side: Side
    ratio: int
    qty: Decimal
    price: Decimal
    bid_price: Decimal
    ask_price: Decimal
    bid_size: Decimal = Decimal(0)
    ask_size: Decimal = Decimal(0)
    quote_at_ns: int = 0
    quote_sequence: int = 0


@dataclass(frozen=True)
class Fill:
    """One execution and the NBBO tick it was priced from. A multi-leg fill: ``price`` the
    net per spread (the signed sum of its legs' prices), ``bid_price`` the net mid and
    ``ask_price`` the natural at that moment, ``legs`` each leg's execution."""

    fill_id: str
    order_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    multiplier: Decimal
    bid_price: Decimal
    bid_size: Decimal
    ask_price: Decimal
    ask_size: Decimal
    quote_at: datetime
    quote_at_ns: int
    quote_sequence: int
    rule: str
    filled_at: datetime
    legs: tuple[LegExecution, ...] = ()


def spec_digest(spec: OrderSpec) -> str:
    """SHA-256 of what a submission asked for (everything but its client_order_id): a
    client_order_id sent again must come with the same terms (Stripe's idempotency rule)."""

    def number(value: Decimal | None) -> str:
        return "" if value is None else format(value.normalize(), "f")

    parts = [
        spec.symbol,
        spec.asset_class.value,
        spec.side.value,
        number(spec.qty),
        spec.order_type.value,
        spec.time_in_force.value,
        number(spec.limit_price),
        number(spec.stop_price),
        *(
            f"{leg.symbol}:{leg.side.value}:{leg.ratio}"
            + (f":{leg.position_intent.value}" if leg.position_intent else "")
            for leg in spec.legs
        ),
        *((f"preference:{spec.fill_preference.value}",) if spec.fill_preference else ()),
        # Only when sent, so the digests of stock orders stay what they were.
        *((f"intent:{spec.position_intent.value}",) if spec.position_intent else ()),
        *((f"class:{spec.order_class.value}",) if spec.order_class is not OrderClass.SIMPLE else ()),
        *((f"take_profit:{number(spec.take_profit.limit_price)}",) if spec.take_profit else ()),
        *(
            (f"stop_loss:{number(spec.stop_loss.stop_price)}:{number(spec.stop_loss.limit_price)}",)
            if spec.stop_loss
            else ()
        ),
    ]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Replacement:
    """A replace in flight (the replace saga): the version the order becomes and its terms.
    Accounts holds the new version's buying power beside the current one's before the order
    takes the new terms; an interrupted replace is resumed, or abandoned and its hold
    released — never left holding for terms no order version has."""

    version: int
    spec: OrderSpec
    collar_price: Decimal | None
    expires_at: datetime | None
    requested_at: datetime
    # Wall-clock time until which the request that started it (or a resume) owns it.
    lease_until: datetime


@dataclass(frozen=True)
class Order:
    order_id: str
    user_id: str
    account_id: str
    spec: OrderSpec
    multiplier: Decimal
    status: Status
    created_at: datetime
    updated_at: datetime
    version: int = 1
    collar_price: Decimal | None = None
    reject_reason: str = ""
    cancel_reason: str = ""
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    accepted_at: datetime | None = None
    rejected_at: datetime | None = None
    triggered_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    expires_at: datetime | None = None
    replaced_at: datetime | None = None
    fills: tuple[Fill, ...] = ()
    # The submission's spec_digest (None on orders stored before digests were kept).
    request_digest: str | None = None
    # The sentence a rejected submit answered, so a replay answers the same.
    reject_message: str = ""
    pending: Replacement | None = None
    # Bracket, oco, oto: the order this exit hangs from (None on an entry, an oco's first
    # order and orders of no class), and the id the exits that cancel each other share.
    parent_order_id: str | None = None
    exit_group: str | None = None
    # An entry's (or an oco's first order's) exits, take-profit first, when read with them.
    leg_orders: tuple[Order, ...] = field(default=(), compare=False, repr=False)
    # Events recorded by transitions since the order was loaded (not part of its value).
    events: tuple[OrderEvent, ...] = field(default=(), compare=False, repr=False)

    def submitted_with(self, digest: str) -> bool:
        """Whether a submission with ``digest`` repeats the one that created this order."""
        known = self.request_digest or (spec_digest(self.spec) if self.version == 1 else None)
        return known is None or known == digest

    @property
    def is_working(self) -> bool:
        return self.status in WORKING

    @property
    def order_class(self) -> OrderClass:
        return self.spec.order_class

    @property
    def is_entry(self) -> bool:
        """A bracket's or oto's entry: its exits wait for it to fill."""
        return self.parent_order_id is None and self.order_class in (OrderClass.BRACKET, OrderClass.OTO)

    # -- transitions: each goes through TRANSITIONS and records its event ----------------

    def _to(self, transition: Transition, at: datetime, **changes: Any) -> Order:
        stamped: dict[str, Any] = {"updated_at": at, STAMPS[transition]: at, **changes}
        return replace(self, status=next_status(self.status, transition), **stamped)

    def _recording(self, make: Callable[[Order], OrderEvent]) -> Order:
        return replace(self, events=(*self.events, make(replace(self, events=()))))

    def hold_exit(self) -> Order:
        """A new exit of a bracket or oto order, stored ``held`` until its entry fills."""
        if self.status is not Status.HELD:
            raise DomainError("FAILED_PRECONDITION", f"an exit is created held, not {self.status.value}")
        return self._recording(OrderHeld)

    def activate(self, at: datetime) -> Order:
        """Its entry filled: the held exit is submitted now (``new``: buying power, then accepted)."""
        return self._to(Transition.ACTIVATE, at)

    def accept(self, account_id: str, at: datetime, resolved: OrderSpec | None = None) -> Order:
        """The submit saga held buying power: the order works from now. ``resolved``: the
        spec with what accounts resolved (position intents, the fill preference)."""
        spec = self.spec if resolved is None else resolved
        return self._to(Transition.ACCEPT, at, account_id=account_id, spec=spec)._recording(OrderAccepted)

    def reject(self, reason: str, message: str, at: datetime) -> Order:
        """The submit saga was refused (``reason`` a stable reason, lower case)."""
        return self._to(Transition.REJECT, at, reject_reason=reason, reject_message=message[:500])._recording(
            OrderRejected
        )

    def trigger(self, at: datetime) -> Order:
        """The stop was reached without a fill (stop and stop-limit orders only); once."""
        if self.triggered_at is not None:
            return self
        if self.spec.order_type not in (OrderType.STOP, OrderType.STOP_LIMIT):
            raise invalid_argument("only stop and stop-limit orders trigger")
        before = replace(self, events=())
        return self._to(Transition.TRIGGER, at)._recording(lambda after: OrderTriggered(after, before))

    def begin_replace(self, pending: Replacement) -> Order:
        """Record a replace in flight (no event: nothing changed for anyone else yet)."""
        if self.status is not Status.ACCEPTED:
            raise DomainError("ORDER_NOT_REPLACEABLE", f"cannot replace an order that is {self.status.value}")
        if self.pending is not None:
            raise DomainError("CONFLICT", f"order {self.order_id} is being replaced right now; retry in a few seconds")
        return replace(self, pending=pending)

    def replace_terms(self, at: datetime) -> Order:
        """The pending replace takes effect: its version and terms become the order's."""
        pending = self.pending
        if pending is None:
            raise DomainError("ORDER_NOT_REPLACEABLE", "no replace is pending for this order")
        before = replace(self, events=())
        return self._to(
            Transition.REPLACE,
            at,
            spec=pending.spec,
            collar_price=pending.collar_price,
            version=pending.version,
            expires_at=pending.expires_at,
            pending=None,
        )._recording(lambda after: OrderReplaced(after, before))

    def fill(self, fill: Fill) -> Order:
        """Record an execution the matcher decided (v1: the whole quantity); the fill must
        match the order (``check_fill``)."""
        next_status(self.status, Transition.FILL)
        check_fill(self, fill)
        stop_reached = self.spec.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        before = replace(self, events=())
        return self._to(
            Transition.FILL,
            fill.filled_at,
            filled_qty=self.filled_qty + fill.qty,
            filled_avg_price=fill.price,
            fills=(*self.fills, fill),
            pending=None,
            triggered_at=self.triggered_at or (fill.filled_at if stop_reached else None),
        )._recording(lambda after: OrderFilled(after, before, fill))

    def cancel(self, reason: str, at: datetime) -> Order:
        """Cancel (idempotent: an order already canceled stays as it is)."""
        if self.status is Status.CANCELED:
            return self
        before = replace(self, events=())
        return self._to(Transition.CANCEL, at, cancel_reason=reason, pending=None)._recording(
            lambda after: OrderCanceled(after, before)
        )

    def expire(self, reason: str = "") -> Order:
        """The order reached its ``expires_at``: a day order its session's close, or any order
        its option contract's last trading time (``reason`` then ``contract_expired``, kept
        as the cancel reason)."""
        if self.expires_at is None:
            raise DomainError("FAILED_PRECONDITION", f"order {self.order_id} has no expiry")
        before = replace(self, events=())
        return self._to(Transition.EXPIRE, self.expires_at, cancel_reason=reason, pending=None)._recording(
            lambda after: OrderExpired(after, before)
        )


def check_fill(order: Order, fill: Fill) -> None:
    """Defence in depth against a matcher bug: a fill must match the order and its limits."""
    spec = order.spec
    if spec.is_multileg:
        check_spread_fill(order, fill)
        return
    if fill.side is not spec.side or fill.qty != spec.qty - order.filled_qty or fill.symbol != spec.symbol:
        raise invalid_argument("the fill does not match the order's side, symbol or open quantity", "fill")
    touch = fill.ask_price if spec.side is Side.BUY else fill.bid_price
    if fill.price != touch:
        raise invalid_argument("a fill is priced at the touch: the ask to buy, the bid to sell", "fill.price")
    bounds = [p for p in (spec.limit_price, order.collar_price) if p is not None]
    if spec.side is Side.BUY and any(fill.price > bound for bound in bounds):
        raise invalid_argument("a buy cannot fill above its limit or collar", "fill.price")
    if spec.side is Side.SELL and any(fill.price < bound for bound in bounds):
        raise invalid_argument("a sell cannot fill below its limit or collar", "fill.price")


def check_spread_fill(order: Order, fill: Fill) -> None:
    """A multi-leg fill: every leg of the order once, in order, ratio x qty contracts, each
    inside its NBBO; the net the signed sum of the legs; never beyond the limit or collar."""
    spec = order.spec
    if fill.qty != spec.qty - order.filled_qty or len(fill.legs) != len(spec.legs):
        raise invalid_argument("the fill does not match the order's legs or open quantity", "fill")
    net = Decimal(0)
    for leg, execution in zip(spec.legs, fill.legs, strict=True):
        if (leg.symbol, leg.side, leg.ratio, leg.ratio * fill.qty) != (
            execution.symbol,
            execution.side,
            execution.ratio,
            execution.qty,
        ):
            raise invalid_argument(f"the fill's leg {execution.symbol} does not match the order's", "fill.legs")
        if not execution.bid_price <= execution.price <= execution.ask_price:
            raise invalid_argument(f"leg {execution.symbol} filled outside its NBBO", "fill.legs")
        net += execution.price * execution.ratio * (1 if execution.side is Side.BUY else -1)
    if net != fill.price:
        raise invalid_argument("a multi-leg fill's net is the signed sum of its legs' prices", "fill.price")
    bound = spec.limit_price if spec.limit_price is not None else order.collar_price
    if bound is not None and fill.price > bound:
        raise invalid_argument("a multi-leg fill cannot be beyond its limit or collar", "fill.price")


def same_execution(recorded: Fill, fill: Fill) -> bool:
    """Whether ``fill`` repeats ``recorded`` (a fill id names one execution on one tick)."""
    return (
        recorded.order_id,
        recorded.symbol,
        recorded.side,
        recorded.qty,
        recorded.price,
        recorded.quote_sequence,
        recorded.quote_at_ns,
    ) == (fill.order_id, fill.symbol, fill.side, fill.qty, fill.price, fill.quote_sequence, fill.quote_at_ns)


# -- domain events: what changed, with the order after (and before) the change ------------


@dataclass(frozen=True)
class OrderAccepted:
    order: Order


@dataclass(frozen=True)
class OrderRejected:
    order: Order


@dataclass(frozen=True)
class OrderHeld:
    order: Order


@dataclass(frozen=True)
class OrderTriggered:
    order: Order
    previous: Order


@dataclass(frozen=True)
class OrderReplaced:
    order: Order
    previous: Order


@dataclass(frozen=True)
class OrderFilled:
    order: Order
    previous: Order
    fill: Fill


@dataclass(frozen=True)
class OrderCanceled:
    order: Order
    previous: Order


@dataclass(frozen=True)
class OrderExpired:
    order: Order
    previous: Order


OrderEvent = (
    OrderHeld
    | OrderAccepted
    | OrderRejected
    | OrderTriggered
    | OrderReplaced
    | OrderFilled
    | OrderCanceled
    | OrderExpired
)
