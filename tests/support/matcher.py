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
# Built once at module level: hypothesis validates a strategy each time one is made.

SHORT_SESSION = MarketSession(OPEN_NS, OPEN_NS + 20 * SECOND)
ONE_SYMBOL = st.just("XYZ")
GRID = st.integers(9_995, 10_005).map(lambda cents: Decimal(cents).scaleb(-2))
MAYBE_GRID = st.none() | GRID
# Mostly grid bids and positive spreads; sometimes a zero or negative bid, a locked or a
# crossed quote, which are unusable.
BIDS = st.one_of(*[GRID] * 7, st.sampled_from([Decimal("0"), Decimal("-1.00")]))
SPREADS = st.sampled_from([Decimal(cents).scaleb(-2) for cents in (1, 2, 1, 2, 3, 5, 0, -2)])
SIZES = st.sampled_from([Decimal(0), Decimal(100), Decimal(300), Decimal(1000)])
QUANTITIES = st.sampled_from([Decimal(1), Decimal(100), Decimal(500)])
SIDES = st.sampled_from(Side)
ORDER_TYPES = st.sampled_from(OrderType)
TIMES_IN_FORCE = st.sampled_from(TimeInForce)
# Few distinct acceptance times, so price-time ties fall back to the order id.
ACCEPTED = st.sampled_from([OPEN_NS - SECOND, OPEN_NS, OPEN_NS + 2 * SECOND, OPEN_NS + 5 * SECOND])
# Sampled lists put the ordinary case first: hypothesis favours a strategy's simplest value
# (a range's ends, a list's first element), which would otherwise crowd out the session.
EXPIRIES = st.sampled_from([OPEN_NS + seconds * SECOND for seconds in (25, 20, 15, 10, 5)])
# Tick times from shortly before the open to after the short session's close.
TICK_TIMES = st.sampled_from([OPEN_NS + seconds * SECOND for seconds in (*range(5, 23), -2, -1, 0, 1, 2, 3, 4)])


@st.composite
def working_orders(draw, order_id: str = "ord_1", symbols: st.SearchStrategy[str] = ONE_SYMBOL) -> WorkingOrder:
    kind = draw(ORDER_TYPES)
    tif = draw(TIMES_IN_FORCE)
    needs_limit = kind in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = kind in (OrderType.STOP, OrderType.STOP_LIMIT)
    return WorkingOrder(
        order_id=order_id,
        symbol=draw(symbols),
        side=draw(SIDES),
        qty=draw(QUANTITIES),
        order_type=kind,
        time_in_force=tif,
        limit_price=draw(GRID) if needs_limit else None,
        stop_price=draw(GRID) if needs_stop else None,
        collar_price=draw(MAYBE_GRID),
        accepted_ns=draw(ACCEPTED),
        triggered=needs_stop and draw(st.booleans()),
        expires_ns=draw(EXPIRIES) if tif is TimeInForce.DAY else None,
    )


@st.composite
def ticks(draw, at_ns: int, symbols: st.SearchStrategy[str] = ONE_SYMBOL, sequence: int = 1) -> Tick:
    bid = draw(BIDS)
    return Tick(draw(symbols), bid, draw(SIZES), bid + draw(SPREADS), draw(SIZES), at_ns, sequence)
