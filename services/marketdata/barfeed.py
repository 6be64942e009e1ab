"""Bar closes for ``StreamBars``: each subscriber gets every bar of its symbols when the
bar closes on the market clock, exactly once.

A subscription remembers up to when it has been served (``served_ns``: the clock when it
subscribed, then how far ``advance`` went). ``advance(to)`` queues, for every bar window
that ends in (served, to] (``domain.bars.bar_windows``), one ``BarClose``: the window and
the bars of the subscription's symbols in it (a symbol without activity has none). A
window is queued before ``served_ns`` moves past it, and a window whose bars cannot be
computed (an upstream that does not answer) stops the subscription's advance there, to be
retried at the next one: nothing is skipped and nothing is sent twice.

A stepped replay advances as part of every step (``MarketData.step``), so ``StepClock``
returns with the bars up to the new time queued. On a moving clock (paced replay, the wall
clock) ``run`` follows it: it sleeps until the next bar close, at the clock's speed, at most
``MAX_SLEEP_SECONDS`` so that jumps of the clock are noticed, and advances to now.

Queues are not bounded: a subscription receives one message per bar close of its timeframe,
and a stepped replay (which can close many at once) waits for no reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from services.common.clock import AnchoredClock
from services.common.errors import DomainError
from services.common.instruments import SymbolSpec
from services.common.wire.conv import datetime_to_ns
from services.marketdata.domain.bars import Bar, Timeframe, bar_window, bar_windows
from services.marketdata.domain.calendar import MarketCalendar, new_york_date
from services.marketdata.providers.base import Provider

log = logging.getLogger(__name__)

MAX_SLEEP_SECONDS = 1.0


@dataclass(frozen=True)
class BarClose:
    """The bars over [start_ns, end_ns) of a subscription's symbols, in symbol order."""

    start_ns: int
    end_ns: int
    bars: list[Bar]


class BarSubscription:
    def __init__(self, specs: Iterable[SymbolSpec], timeframe: Timeframe, served_ns: int) -> None:
        self.specs = sorted(specs, key=lambda spec: spec.symbol)
        self.timeframe = timeframe
        self.served_ns = served_ns
        self._queue: asyncio.Queue[BarClose] = asyncio.Queue()

    def put(self, close: BarClose) -> None:
        self._queue.put_nowait(close)

    async def next(self) -> BarClose:
        return await self._queue.get()


class BarFeed:
    def __init__(self, provider: Provider, calendar: MarketCalendar, clock: AnchoredClock) -> None:
        self.provider = provider
        self.calendar = calendar
        self.clock = clock
        self._subscriptions: list[BarSubscription] = []
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()

    def now_ns(self) -> int:
        return datetime_to_ns(self.clock.now())

    def subscribe(self, specs: Iterable[SymbolSpec], timeframe: Timeframe) -> BarSubscription:
        """A subscription to the bars that close from now on."""
        subscription = BarSubscription(specs, timeframe, self.now_ns())
        self._subscriptions.append(subscription)
        self._changed.set()
        return subscription

    def unsubscribe(self, subscription: BarSubscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    async def _bar(self, spec: SymbolSpec, timeframe: Timeframe, start_ns: int, end_ns: int) -> Bar | None:
        bars = await self.provider.bars(spec, timeframe, start_ns, start_ns, end_ns, 1)
        return bars[0] if bars else None

    async def advance(self, to_ns: int) -> None:
        """Queue every bar close in (served, to] of every subscription."""
        async with self._lock:
            computed: dict[tuple[str, Timeframe, int], Bar | None] = {}
            for subscription in list(self._subscriptions):
                if to_ns <= subscription.served_ns:
                    continue
                timeframe = subscription.timeframe
                sessions = self.calendar.sessions_between(new_york_date(subscription.served_ns), new_york_date(to_ns))
                try:
                    for start, end in bar_windows(subscription.served_ns, to_ns, timeframe, sessions):
                        bars = []
                        for spec in subscription.specs:
                            key = (spec.symbol, timeframe, start)
                            if key not in computed:
                                computed[key] = await self._bar(spec, timeframe, start, end)
                            bar = computed[key]
                            if bar is not None:
                                bars.append(bar)
                        subscription.put(BarClose(start, end, bars))
                        subscription.served_ns = end
                except Exception as exc:  # an upstream not answering, or a reply it cannot read
                    message = exc.message if isinstance(exc, DomainError) else repr(exc)
                    log.warning(
                        "bars could not be computed; the bar close is retried",
                        extra={"fields": {"timeframe": timeframe.value, "error": message[:300]}},
                    )
                    continue
                subscription.served_ns = to_ns

    def _next_close_ns(self, now_ns: int) -> int | None:
        """The soonest bar close after now of any subscription, within the current session."""
        session = self.calendar.current_session(now_ns)
        if session is None:
            return None
        return min(bar_window(now_ns, s.timeframe, session)[1] for s in self._subscriptions)

    async def run(self) -> None:
        """Follow a moving clock (paced replay, wall clock): advance at every bar close."""
        while True:
            self._changed.clear()
            if not self._subscriptions:
                await self._changed.wait()
                continue
            now = self.now_ns()
            await self.advance(now)
            sleep = MAX_SLEEP_SECONDS
            upcoming = self._next_close_ns(now)
            speed = self.clock.speed
            if upcoming is not None and speed > 0:
                sleep = min(sleep, (upcoming - now) / 1e9 / float(speed))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), sleep)
