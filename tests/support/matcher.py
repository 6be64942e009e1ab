"""Builders and hypothesis strategies for the matcher's fill function and book tests."""

from __future__ import annotations

import dataclasses
import random
from decimal import Decimal

from hypothesis import strategies as st

from services.matcher.book import OrderBook, Outcome
from services.matcher.domain import (
    TERMINAL_ACTIONS,
    Action,
    MarketSession,
    OrderType,
    Side,
    Tick,
    TimeInForce,
    WorkingOrder,
    decide,
    evaluated_ticks,
)

BUY, SELL = Side.BUY, Side.SELL
MARKET, LIMIT, STOP, STOP_LIMIT = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT
DAY, GTC, IOC, FOK = TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK

SECOND = 1_000_000_000
OPEN_NS = 1340285400 * SECOND  # 2012-06-21 09:30 New York
CLOSE_NS = 1340308800 * SECOND  # 2012-06-21 16:00 New York
SESSION = MarketSession(OPEN_NS, CLOSE_NS)
# 2012-07-03, the day before Independence Day: the XNYS closes at 13:00 New York.
EARLY_CLOSE_SESSION = MarketSession(1341322200 * SECOND, 1341334800 * SECOND)
MID_SESSION_NS = OPEN_NS + 3600 * SECOND
MAX_AGE_NS = 2 * SECOND


def an_order(
    kind: OrderType = OrderType.LIMIT,
    side: Side = Side.BUY,
    *,
    tif: TimeInForce = TimeInForce.GTC,
    limit: str | None = None,
    stop: str | None = None,
    collar: str | None = None,
    qty: str = "100",
    triggered: bool = False,
    accepted_ns: int = OPEN_NS,
    expires_ns: int | None = None,
    order_id: str = "ord_1",
    symbol: str = "XYZ",
) -> WorkingOrder:
    return WorkingOrder(
        order_id=order_id,
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        order_type=kind,
        time_in_force=tif,
        limit_price=_decimal(limit),
        stop_price=_decimal(stop),
        collar_price=_decimal(collar),
        accepted_ns=accepted_ns,
        triggered=triggered,
        expires_ns=expires_ns,
    )


def a_tick(
    bid: str,
    ask: str,
    *,
    at_ns: int = MID_SESSION_NS,
    bid_size: str = "200",
    ask_size: str = "300",
    symbol: str = "XYZ",
    sequence: int = 1,
) -> Tick:
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


# --- the live loop in miniature: admit orders at acceptance, stream ticks in feed order ----


def session_for(at_ns: int) -> MarketSession | None:
    """The short session's calendar: the session in force at a time, None when closed."""
    return SHORT_SESSION if SHORT_SESSION.open_ns <= at_ns < SHORT_SESSION.close_ns else None


def run_live(orders: list[WorkingOrder], feed: list[Tick], max_quote_age_ns: int = MAX_AGE_NS) -> list[Outcome]:
    """What the matcher loop does: an accepted order is first decided on the quote standing
    at its acceptance, then rests in the book, which decides it on every later tick."""
    book = OrderBook()
    standing: dict[str, Tick] = {}
    outcomes: list[Outcome] = []
    arrivals = sorted(orders, key=lambda o: (o.accepted_ns, o.order_id))
    for tick in feed:
        while arrivals and arrivals[0].accepted_ns <= tick.at_ns:
            order = arrivals.pop(0)
            outcomes += _admit(
                book, order, [standing[order.symbol]] if order.symbol in standing else [], max_quote_age_ns
            )
        outcomes += book.process(tick, session_for(tick.at_ns), max_quote_age_ns)
        standing[tick.symbol] = tick
    return outcomes


def _admit(book: OrderBook, order: WorkingOrder, since_acceptance: list[Tick], max_quote_age_ns: int) -> list[Outcome]:
    outcomes = []
    for tick, evaluated_ns in evaluated_ticks(order, since_acceptance):
        decision = decide(
            order, tick, session=session_for(evaluated_ns), evaluated_ns=evaluated_ns, max_quote_age_ns=max_quote_age_ns
        )
        if decision.action is Action.WAIT:
            continue
        outcomes.append(Outcome(order, decision))
        if decision.action in TERMINAL_ACTIONS:
            return outcomes
        order = dataclasses.replace(order, triggered=True)
    book.add(order)
    return outcomes


def seeded_day(seed: int, orders: int = 60, ticks: int = 400) -> tuple[list[WorkingOrder], list[Tick]]:
    """A reproducible mix of orders around two random-walk quotes through the short session."""
    rng = random.Random(seed)
    symbols = ("AAA", "BBB")
    mids = dict.fromkeys(symbols, 10_000)
    feed = []
    for sequence in range(1, ticks + 1):
        symbol = rng.choice(symbols)
        mids[symbol] += rng.choice((-2, -1, 0, 1, 2))
        spread = rng.choice((1, 1, 2, 3, 0, -1))
        bid = Decimal(mids[symbol]).scaleb(-2)
        feed.append(
            Tick(
                symbol,
                bid,
                Decimal(rng.choice((100, 300, 1000))),
                bid + Decimal(spread).scaleb(-2),
                Decimal(rng.choice((100, 300, 1000))),
                OPEN_NS + (sequence - 40) * SECOND // 16,
                sequence,
            )
        )
    working = []
    for n in range(orders):
        kind = rng.choice(list(OrderType))
        tif = rng.choice((TimeInForce.DAY, TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK))
        price = Decimal(10_000 + rng.randint(-15, 15)).scaleb(-2)
        other = Decimal(10_000 + rng.randint(-15, 15)).scaleb(-2)
        working.append(
            an_order(
                kind,
                rng.choice(list(Side)),
                tif=tif,
                order_id=f"ord_{n:03d}",
                symbol=rng.choice(symbols),
                limit=str(other if kind is OrderType.STOP_LIMIT else price) if kind in _WITH_LIMIT else None,
                stop=str(price) if kind in _WITH_STOP else None,
                collar=str(Decimal(10_000 + rng.randint(-30, 30)).scaleb(-2)) if rng.random() < 0.3 else None,
                qty=rng.choice(("1", "100", "500")),
                accepted_ns=OPEN_NS + rng.randint(-3, 18) * SECOND,
                expires_ns=OPEN_NS + rng.choice((12, 20)) * SECOND if tif is TimeInForce.DAY else None,
            )
        )
    return working, feed


_WITH_LIMIT = (OrderType.LIMIT, OrderType.STOP_LIMIT)
_WITH_STOP = (OrderType.STOP, OrderType.STOP_LIMIT)
