"""Matcher throughput: ticks/s through OrderBook.process over the bundled real NBBO replay,
with 10, 1,000 and 10,000 resting orders spread around the market so that some fill."""

from __future__ import annotations

import csv
import functools
import gzip
import random
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import exchange_calendars
import pandas

from bench.report import Figure, machine, median_of
from services.matcher.book import OrderBook, Outcome
from services.matcher.domain import MarketSession, OrderType, Side, Tick, TimeInForce, WorkingOrder

QUOTES_PATH = Path(__file__).resolve().parents[1] / "data" / "lobster_l1_quotes_AMZN_GOOG_2012-06-21.csv.gz"
RESTING_ORDERS = (10, 1_000, 10_000)
RUNS = 5
MAX_QUOTE_AGE_NS = 2_000_000_000
SEED = 20120621
AIM = ">= 200,000 ticks/s with 10,000 resting orders"

# Mostly resting limits and stops; a few orders that act at once (market, ioc, fok).
ORDER_TYPES = ((OrderType.LIMIT, 50), (OrderType.STOP, 20), (OrderType.STOP_LIMIT, 22), (OrderType.MARKET, 8))
TIMES_IN_FORCE = ((TimeInForce.DAY, 60), (TimeInForce.GTC, 34), (TimeInForce.IOC, 3), (TimeInForce.FOK, 3))
CENT = Decimal("0.01")


def run() -> list[Figure]:
    ticks = load_ticks(QUOTES_PATH)
    session = regular_session(ticks[0].at_ns)
    figures = []
    for count in RESTING_ORDERS:
        orders = resting_orders(ticks, session, count, random.Random(SEED))
        actions = Counter(o.decision.action.value for o in replay_book(orders, ticks, session))
        rate = median_of(RUNS, functools.partial(ticks_per_second, orders, ticks, session))
        config = (
            f"{len(ticks):,} ticks (AMZN+GOOG 2012-06-21), {count:,} resting orders "
            f"({_mix(orders)}), outcomes {dict(sorted(actions.items()))}, {machine()}"
        )
        figures.append(
            Figure(
                f"matcher {count:,} resting orders",
                rate,
                "ticks/s",
                RUNS,
                config,
                AIM if count == max(RESTING_ORDERS) else "",
            )
        )
    return figures


def load_ticks(path: Path) -> list[Tick]:
    with gzip.open(path, "rt", newline="") as rows:
        return [
            Tick(
                row["symbol"],
                Decimal(row["bid_px"]),
                Decimal(row["bid_sz"]),
                Decimal(row["ask_px"]),
                Decimal(row["ask_sz"]),
                int(row["ts_ns"]),
                sequence,
            )
            for sequence, row in enumerate(csv.DictReader(rows), start=1)
        ]


def regular_session(at_ns: int) -> MarketSession:
    """The XNYS regular session of the day `at_ns` falls on (New York time)."""
    day = pandas.Timestamp(at_ns, tz="UTC").tz_convert("America/New_York").normalize().tz_localize(None)
    calendar = exchange_calendars.get_calendar("XNYS", start=f"{day.year}-01-01", end=f"{day.year}-12-31")
    return MarketSession(calendar.session_open(day).value, calendar.session_close(day).value)


def resting_orders(ticks: list[Tick], session: MarketSession, count: int, rng: random.Random) -> list[WorkingOrder]:
    """Orders accepted at the open around each symbol's first mid: limits on the passive
    side and stops beyond the market, up to 3% away, a few already marketable."""
    first_mid: dict[str, Decimal] = {}
    for tick in ticks:
        first_mid.setdefault(tick.symbol, (tick.bid + tick.ask) / 2)
    symbols = sorted(first_mid)
    orders = []
    for n in range(count):
        symbol = symbols[n % len(symbols)]
        side = rng.choice((Side.BUY, Side.SELL))
        kind = _weighted(rng, ORDER_TYPES)
        tif = _weighted(rng, TIMES_IN_FORCE)
        away = Decimal(rng.randint(-20, 300))  # basis points away from the mid, on the passive side
        passive = 1 - away / 10_000 if side is Side.BUY else 1 + away / 10_000
        beyond = 1 + away / 10_000 if side is Side.BUY else 1 - away / 10_000
        mid = first_mid[symbol]
        limit: Decimal | None = None
        stop: Decimal | None = None
        if kind is OrderType.LIMIT:
            limit = (mid * passive).quantize(CENT)
        if kind in (OrderType.STOP, OrderType.STOP_LIMIT):
            stop = (mid * beyond).quantize(CENT)
        if kind is OrderType.STOP_LIMIT and stop is not None:  # set just above
            limit = (stop * (Decimal("1.002") if side is Side.BUY else Decimal("0.998"))).quantize(CENT)
        collar = None
        if kind in (OrderType.MARKET, OrderType.STOP) and rng.random() < 0.5:
            collar = (mid * (Decimal("1.05") if side is Side.BUY else Decimal("0.95"))).quantize(CENT)
        orders.append(
            WorkingOrder(
                order_id=f"ord_bench_{n:06d}",
                symbol=symbol,
                side=side,
                qty=Decimal(rng.choice((1, 10, 100, 500))),
                order_type=kind,
                time_in_force=tif,
                limit_price=limit,
                stop_price=stop,
                collar_price=collar,
                accepted_ns=session.open_ns,
                triggered=False,
                expires_ns=session.close_ns if tif is TimeInForce.DAY else None,
            )
        )
    return orders


def replay_book(orders: list[WorkingOrder], ticks: list[Tick], session: MarketSession) -> list[Outcome]:
    book = _book_of(orders)
    return [outcome for tick in ticks for outcome in book.process(tick, session, MAX_QUOTE_AGE_NS)]


def ticks_per_second(orders: list[WorkingOrder], ticks: list[Tick], session: MarketSession) -> float:
    book = _book_of(orders)
    process = book.process
    started = time.perf_counter()
    for tick in ticks:
        process(tick, session, MAX_QUOTE_AGE_NS)
    return len(ticks) / (time.perf_counter() - started)


def _book_of(orders: list[WorkingOrder]) -> OrderBook:
    book = OrderBook()
    for order in orders:
        book.add(order)
    return book


def _weighted(rng: random.Random, choices: tuple[tuple[object, int], ...]):
    values, weights = zip(*choices, strict=True)
    return rng.choices(values, weights)[0]


def _mix(orders: list[WorkingOrder]) -> str:
    kinds = Counter(o.order_type.value for o in orders)
    return ", ".join(f"{kinds[kind.value]} {kind.value}" for kind, _ in ORDER_TYPES if kinds[kind.value])
