"""Builders and hypothesis strategies for the matcher's fill function and book tests."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from services.matcher.domain import MarketSession, OrderType, Side, Tick, TimeInForce, WorkingOrder

SECOND = 1_000_000_000
OPEN_NS = 1340285400 * SECOND    # 2012-06-21 09:30 New York
CLOSE_NS = 1340308800 * SECOND   # 2012-06-21 16:00 New York
SESSION = MarketSession(OPEN_NS, CLOSE_NS)
# 2012-07-03, the day before Independence Day: the XNYS closes at 13:00 New York.
EARLY_CLOSE_SESSION = MarketSession(1341322200 * SECOND, 1341334800 * SECOND)
MID_SESSION_NS = OPEN_NS + 3600 * SECOND
MAX_AGE_NS = 2 * SECOND


def an_order(kind: OrderType = OrderType.LIMIT, side: Side = Side.BUY, *, tif: TimeInForce = TimeInForce.GTC,
             limit: str | None = None, stop: str | None = None, collar: str | None = None, qty: str = "100",
             triggered: bool = False, accepted_ns: int = OPEN_NS, expires_ns: int | None = None,
             order_id: str = "ord_1", symbol: str = "XYZ") -> WorkingOrder:
    return WorkingOrder(
        order_id=order_id, symbol=symbol, side=side, qty=Decimal(qty), order_type=kind, time_in_force=tif,
        limit_price=_decimal(limit), stop_price=_decimal(stop), collar_price=_decimal(collar),
        accepted_ns=accepted_ns, triggered=triggered, expires_ns=expires_ns)


def a_tick(bid: str, ask: str, *, at_ns: int = MID_SESSION_NS, bid_size: str = "200", ask_size: str = "300",
           symbol: str = "XYZ", sequence: int = 1) -> Tick:
    return Tick(symbol, Decimal(bid), Decimal(bid_size), Decimal(ask), Decimal(ask_size), at_ns, sequence)


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


# --- strategies: a narrow price grid so that orders and quotes cross often -----------------

SHORT_SESSION = MarketSession(OPEN_NS, OPEN_NS + 20 * SECOND)
GRID = st.integers(9_995, 10_005).map(lambda cents: Decimal(cents).scaleb(-2))
# Mostly grid prices; sometimes zero or negative, which make a quote unusable.
QUOTE_PRICES = st.one_of(GRID, GRID, GRID, st.sampled_from([Decimal("0"), Decimal("-1.00")]))
SIZES = st.sampled_from([Decimal(0), Decimal(100), Decimal(300), Decimal(1000)])
# Few distinct acceptance times, so price-time ties fall back to the order id.
ACCEPTED = st.sampled_from([OPEN_NS - SECOND, OPEN_NS, OPEN_NS + 2 * SECOND, OPEN_NS + 5 * SECOND])


@st.composite
def working_orders(draw, order_id: str = "ord_1", symbols: tuple[str, ...] = ("XYZ",)) -> WorkingOrder:
    kind = draw(st.sampled_from(OrderType))
    tif = draw(st.sampled_from(TimeInForce))
    needs_limit = kind in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = kind in (OrderType.STOP, OrderType.STOP_LIMIT)
    return WorkingOrder(
        order_id=order_id,
        symbol=draw(st.sampled_from(symbols)),
        side=draw(st.sampled_from(Side)),
        qty=draw(st.sampled_from([Decimal(1), Decimal(100), Decimal(500)])),
        order_type=kind,
        time_in_force=tif,
        limit_price=draw(GRID) if needs_limit else None,
        stop_price=draw(GRID) if needs_stop else None,
        collar_price=draw(st.none() | GRID),
        accepted_ns=draw(ACCEPTED),
        triggered=needs_stop and draw(st.booleans()),
        expires_ns=draw(st.integers(OPEN_NS, OPEN_NS + 25 * SECOND)) if tif is TimeInForce.DAY else None,
    )


@st.composite
def ticks(draw, at_ns: int, symbols: tuple[str, ...] = ("XYZ",), sequence: int = 1) -> Tick:
    return Tick(draw(st.sampled_from(symbols)), draw(QUOTE_PRICES), draw(SIZES), draw(QUOTE_PRICES),
                draw(SIZES), at_ns, sequence)


# Tick times from shortly before the open to after the short session's close.
TICK_TIMES = st.integers(OPEN_NS - 3 * SECOND, OPEN_NS + 30 * SECOND)
