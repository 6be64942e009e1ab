"""The replay provider: recorded ticks played in simulated time.

Paced (``MBT_REPLAY_MODE=paced``): the clock runs at ``MBT_REPLAY_SPEED`` x wall time
and a pump hands every tick to the hub when its time comes; with
``MBT_REPLAY_SKIP_CLOSED`` the clock jumps over closed markets (nights, weekends,
holidays) to the next open, publishing the new clock state.

Stepped (``MBT_REPLAY_MODE=stepped``): time never moves on its own. ``step(to)`` hands
every tick up to ``to`` to the hub (waiting for subscribers that are reading), moving
the clock along as it goes — to each session close it passes, then to ``to`` — and
returns once everything is handed over.

The feed time (``published_ns``) is how far ticks have been handed over; latest quotes
and history are answered as of it, so they never run ahead of the stream.

Options, in order of preference: recorded option quotes in the recording (symbol = OCC),
the recorded chain snapshot, and for an underlying with neither the option quote model
(``services.marketdata.optionmodel``), whose quotes are computed from the underlying's
ticks as they are played.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import Counter
from datetime import date
from decimal import Decimal

from services.common.errors import DomainError, invalid_argument
from services.common.instruments import SymbolSpec, parse_symbol
from services.common.wire.conv import datetime_from_ns, datetime_to_ns
from services.marketdata.clockfeed import REPLAY, STEPPED, ClockPublisher
from services.marketdata.domain.bars import Bar, Timeframe
from services.marketdata.domain.calendar import MarketCalendar
from services.marketdata.domain.reference import ChainContract, OptionChain
from services.marketdata.domain.ticks import Source, Tick
from services.marketdata.hub import QuoteHub
from services.marketdata.optionmodel import OptionQuoteModel
from services.marketdata.timeline import ReplayTimeline

log = logging.getLogger(__name__)

# The pump never sleeps longer than this, so a changed subscription or clock is seen soon.
MAX_PUMP_SLEEP_SECONDS = 1.0


class ReplayProvider:
    source = Source.REPLAY

    def __init__(
        self,
        timeline: ReplayTimeline,
        calendar: MarketCalendar,
        publisher: ClockPublisher,
        *,
        stepped: bool,
        speed: Decimal,
        skip_closed: bool,
        stall_seconds: float,
        chain: OptionChain | None,
        reference_symbols: set[str],
        model: OptionQuoteModel | None = None,
    ) -> None:
        self.timeline = timeline
        self.calendar = calendar
        self.publisher = publisher
        self.stepped = stepped
        self.speed = Decimal(0) if stepped else speed
        self.skip_closed = skip_closed
        self.stall_seconds = stall_seconds
        self.chain = chain
        self.model = model
        self.clock_mode = STEPPED if stepped else REPLAY
        # Set by ``resume`` once the clock is anchored (before the service serves).
        self.published_ns = 0
        self.subscribed: set[str] = set()
        # How many times each symbol was subscribed upstream (fan-out keeps it at one per stream lifetime).
        self.upstream_subscriptions: Counter[str] = Counter()
        self._snapshots = {} if chain is None else {c.spec.symbol: c.tick for c in chain.contracts if c.tick}
        if chain is not None and chain.underlying_tick is not None:
            self._snapshots.setdefault(chain.underlying, chain.underlying_tick)
        traded = set(timeline.trades.by_symbol) if timeline.trades is not None else set()
        self._known = set(timeline.recording.symbols) | traded | set(self._snapshots) | reference_symbols
        # Recorded option contracts by underlying (the recorded chains).
        self._recorded_options: dict[str, list[SymbolSpec]] = {}
        for symbol in timeline.last_trade_ns:
            spec = parse_symbol(symbol)
            self._recorded_options.setdefault(spec.underlying, []).append(spec)
        self._hub: QuoteHub | None = None
        self._wake = asyncio.Event()
        self._step_lock = asyncio.Lock()

    def resume(self) -> None:
        """Hand ticks over from the clock's time on (called once the clock is anchored)."""
        self.published_ns = datetime_to_ns(self.publisher.clock.now())

    def attach(self, hub: QuoteHub) -> None:
        self._hub = hub

    # -- subscriptions ---------------------------------------------------------------

    async def subscribe(self, symbols: list[str]) -> None:
        if self.model is not None:
            modelled = [spec for spec in map(parse_symbol, symbols) if self._modelled(spec)]
            self.model.track(modelled, self.published_ns)
        self.subscribed.update(symbols)
        self.upstream_subscriptions.update(symbols)
        self._wake.set()

    async def unsubscribe(self, symbols: list[str]) -> None:
        self.subscribed.difference_update(symbols)
        if self.model is not None:
            self.model.untrack(symbols)

    def _modelled(self, spec: SymbolSpec) -> bool:
        """An option the model quotes: its underlying has no recorded option quotes."""
        return self.model is not None and self.model.covers(spec) and spec.symbol not in self._known

    def _played(self, after_ns: int, until_ns: int):
        """Ticks to hand over with after < time <= until, in feed order: the subscribed
        symbols' recorded ticks, and the followed contracts' model quotes."""
        if self.model is None or not self.model.tracked_underlyings:
            return self.timeline.between(after_ns, until_ns, self.subscribed)
        feed = self.subscribed | self.model.tracked_underlyings
        return self.model.expand(self.timeline.between(after_ns, until_ns, feed), frozenset(self.subscribed))

    # -- answers ---------------------------------------------------------------------

    async def latest(self, spec: SymbolSpec) -> Tick | None:
        return await self.latest_before(spec, self.published_ns)

    async def latest_before(self, spec: SymbolSpec, at_ns: int) -> Tick | None:
        snapshot = self._snapshots.get(spec.symbol)
        if snapshot is not None:
            return snapshot
        if self.model is not None and self._modelled(spec):
            return self.model.latest(spec, min(at_ns, self.published_ns))
        return self.timeline.latest(spec.symbol, min(at_ns, self.published_ns))

    async def history(self, spec: SymbolSpec, from_ns: int, to_ns: int, after_sequence: int, limit: int) -> list[Tick]:
        snapshot = self._snapshots.get(spec.symbol)
        if snapshot is not None:
            inside = from_ns <= snapshot.quote_at_ns <= to_ns and snapshot.sequence > after_sequence
            return [snapshot] if inside else []
        if self.model is not None and self._modelled(spec):
            return self.model.history(spec, from_ns, min(to_ns, self.published_ns), after_sequence, limit)
        return self.timeline.history(spec.symbol, from_ns, min(to_ns, self.published_ns), after_sequence, limit)

    async def bars(
        self, spec: SymbolSpec, timeframe: Timeframe, from_ns: int, to_ns: int, closed_by_ns: int, limit: int
    ) -> list[Bar]:
        # Computed from the recording, which is fixed: a bar is the same whenever it is asked for.
        return self.timeline.bars(spec.symbol, timeframe, from_ns, to_ns, closed_by_ns, limit)

    async def describe(self, spec: SymbolSpec) -> tuple[bool, bool]:
        if self.model is not None and self._modelled(spec):
            listed = self.model.listed(spec, datetime_to_ns(self.publisher.clock.now()))
            return listed, listed and await self.latest(spec) is not None
        tradable = not spec.is_index and (
            spec.symbol in self._snapshots or spec.symbol in self.timeline.recording.times_by_symbol
        )
        return spec.symbol in self._known, tradable

    async def option_chain(self, underlying: str, expiration: date | None, at_ns: int) -> OptionChain | None:
        at_ns = min(at_ns, self.published_ns)
        recorded = self._recorded_options.get(underlying)
        if recorded:
            return self._recorded_chain(underlying, recorded, expiration, at_ns)
        if self.chain is not None and self.chain.underlying == underlying:
            return self.chain.for_expiry(expiration)
        if self.model is not None and underlying in self.model.underlyings:
            return self.model.chain(underlying, expiration, at_ns)
        return None

    def _recorded_chain(
        self, underlying: str, specs: list[SymbolSpec], expiration: date | None, at_ns: int
    ) -> OptionChain:
        """The recorded contracts still trading, each with its latest played quote."""
        expiring = self.timeline.last_trade_ns
        contracts = [
            ChainContract(spec, self.timeline.latest(spec.symbol, at_ns))
            for spec in specs
            if expiration in (None, spec.expiration) and at_ns < expiring[spec.symbol]
        ]
        contracts.sort(key=lambda c: (c.spec.expiration, c.spec.strike, c.spec.option_type))
        times = [c.tick.quote_at_ns for c in contracts if c.tick is not None]
        return OptionChain(
            underlying,
            self.timeline.latest(underlying, at_ns),
            contracts,
            max(times) if times else at_ns,
            Source.REPLAY,
        )

    async def fetch_dividends(self, symbols: list[str], from_date: date, to_date: date) -> None:
        return None  # the recorded dividends were cached at start

    # -- time ------------------------------------------------------------------------

    def _hand_over(self, ticks: list[Tick]) -> None:
        if ticks and self._hub is not None:
            self._hub.publish(ticks)

    async def step(self, to_ns: int) -> int:
        if not self.stepped:
            raise DomainError(
                "FAILED_PRECONDITION",
                "the market clock is not a stepped replay; start market data with "
                "MBT_MARKETDATA_PROVIDER=replay and MBT_REPLAY_MODE=stepped to step it",
            )
        async with self._step_lock:
            if to_ns < datetime_to_ns(self.publisher.clock.now()):
                raise invalid_argument("the clock never goes backwards: to_time is before the current time", "to_time")
            # The clock keeps microseconds, ticks nanoseconds: never re-deliver below the feed time.
            to_ns = max(to_ns, self.published_ns)
            delivered = 0
            while self.published_ns < to_ns:
                close = self.calendar.next_close_ns(self.published_ns)
                segment_end = to_ns if close is None else min(to_ns, close)
                delivered += await self._deliver_until(segment_end)
            return delivered

    async def _deliver_until(self, until_ns: int) -> int:
        """Hand over ticks up to ``until_ns`` in chunks, moving the clock after each."""
        delivered = 0
        ticks = self._played(self.published_ns, until_ns)
        chunk_size = max(1, (self._hub.capacity if self._hub else 1000) // 2)
        while chunk := list(itertools.islice(ticks, chunk_size)):
            if self._hub is not None:
                delivered += await self._hub.deliver(chunk, stall_seconds=self.stall_seconds)
            self.published_ns = chunk[-1].quote_at_ns
            await self.publisher.reanchor(datetime_from_ns(self.published_ns), Decimal(0))
        self.published_ns = until_ns
        await self.publisher.reanchor(datetime_from_ns(until_ns), Decimal(0))
        return delivered

    async def run(self) -> None:
        """The paced pump: hand ticks over as the clock reaches them; jump closed markets."""
        speed = float(self.speed)
        while True:
            now = datetime_to_ns(self.publisher.clock.now())
            if now > self.published_ns:
                ticks = list(self._played(self.published_ns, now))
                self.published_ns = now
                self._hand_over(ticks)
            if self.skip_closed and not self.calendar.is_open(now):
                next_open = self.calendar.next_open_ns(now)
                if next_open is not None and await self._jump(next_open):
                    continue
            upcoming = [
                t for t in (self.timeline.next_time_after(now), self.calendar.next_close_ns(now)) if t is not None
            ]
            sleep = min([MAX_PUMP_SLEEP_SECONDS] + [max(0.0, (t - now) / 1e9 / speed) for t in upcoming])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), sleep)
            self._wake.clear()

    async def _jump(self, to_ns: int) -> bool:
        try:
            await self.publisher.reanchor(datetime_from_ns(to_ns), self.speed)
        except Exception as exc:  # the clock could not be saved: it runs on, the jump is retried
            log.warning(
                "replay clock could not jump over the closed market; retrying",
                extra={"fields": {"error": str(exc)[:300]}},
            )
            return False
        log.info(
            "replay clock jumped over the closed market", extra={"fields": {"to": datetime_from_ns(to_ns).isoformat()}}
        )
        return True

    def background(self) -> list:
        return [] if self.stepped else [self.run]

    async def close(self) -> None:
        return None
