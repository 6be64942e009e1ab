"""Matcher throughput on options: ticks/s through the live matcher's Engine with 1,000 resting
AMZN option orders (a third multi-leg) over a window of the bundled day's AMZN quotes and
the option quote model's quotes of the contracts they trade.

The feed is what market data streams in replay: each AMZN tick followed by the model quotes
that changed on it (``OptionQuoteModel.expand``, source ``model``), computed before the timed
part. The timed part is the live path: ``Engine.on_tick`` on every tick (the book and
``decide`` for single-leg orders; ``decide_spread_on`` for each spread one of whose legs
ticked, on every leg's latest quote), then ``Engine.drain`` so each decision is sent before
the next tick, as the stream's pace allows live. Fakes stand in for the orders service
(fills are recorded in memory) and market data (a leg's latest quote is the model at the
latest usable AMZN tick, as ``GetLatestQuote`` answers it).

``MBT_BENCH_OPTIONS_MINUTES`` sets the window from 10:00 New York (default 10; ``day``: the
whole session from its first usable AMZN quote: 443,727 ticks, whose model quotes take about
5 minutes to compute on 2 cores, and at these rates 12-20 minutes a run, against about 30
seconds for the default window)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from bench.matcher import regular_session
from bench.report import Figure, machine
from services.common.instruments import CALL, PUT, SymbolSpec, to_option_grid
from services.common.trading import FillPreference
from services.marketdata import recording
from services.marketdata.app import bundled_calibration
from services.marketdata.domain.calendar import xnys
from services.marketdata.domain.ticks import Tick as FeedTick
from services.marketdata.optionmodel import OptionQuoteModel, reference_prices
from services.marketdata.timeline import ReplayTimeline
from services.matcher.clients import SessionCalendar
from services.matcher.domain import MarketSession, OrderType, Side, Tick, TimeInForce, WorkingOrder
from services.matcher.multileg import SpreadDecision, SpreadLeg, WorkingSpread
from services.matcher.usecases.matching import Engine
from services.matcher.views import OpenOrder, OpenSpread

UNDERLYING = "AMZN"
DAY = date(2012, 6, 21)
WINDOW_START_NS = int(datetime(2012, 6, 21, 14, 0, tzinfo=UTC).timestamp()) * 10**9  # 10:00 New York
EXPIRIES = (date(2012, 6, 22), date(2012, 6, 29))  # the two nearest listed Fridays
ORDERS = 1_000
RUNS = 3
SEED = 20120621
MINUTES_VARIABLE = "MBT_BENCH_OPTIONS_MINUTES"
MAX_QUOTE_AGE_NS = 5 * 10**9  # MBT_MAX_QUOTE_AGE_SECONDS's default
CONTRACT = Decimal(100)
CENT = Decimal("0.01")
BUY, SELL = Side.BUY, Side.SELL


@dataclass(frozen=True)
class Scenario:
    """The window's feed (matcher ticks, in stream order) and the orders resting at its start."""

    window: str
    contracts: tuple[SymbolSpec, ...]
    opening: dict[str, Tick]  # each contract's latest quote at the window's start
    ticks: list[Tick]
    option_ticks: int
    singles: list[WorkingOrder]
    spreads: list[WorkingSpread]
    session: MarketSession


@dataclass
class Outcome:
    """What one replay decided: fills sent to the orders service, by kind."""

    single_fills: int = 0
    spread_fills: int = 0
    spread_legs: Counter[int] = field(default_factory=Counter)  # fills by number of legs
    at_admission: int = 0  # of those, decided when the order was admitted
    resting: int = 0  # still working at the window's end
    seconds: float = 0.0


def run() -> list[Figure]:
    scenario = build_scenario(window_minutes())
    outcomes = [asyncio.run(replay(scenario)) for _ in range(RUNS)]
    rates = sorted(len(scenario.ticks) / o.seconds for o in outcomes)
    first = outcomes[0]
    legs = ", ".join(f"{n}-leg {first.spread_legs[n]}" for n in sorted(first.spread_legs))
    config = (
        f"{scenario.window}: {len(scenario.ticks):,} ticks ({len(scenario.ticks) - scenario.option_ticks:,} "
        f"{UNDERLYING} + {scenario.option_ticks:,} model option quotes of {len(scenario.contracts)} contracts, "
        f"expiries {EXPIRIES[0]} and {EXPIRIES[1]}); {ORDERS:,} orders ({len(scenario.singles)} single-leg "
        f"limits, {len(scenario.spreads)} spreads: {_structures(scenario.spreads)}); fills "
        f"{first.single_fills} single + {first.spread_fills} spreads ({legs}), {first.at_admission} of them "
        f"at admission; {first.resting} resting at the end; Engine.on_tick + drain per tick, in-memory "
        f"fakes for orders and market data; {machine()}"
    )
    return [Figure("matcher, 1,000 resting option orders", rates[len(rates) // 2], "ticks/s", RUNS, config)]


def window_minutes() -> int | None:
    """The window's length from ``MBT_BENCH_OPTIONS_MINUTES``: minutes, or None (``day``)."""
    raw = os.environ.get(MINUTES_VARIABLE, "10").strip().lower()
    return None if raw == "day" else int(raw)


def build_scenario(minutes: int | None, orders: int = ORDERS, seed: int = SEED) -> Scenario:
    """The feed of ``minutes`` from 10:00 New York (None: the whole session) and ``orders``
    resting orders accepted at its start, a third of them spreads."""
    timeline = ReplayTimeline(recording.load_recording(recording.BUNDLED_QUOTES), xnys(), loop=False)
    references = reference_prices(timeline, [UNDERLYING])
    model = OptionQuoteModel(timeline, xnys(), bundled_calibration(), references=references, rate=Decimal("0.001"))
    session = regular_session(WINDOW_START_NS)
    if minutes is None:  # from the session's first usable AMZN quote: none stands at the open
        ticks = timeline.between(session.open_ns - 1, session.close_ns, {UNDERLYING})
        start_ns, end_ns = next(t for t in ticks if t.usable).quote_at_ns, session.close_ns
    else:
        start_ns, end_ns = WINDOW_START_NS, WINDOW_START_NS + minutes * 60 * 10**9
    contracts = tuple(spec for expiry in EXPIRIES for spec in model.contracts(UNDERLYING, start_ns, expiry))
    model.track(contracts, start_ns)
    opening = {}
    for spec in contracts:
        latest = model.latest(spec, start_ns)
        if latest is not None:
            opening[spec.symbol] = matcher_tick(latest)
    feed = list(model.expand(timeline.between(start_ns, end_ns, {UNDERLYING}), frozenset({UNDERLYING})))
    rng = random.Random(seed)
    spread_count = orders // 3
    window = "the whole session" if minutes is None else f"{minutes} minutes from 10:00 New York"
    return Scenario(
        window=f"{window}, {DAY}",
        contracts=contracts,
        opening=opening,
        ticks=[matcher_tick(t) for t in feed],
        option_ticks=sum(1 for t in feed if t.symbol != UNDERLYING),
        singles=single_orders(opening, orders - spread_count, start_ns, session, rng),
        spreads=spread_orders(contracts, opening, spread_count, start_ns, session, rng),
        session=session,
    )


def matcher_tick(tick: FeedTick) -> Tick:
    """A streamed quote as the matcher reads it (``wire.tick_from_quote``: no size is 0)."""
    zero = Decimal(0)
    return Tick(
        tick.symbol,
        tick.bid if tick.bid is not None else zero,
        tick.bid_size if tick.bid_size is not None else zero,
        tick.ask if tick.ask is not None else zero,
        tick.ask_size if tick.ask_size is not None else zero,
        tick.quote_at_ns,
        tick.sequence,
    )


def single_orders(
    opening: dict[str, Tick], count: int, at_ns: int, session: MarketSession, rng: random.Random
) -> list[WorkingOrder]:
    """Limits on the passive side of each contract's opening mid, 2% through to 25% away (on
    the option price grid): a few fill at once, more as AMZN moves, most rest."""
    symbols = sorted(opening)
    orders = []
    for n in range(count):
        symbol = symbols[n % len(symbols)]
        quote = opening[symbol]
        side = rng.choice((BUY, SELL))
        away = Decimal(rng.randint(-2, 25)) / 100
        mid = (quote.bid + quote.ask) / 2
        price = mid * (1 - away) if side is BUY else mid * (1 + away)
        limit = max(to_option_grid(price, UNDERLYING, up=side is SELL), CENT)
        tif = rng.choice((TimeInForce.DAY, TimeInForce.GTC))
        orders.append(
            WorkingOrder(
                order_id=f"ord_bench_opt_{n:05d}",
                symbol=symbol,
                side=side,
                qty=Decimal(rng.choice((1, 2, 5, 10))),
                order_type=OrderType.LIMIT,
                time_in_force=tif,
                limit_price=limit,
                stop_price=None,
                collar_price=None,
                accepted_ns=at_ns,
                triggered=False,
                expires_ns=session.close_ns if tif is TimeInForce.DAY else None,
            )
        )
    return orders


def spread_orders(
    contracts: tuple[SymbolSpec, ...],
    opening: dict[str, Tick],
    count: int,
    at_ns: int,
    session: MarketSession,
    rng: random.Random,
) -> list[WorkingSpread]:
    """Verticals (calls or puts, bought or sold, on adjacent strikes) and iron condors (around
    a random strike: a short put and a short call one strike either side of it, long wings
    one further), alternating between the two expiries; net limits from a cent over the net
    mid to 30 cents under it: some fill at once or as quotes move, most rest."""
    orders = []
    legs: tuple[SpreadLeg, ...]
    for n in range(count):
        expiry = EXPIRIES[n % len(EXPIRIES)]
        chain = [c for c in contracts if c.expiration == expiry and c.symbol in opening]
        strikes = sorted({c.strike for c in chain if c.strike is not None})
        by_terms = {(c.option_type, c.strike): c.symbol for c in chain}
        if n % 3 == 2:
            centre = rng.randrange(2, len(strikes) - 2)
            legs = (
                SpreadLeg(by_terms[PUT, strikes[centre - 2]], BUY, 1),
                SpreadLeg(by_terms[PUT, strikes[centre - 1]], SELL, 1),
                SpreadLeg(by_terms[CALL, strikes[centre + 1]], SELL, 1),
                SpreadLeg(by_terms[CALL, strikes[centre + 2]], BUY, 1),
            )
        else:
            low = rng.randrange(len(strikes) - 1)
            kind = rng.choice((CALL, PUT))
            lower, upper = by_terms[kind, strikes[low]], by_terms[kind, strikes[low + 1]]
            bought, sold = (lower, upper) if rng.random() < 0.5 else (upper, lower)
            legs = (SpreadLeg(bought, BUY, 1), SpreadLeg(sold, SELL, 1))
        net_mid = sum(
            (_mid(opening[leg.symbol]) if leg.side is BUY else -_mid(opening[leg.symbol]) for leg in legs),
            Decimal(0),
        )
        limit = (net_mid - Decimal(rng.randint(-1, 30)) / 100).quantize(CENT)
        tif = rng.choice((TimeInForce.DAY, TimeInForce.GTC))
        orders.append(
            WorkingSpread(
                order_id=f"ord_bench_mleg_{n:05d}",
                legs=legs,
                qty=Decimal(rng.choice((1, 2, 5))),
                order_type=OrderType.LIMIT,
                time_in_force=tif,
                limit_price=limit,
                collar_price=None,
                fill_preference=rng.choice(tuple(FillPreference)),
                accepted_ns=at_ns,
                expires_ns=session.close_ns if tif is TimeInForce.DAY else None,
            )
        )
    return orders


async def replay(scenario: Scenario) -> Outcome:
    """Admit every order on the window's opening quotes, then time ``on_tick`` + ``drain``
    over the feed. The outcome counts the fills sent during admission and the replay."""
    market = FakeMarket(scenario.opening, scenario.session)
    orders = FakeOrders()
    # The fakes answer what the engine asks of its clients (as the engine's unit tests' do).
    calendar = SessionCalendar(market)  # type: ignore[arg-type]
    engine = Engine(orders, market, calendar, MAX_QUOTE_AGE_NS)  # type: ignore[arg-type]
    for single in scenario.singles:
        await engine.admit(OpenOrder(single, CONTRACT))
    for spread in scenario.spreads:
        await engine.admit(OpenSpread(spread))
    await engine.drain()
    outcome = Outcome(at_admission=len(orders.singles) + len(orders.spreads))
    on_tick, drain, seen = engine.on_tick, engine.drain, market.seen
    started = time.perf_counter()
    for tick in scenario.ticks:
        seen(tick)
        await on_tick(tick)
        await drain()
    outcome.seconds = time.perf_counter() - started
    outcome.single_fills = len(orders.singles)
    outcome.spread_fills = len(orders.spreads)
    outcome.spread_legs = Counter(len(spread.legs) for spread, _ in orders.spreads)
    outcome.resting = engine.summary().working_orders
    await engine.close()
    return outcome


class FakeMarket:
    """Market data as the matcher sees it in replay: a contract's latest quote is its last
    streamed prices, timed and sequenced as the latest usable underlying tick (``GetLatestQuote``
    answers the model at that tick); live quotes come from ``seen``, not from a stream."""

    def __init__(self, opening: dict[str, Tick], session: MarketSession) -> None:
        self._prices = {symbol: (t.bid, t.ask) for symbol, t in opening.items()}
        first = min(opening.values(), key=lambda t: t.sequence)
        self._now = (first.at_ns, first.sequence)
        self._underlying: Tick | None = None
        self._session = session

    def seen(self, tick: Tick) -> None:
        if tick.symbol == UNDERLYING:
            self._underlying = tick
            if tick.bid > 0 and tick.ask >= tick.bid:
                self._now = (tick.at_ns, tick.sequence)
        else:
            self._prices[tick.symbol] = (tick.bid, tick.ask)

    async def latest_tick(self, symbol: str) -> Tick | None:
        if symbol == UNDERLYING:
            return self._underlying
        prices = self._prices.get(symbol)
        if prices is None:
            return None
        zero = Decimal(0)
        return Tick(symbol, prices[0], zero, prices[1], zero, *self._now)

    async def quotes(self, symbol: str) -> AsyncIterator[Tick]:
        """A stream that never yields: the replay hands each tick to ``on_tick`` itself."""
        none: tuple[Tick, ...] = ()
        await asyncio.Event().wait()
        for tick in none:
            yield tick

    async def sessions(self, first: date, last: date) -> list[MarketSession]:
        return [self._session]


class FakeOrders:
    """The orders service, recording what the matcher sends."""

    def __init__(self) -> None:
        self.singles: list[WorkingOrder] = []
        self.spreads: list[tuple[WorkingSpread, SpreadDecision]] = []

    async def record_fill(self, order: WorkingOrder, decision: object, multiplier: Decimal) -> None:
        self.singles.append(order)

    async def record_spread_fill(self, spread: WorkingSpread, decision: SpreadDecision) -> None:
        self.spreads.append((spread, decision))

    async def mark_triggered(self, order: WorkingOrder, decision: object) -> None:
        raise AssertionError(f"{order.order_id}: a limit order never triggers")

    async def cancel_unfilled(self, order: WorkingOrder, decision: object) -> None:
        raise AssertionError(f"{order.order_id}: a day or gtc limit is never canceled unfilled")


def _mid(tick: Tick) -> Decimal:
    return (tick.bid + tick.ask) / 2


def _structures(spreads: list[WorkingSpread]) -> str:
    condors = sum(1 for s in spreads if len(s.legs) == 4)
    return f"{len(spreads) - condors} verticals, {condors} iron condors"
