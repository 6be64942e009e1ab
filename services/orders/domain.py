"""Orders' pure rules: the lifecycle transition table, submission validation and the
protective collar. No I/O, no SQLAlchemy, no grpc, no clock: callers pass values in."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import Enum

from services.common.errors import DomainError, invalid_argument


class Status(str, Enum):
    NEW = "new"
    ACCEPTED = "accepted"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"


class OrderType(str, Enum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(str, Enum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class AssetClass(str, Enum):
    US_EQUITY = "us_equity"
    US_OPTION = "us_option"


class Event(str, Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    TRIGGER = "trigger"
    REPLACE = "replace"
    FILL = "fill"
    CANCEL = "cancel"
    EXPIRE = "expire"


# The lifecycle: (state, event) -> state. Anything not listed is refused.
TRANSITIONS: dict[tuple[Status, Event], Status] = {
    # The submit saga: buying power reserved, or not.
    (Status.NEW, Event.ACCEPT): Status.ACCEPTED,
    (Status.NEW, Event.REJECT): Status.REJECTED,
    # A user may cancel while the saga is still reserving; the reservation, if any, is released.
    (Status.NEW, Event.CANCEL): Status.CANCELED,
    # A stop reached, or a replace, keeps the order working.
    (Status.ACCEPTED, Event.TRIGGER): Status.ACCEPTED,
    (Status.ACCEPTED, Event.REPLACE): Status.ACCEPTED,
    # v1 fills are full fills: one fill ends the order.
    (Status.ACCEPTED, Event.FILL): Status.FILLED,
    (Status.ACCEPTED, Event.CANCEL): Status.CANCELED,
    (Status.ACCEPTED, Event.EXPIRE): Status.EXPIRED,
}

WORKING = frozenset({Status.NEW, Status.ACCEPTED})
FINAL = frozenset({Status.FILLED, Status.CANCELED, Status.REJECTED, Status.EXPIRED})

# Refusals by event, with the reason the caller sees.
REFUSAL_REASONS = {Event.CANCEL: "ORDER_NOT_CANCELABLE", Event.REPLACE: "ORDER_NOT_REPLACEABLE"}

MAX_QTY = Decimal(1_000_000)
MAX_PRICE = Decimal(1_000_000)
MAX_CLIENT_ORDER_ID = 128
_CLIENT_ORDER_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


def next_status(status: Status, event: Event) -> Status:
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        reason = REFUSAL_REASONS.get(event, "CONFLICT")
        raise DomainError(reason, f"cannot {event.value} an order that is {status.value}",
                          status=status.value) from None


@dataclass(frozen=True)
class Leg:
    symbol: str
    side: Side
    ratio: int


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


@dataclass(frozen=True)
class Fill:
    """One execution and the NBBO tick it was priced from."""

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


def spec_digest(spec: OrderSpec) -> str:
    """SHA-256 of what a submission asked for (everything but its client_order_id): a
    client_order_id sent again must come with the same terms (Stripe's idempotency rule)."""
    def number(value: Decimal | None) -> str:
        return "" if value is None else format(value.normalize(), "f")

    parts = [spec.symbol, spec.asset_class.value, spec.side.value, number(spec.qty), spec.order_type.value,
             spec.time_in_force.value, number(spec.limit_price), number(spec.stop_price),
             *(f"{leg.symbol}:{leg.side.value}:{leg.ratio}" for leg in spec.legs)]
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

    def submitted_with(self, digest: str) -> bool:
        """Whether a submission with ``digest`` repeats the one that created this order."""
        known = self.request_digest or (spec_digest(self.spec) if self.version == 1 else None)
        return known is None or known == digest

    @property
    def is_working(self) -> bool:
        return self.status in WORKING

    def apply(self, event: Event, at: datetime, **changes) -> "Order":
        """This order after ``event`` at ``at`` (raises if the lifecycle refuses it)."""
        status = next_status(self.status, event)
        stamp = {Event.ACCEPT: "accepted_at", Event.REJECT: "rejected_at", Event.TRIGGER: "triggered_at",
                 Event.FILL: "filled_at", Event.CANCEL: "canceled_at", Event.EXPIRE: "expired_at",
                 Event.REPLACE: "replaced_at"}[event]
        return replace(self, status=status, updated_at=at, **{stamp: at}, **changes)


def validate_price(value: Decimal | None, name: str) -> None:
    """Positive, bounded, and on the price grid (Reg NMS 612: pennies from $1, 1/100 cent below)."""
    if value is None:
        return
    if value <= 0:
        raise invalid_argument(f"{name} must be positive", name)
    if value > MAX_PRICE:
        raise invalid_argument(f"{name} must be at most {MAX_PRICE}", name)
    places = max(0, -value.normalize().as_tuple().exponent)
    allowed = 2 if value >= 1 else 4
    if places > allowed:
        raise invalid_argument(f"{name} {value} is off the price grid: at most {allowed} decimals "
                               f"for prices {'>=' if allowed == 2 else '<'} $1", name)


def check_fill(order: Order, fill: Fill) -> None:
    """Defence in depth against a matcher bug: a fill must match the order and its limits."""
    spec = order.spec
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


def same_execution(recorded: Fill, fill: Fill) -> bool:
    """Whether ``fill`` repeats ``recorded`` (a fill id names one execution on one tick)."""
    return ((recorded.order_id, recorded.symbol, recorded.side, recorded.qty, recorded.price, recorded.quote_sequence,
             recorded.quote_at_ns) ==
            (fill.order_id, fill.symbol, fill.side, fill.qty, fill.price, fill.quote_sequence, fill.quote_at_ns))


def validate_spec(spec: OrderSpec) -> OrderSpec:
    """Check a submission; returns it unchanged or raises invalid_argument naming the field."""
    if not _CLIENT_ORDER_ID.match(spec.client_order_id):
        raise invalid_argument("client_order_id must be 1-128 printable ASCII characters without spaces",
                               "client_order_id")
    if spec.asset_class is AssetClass.US_OPTION or spec.legs:
        raise invalid_argument("options orders are not supported yet; trade us_equity symbols", "asset_class")
    if spec.qty <= 0:
        raise invalid_argument("qty must be positive", "qty")
    if spec.qty != spec.qty.to_integral_value():
        raise invalid_argument("qty must be a whole number of shares", "qty")
    if spec.qty > MAX_QTY:
        raise invalid_argument(f"qty must be at most {MAX_QTY}", "qty")
    needs_limit = spec.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = spec.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
    for name, value, needed in (("limit_price", spec.limit_price, needs_limit),
                                ("stop_price", spec.stop_price, needs_stop)):
        if needed and value is None:
            raise invalid_argument(f"a {spec.order_type.value} order needs {name}", name)
        if not needed and value is not None:
            raise invalid_argument(f"a {spec.order_type.value} order takes no {name}", name)
        validate_price(value, name)
    return spec


def collar_price(side: Side, order_type: OrderType, reference: Decimal | None, stop: Decimal | None,
                 collar_pct: Decimal) -> Decimal | None:
    """The protective bound of market and stop orders: ``collar_pct`` beyond the price they
    were submitted against (the touch for market orders, the stop for stops). Limit orders
    carry their own bound."""
    if order_type is OrderType.MARKET:
        basis = reference
    elif order_type is OrderType.STOP:
        basis = stop
    else:
        return None
    if basis is None:
        return None
    factor = 1 + collar_pct / 100 if side is Side.BUY else 1 - collar_pct / 100
    grid = Decimal("0.01") if basis >= 1 else Decimal("0.0001")
    return (basis * factor).quantize(grid)


def replacement(order: Order, *, qty: Decimal | None, limit_price: Decimal | None, stop_price: Decimal | None,
                time_in_force: TimeInForce | None) -> OrderSpec:
    """The order's spec after a replace, validated like a submission."""
    if all(v is None for v in (qty, limit_price, stop_price, time_in_force)):
        raise invalid_argument("nothing to replace: send qty, limit_price, stop_price or time_in_force")
    spec = order.spec
    if limit_price is not None and spec.order_type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        raise invalid_argument(f"a {spec.order_type.value} order takes no limit_price", "limit_price")
    if stop_price is not None and spec.order_type not in (OrderType.STOP, OrderType.STOP_LIMIT):
        raise invalid_argument(f"a {spec.order_type.value} order takes no stop_price", "stop_price")
    if stop_price is not None and order.triggered_at is not None:
        raise DomainError("ORDER_NOT_REPLACEABLE", "the stop was already reached; its stop_price cannot change")
    return validate_spec(replace(spec, qty=spec.qty if qty is None else qty,
                                 limit_price=spec.limit_price if limit_price is None else limit_price,
                                 stop_price=spec.stop_price if stop_price is None else stop_price,
                                 time_in_force=spec.time_in_force if time_in_force is None else time_in_force))


@dataclass(frozen=True)
class Session:
    """A regular trading session (from the exchange calendar)."""

    open_at: datetime
    close_at: datetime

    def contains(self, moment: datetime) -> bool:
        return self.open_at <= moment < self.close_at


def check_market_hours(spec: OrderSpec, now: datetime, session: Session) -> None:
    """ioc and fok are decided on the first tick: outside the session they cannot live.

    ``session`` is the first session that closes after ``now`` (today's, or the next one
    when the market is closed); a day order expires at its close."""
    if spec.time_in_force in (TimeInForce.IOC, TimeInForce.FOK) and not session.contains(now):
        raise DomainError("MARKET_CLOSED", f"{spec.time_in_force.value} orders need the market open; "
                                           "use day or gtc to wait for the next session")
