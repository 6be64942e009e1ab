"""The rules an order must follow to be accepted, replaced or filled: the submission's
validation, the price grid, the protective collar and the worst price a hold is priced at,
market hours and quote freshness. Pure: callers pass quotes, sessions and times in."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from services.common.errors import DomainError, invalid_argument
from services.common.instruments import parse_symbol
from services.common.trading import AssetClass, OrderType, Side, TimeInForce
from services.common.wire.conv import on_price_grid
from services.orders.domain.model import Leg, Order, OrderClass, OrderSpec

MAX_QTY = Decimal(1_000_000)
MAX_PRICE = Decimal(1_000_000)
MAX_CLIENT_ORDER_ID = 128
_CLIENT_ORDER_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
PRICED_AT_LIMIT = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})


def validate_price(value: Decimal | None, name: str) -> None:
    """Positive, bounded, and on the price grid (Reg NMS 612: pennies from $1, 1/100 cent below)."""
    if value is None:
        return
    if value <= 0:
        raise invalid_argument(f"{name} must be positive", name)
    if value > MAX_PRICE:
        raise invalid_argument(f"{name} must be at most {MAX_PRICE}", name)
    exponent = value.normalize().as_tuple().exponent
    places = max(0, -exponent) if isinstance(exponent, int) else 0
    allowed = 2 if value >= 1 else 4
    if places > allowed:
        raise invalid_argument(
            f"{name} {value} is off the price grid: at most {allowed} decimals "
            f"for prices {'>=' if allowed == 2 else '<'} $1",
            name,
        )


def is_option_order(spec: OrderSpec) -> bool:
    """Whether ``spec`` names an option contract: sent as us_option, or an OCC symbol."""
    if spec.asset_class is AssetClass.US_OPTION:
        return True
    try:
        return parse_symbol(spec.symbol).is_option
    except DomainError:
        return False


def validate_spec(spec: OrderSpec) -> OrderSpec:
    """Check a submission; returns it unchanged or raises invalid_argument naming the field.
    An option order's quantity and prices are checked once its contracts are known
    (``options.validate_option_spec``, ``options.validate_multileg``)."""
    if not _CLIENT_ORDER_ID.match(spec.client_order_id):
        raise invalid_argument(
            "client_order_id must be 1-128 printable ASCII characters without spaces", "client_order_id"
        )
    if spec.legs or is_option_order(spec):
        return spec
    if spec.position_intent is not None:
        raise invalid_argument("position_intent is for option orders only", "position_intent")
    if spec.qty <= 0:
        raise invalid_argument("qty must be positive", "qty")
    if spec.qty != spec.qty.to_integral_value():
        raise invalid_argument("qty must be a whole number of shares", "qty")
    if spec.qty > MAX_QTY:
        raise invalid_argument(f"qty must be at most {MAX_QTY}", "qty")
    needs_limit = spec.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = spec.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
    for name, value, needed in (
        ("limit_price", spec.limit_price, needs_limit),
        ("stop_price", spec.stop_price, needs_stop),
    ):
        if needed and value is None:
            raise invalid_argument(f"a {spec.order_type.value} order needs {name}", name)
        if not needed and value is not None:
            raise invalid_argument(f"a {spec.order_type.value} order takes no {name}", name)
        validate_price(value, name)
    return spec


def collar_price(spec: OrderSpec, reference: Decimal | None, collar_pct: Decimal) -> Decimal | None:
    """The protective bound of market and stop orders, in dollars per share: ``collar_pct``
    beyond the price they were submitted against (the touch for market orders, the stop for
    stops), on the price grid users see (``on_price_grid``: an option's cents, a stock's
    cents from $1, half away from zero), so the bound shown is the bound held. Limit orders
    carry their own bound."""
    if spec.order_type is OrderType.MARKET:
        basis = reference
    elif spec.order_type is OrderType.STOP:
        basis = spec.stop_price
    else:
        return None
    if basis is None:
        return None
    factor = 1 + collar_pct / 100 if spec.side is Side.BUY else 1 - collar_pct / 100
    return on_price_grid(basis * factor, option=spec.asset_class is AssetClass.US_OPTION)


@dataclass(frozen=True)
class ReplaceTerms:
    """What a replace asks to change; None keeps the order's value. ``legs`` are a
    multi-leg order's legs as sent, if any: they cannot change (``check_same_legs``)."""

    qty: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    legs: tuple[Leg, ...] = ()


def replacement(order: Order, terms: ReplaceTerms) -> OrderSpec:
    """The order's spec after a replace, validated like a submission (a multi-leg order's
    by ``options.validate_mleg_spec`` and the sign check, which need its contracts and
    quotes: the replace saga runs them). Raises ``invalid_argument`` naming the field."""
    spec = order.spec
    if terms.legs:
        check_same_legs(spec, terms.legs)
    if all(v is None for v in (terms.qty, terms.limit_price, terms.stop_price, terms.time_in_force)):
        raise invalid_argument("nothing to replace: send qty, limit_price, stop_price or time_in_force")
    if order.is_entry:
        raise DomainError(
            "ORDER_NOT_REPLACEABLE",
            f"the entry of a {spec.order_class.value} order cannot be replaced (its exits were checked against its "
            "price): cancel it, its exits go with it, and submit a new one",
        )
    if spec.order_class is not OrderClass.SIMPLE and (terms.qty is not None or terms.time_in_force is not None):
        raise DomainError(
            "ORDER_NOT_REPLACEABLE",
            f"an exit of a {spec.order_class.value} order takes new prices only (limit_price, stop_price): its "
            "quantity and time in force are its entry's",
        )
    if terms.limit_price is not None and spec.order_type not in PRICED_AT_LIMIT:
        raise invalid_argument(f"a {spec.order_type.value} order takes no limit_price", "limit_price")
    if terms.stop_price is not None and spec.order_type not in (OrderType.STOP, OrderType.STOP_LIMIT):
        raise invalid_argument(f"a {spec.order_type.value} order takes no stop_price", "stop_price")
    if terms.stop_price is not None and order.triggered_at is not None:
        raise DomainError("ORDER_NOT_REPLACEABLE", "the stop was already reached; its stop_price cannot change")
    return validate_spec(
        replace(
            spec,
            qty=spec.qty if terms.qty is None else terms.qty,
            limit_price=spec.limit_price if terms.limit_price is None else terms.limit_price,
            stop_price=spec.stop_price if terms.stop_price is None else terms.stop_price,
            time_in_force=spec.time_in_force if terms.time_in_force is None else terms.time_in_force,
        )
    )


def check_same_legs(spec: OrderSpec, legs: tuple[Leg, ...]) -> None:
    """A replace changes a multi-leg order's net limit, number of spreads and time in force,
    never its legs (Alpaca's replace takes qty, limit_price, stop_price, trail and
    time_in_force only): ``legs`` sent with a replace must be the order's own, in order, by
    symbol (padded or compact OCC), side and ratio. ``invalid_argument`` on ``legs``
    otherwise, and for legs sent to replace a single-leg order."""
    if not spec.is_multileg:
        raise invalid_argument("legs are for multi-leg orders: this order has none to replace", "legs")
    sent = tuple(
        (parse_symbol(leg.symbol, f"legs[{index}].symbol").symbol, leg.side, leg.ratio)
        for index, leg in enumerate(legs)
    )
    if sent != tuple((leg.symbol, leg.side, leg.ratio) for leg in spec.legs):
        raise invalid_argument(
            "the legs of a multi-leg order cannot be replaced: a replace changes its limit_price, qty "
            "(spreads) and time_in_force; cancel it and submit a new order for other legs",
            "legs",
        )


def replaced_collar(order: Order, spec: OrderSpec, collar_pct: Decimal) -> Decimal | None:
    """A replaced stop is collared from its new stop; other orders keep their collar."""
    if spec.order_type is OrderType.STOP:
        return collar_price(spec, None, collar_pct)
    return order.collar_price


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
        raise DomainError(
            "MARKET_CLOSED",
            f"{spec.time_in_force.value} orders need the market open; use day or gtc to wait for the next session",
        )


CONTRACT_EXPIRED = "contract_expired"


def order_expiry(
    time_in_force: TimeInForce, session_close: datetime, last_trades: Iterable[datetime | None]
) -> datetime | None:
    """When a working order expires (UTC), None when it never does: the earliest of its
    session's close (``session_close``, day orders only) and the last trading time of each
    option contract it names (``last_trades``: market data's ``last_trade_time`` per contract,
    the close of the contract's last trading session; None for stock). Whatever its time in
    force, an order on a contract stops working when the contract stops trading (issue 11):
    it could never fill after, and its hold would lie."""
    due = [moment for moment in last_trades if moment is not None]
    if time_in_force is TimeInForce.DAY:
        due.append(session_close)
    return min(due, default=None)


def expiry_reason(expires_at: datetime, last_trades: Iterable[datetime | None]) -> str:
    """Why an order expiring at ``expires_at`` expires: ``contract_expired`` when a contract
    it names stopped trading by then (``last_trades`` as in ``order_expiry``), "" for a day
    order reaching its session's close."""
    if any(moment is not None and moment <= expires_at for moment in last_trades):
        return CONTRACT_EXPIRED
    return ""


def worst_price(spec: OrderSpec, collar: Decimal | None) -> Decimal | None:
    """The worst price per share (or per contract's share) the order can fill at: its limit
    for limit and stop-limit orders, otherwise its collar. Buying power is held at it, so a
    fill never spends cash that was not held (the one owner of that bound)."""
    return spec.limit_price if spec.order_type in PRICED_AT_LIMIT else collar


def held_price(spec: OrderSpec, collar: Decimal | None) -> Decimal:
    """``worst_price`` of an order that is to hold buying power (``invalid_argument`` when
    it has none: a market or stop order always has its collar by then). A multi-leg order's
    is its worst net per spread, of either sign."""
    worst = worst_price(spec, collar)
    if worst is not None and spec.is_multileg:
        return worst
    if worst is None or worst <= 0:
        raise invalid_argument("the order has no price to hold buying power against", "worst_price")
    return worst


@dataclass(frozen=True)
class QuoteSnapshot:
    """The latest quote of a symbol as an order is priced against it."""

    bid: Decimal | None
    ask: Decimal | None
    quote_at: datetime
    usable: bool

    def touch(self, side: Side) -> Decimal | None:
        """What an order would trade against now: the ask to buy, the bid to sell; None when
        the quote is crossed, locked or empty."""
        if not self.usable:
            return None
        return self.ask if side is Side.BUY else self.bid


def market_reference(
    spec: OrderSpec, quote: QuoteSnapshot | None, now: datetime, market_open: bool, max_age_seconds: Decimal
) -> Decimal:
    """The touch a market order is submitted against, or the refusal: ``stale_quote`` when
    there is no quote or (market open) it is older than ``max_age_seconds``, ``unusable_quote``
    when it is crossed, locked or empty (README "Collars")."""
    reference = quote.touch(spec.side) if quote is not None else None
    if quote is None or reference is None:
        reason = "STALE_QUOTE" if quote is None else "UNUSABLE_QUOTE"
        raise DomainError(reason, f"no usable quote for {spec.symbol} to price a market order; use a limit order")
    age = (now - quote.quote_at).total_seconds()
    if market_open and Decimal(str(age)) > max_age_seconds:
        raise DomainError(
            "STALE_QUOTE", f"the latest {spec.symbol} quote is {age:.0f}s old; a market order needs a fresh one"
        )
    return reference
