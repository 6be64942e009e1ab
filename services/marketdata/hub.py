"""Fan-out of quotes: one upstream subscription per symbol, however many subscribers.

When a symbol's last subscriber leaves, its upstream subscription (and so the tick
archive) keeps running for ``unsubscribe_after_seconds``: a matcher that restarts finds
in the archive the ticks it missed while it was down.

Every subscriber has a bounded queue. A live feed cannot wait, so a subscriber whose
queue is full misses ticks; nothing is dropped silently: the subscriber receives a
``Gap`` (symbol, count, sequence range) in feed order, right where the ticks went
missing, and can fetch them from the tick archive. A stepped replay can wait, so
``deliver`` holds back while a subscriber is draining and only drops for one that
stops reading for ``stall_seconds``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from services.marketdata.domain.ticks import Tick

log = logging.getLogger(__name__)


@dataclass
class Gap:
    """Ticks of one symbol a subscriber missed, first to last sequence inclusive."""

    symbol: str
    count: int
    first_sequence: int
    last_sequence: int


class Subscription:
    def __init__(self, symbols: Iterable[str], capacity: int) -> None:
        self.symbols = frozenset(symbols)
        self.capacity = capacity
        self.dropped = 0
        self.closed = False
        # Set when the subscriber stopped reading during a patient delivery; cleared when it reads.
        self.stalled = False
        self._items: deque[Tick | Gap] = deque()
        self._ticks = 0
        self._gaps: dict[str, Gap] = {}
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    @property
    def full(self) -> bool:
        return self._ticks >= self.capacity

    def offer(self, tick: Tick) -> None:
        if self._ticks >= self.capacity:
            gap = self._gaps.get(tick.symbol)
            if gap is None:
                self._gaps[tick.symbol] = Gap(tick.symbol, 1, tick.sequence, tick.sequence)
            else:
                gap.count += 1
                gap.last_sequence = tick.sequence
            self.dropped += 1
            self._room.clear()
            return
        if self._gaps:
            self._release_gaps()
        self._items.append(tick)
        self._ticks += 1

    def first_sequences(self) -> dict[str, int]:
        """Sequence of the first queued tick of each symbol."""
        first: dict[str, int] = {}
        for item in self._items:
            if type(item) is Tick:
                first.setdefault(item.symbol, item.sequence)
        return first

    def _release_gaps(self) -> None:
        self._items.extend(self._gaps.values())
        self._gaps.clear()

    def wake(self) -> None:
        if self._items or self._gaps:
            self._ready.set()

    async def next_batch(self, max_ticks: int) -> list[Tick | Gap]:
        """The next items in feed order (at least one), waiting for them if needed."""
        while not self._items:
            if self._gaps:
                self._release_gaps()
                break
            self._ready.clear()
            await self._ready.wait()
        items = self._items
        take = min(max_ticks, len(items))
        batch = [items.popleft() for _ in range(take)]
        self._ticks -= sum(1 for item in batch if type(item) is Tick)
        self.stalled = False
        self._room.set()
        return batch

    def close(self) -> None:
        self.closed = True
        self._room.set()

    def has_room(self, count: int) -> bool:
        return self._ticks + count <= self.capacity

    async def wait_for_room(self, count: int, stall_seconds: float) -> bool:
        """Wait until ``count`` more ticks fit; False when the subscriber took nothing for
        ``stall_seconds``."""
        while not self.has_room(count) and not self.closed:
            if self.stalled:
                return False
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), stall_seconds)
            except TimeoutError:
                self.stalled = True
                return False
        return True


Upstream = Callable[[list[str]], Awaitable[None]]


class QuoteHub:
    def __init__(
        self,
        *,
        capacity: int,
        subscribe_upstream: Upstream,
        unsubscribe_upstream: Upstream,
        archive: Callable[[list[Tick]], None],
        unsubscribe_after_seconds: float = 0.0,
    ) -> None:
        self.capacity = capacity
        self.unsubscribe_after_seconds = unsubscribe_after_seconds
        self._subscribe_upstream = subscribe_upstream
        self._unsubscribe_upstream = unsubscribe_upstream
        self._archive = archive
        self._by_symbol: dict[str, list[Subscription]] = {}
        self._subscriptions: list[Subscription] = []
        self._upstream: set[str] = set()  # subscribed upstream: wanted, or idle but not yet released
        self._releases: dict[str, asyncio.Task] = {}
        self._lock = asyncio.Lock()

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._by_symbol)

    def subscribers(self, symbol: str) -> int:
        return len(self._by_symbol.get(symbol, ()))

    async def subscribe(self, symbols: Iterable[str]) -> Subscription:
        subscription = Subscription(symbols, self.capacity)
        async with self._lock:
            new = sorted(s for s in subscription.symbols if s not in self._upstream)
            for symbol in subscription.symbols:
                self._by_symbol.setdefault(symbol, []).append(subscription)
                release = self._releases.pop(symbol, None)
                if release is not None:
                    release.cancel()
            self._subscriptions.append(subscription)
            if new:
                try:
                    await self._subscribe_upstream(new)
                except BaseException:
                    self._remove(subscription)
                    raise
                self._upstream.update(new)
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        async with self._lock:
            gone = self._remove(subscription)
            if not gone:
                return
            if self.unsubscribe_after_seconds <= 0:
                await self._release(gone)
                return
            for symbol in gone:
                self._releases[symbol] = asyncio.create_task(
                    self._release_later(symbol), name=f"quote-release-{symbol}"
                )

    async def _release_later(self, symbol: str) -> None:
        await asyncio.sleep(self.unsubscribe_after_seconds)
        async with self._lock:
            self._releases.pop(symbol, None)
            await self._release([symbol])

    async def _release(self, symbols: list[str]) -> None:
        """Unsubscribe upstream the symbols nobody wants (call with the lock held)."""
        idle = sorted(s for s in symbols if s not in self._by_symbol and s in self._upstream)
        if not idle:
            return
        self._upstream.difference_update(idle)
        try:
            await self._unsubscribe_upstream(idle)
        except Exception as exc:
            log.warning("upstream unsubscribe failed", extra={"fields": {"symbols": idle, "error": str(exc)}})

    def _remove(self, subscription: Subscription) -> list[str]:
        subscription.close()
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        gone = []
        for symbol in subscription.symbols:
            subscribers = self._by_symbol.get(symbol, [])
            if subscription in subscribers:
                subscribers.remove(subscription)
            if not subscribers and symbol in self._by_symbol:
                del self._by_symbol[symbol]
                gone.append(symbol)
        return sorted(gone)

    def publish(self, ticks: list[Tick]) -> None:
        """Hand ticks (feed order) to every subscriber of their symbol, and to the archive."""
        if not ticks:
            return
        self._archive(ticks)
        by_symbol = self._by_symbol
        for tick in ticks:
            subscribers = by_symbol.get(tick.symbol)
            if subscribers:
                for subscription in subscribers:
                    subscription.offer(tick)
        for subscription in self._subscriptions:
            subscription.wake()

    async def deliver(self, ticks: Iterable[Tick], *, stall_seconds: float) -> int:
        """Publish patiently (stepped replay): wait while a subscriber drains its queue,
        drop only for one that made no progress for ``stall_seconds``. Returns the count."""
        delivered = 0
        chunk_size = max(1, self.capacity // 2)
        iterator = iter(ticks)
        while chunk := list(itertools.islice(iterator, chunk_size)):
            for subscription in list(self._subscriptions):
                if (
                    not subscription.has_room(len(chunk))
                    and not subscription.stalled
                    and not await subscription.wait_for_room(len(chunk), stall_seconds)
                ):
                    log.warning(
                        "a quote subscriber stopped reading; it will be told what it missed",
                        extra={"fields": {"symbols": sorted(subscription.symbols)}},
                    )
            self.publish(chunk)
            delivered += len(chunk)
        return delivered
