"""The live matcher: working orders in the book, quotes from the market-data stream, and
what the fill function decides sent to the orders service.

Per symbol, ticks and order admissions are serialised by a lock, so an order admitted
while quotes flow sees exactly the ticks after its acceptance (from a buffer of recent
ticks) and then every live tick — the same sequence ExplainFill replays from the archive.

The matcher keeps nothing durable, and nothing is lost by that: on start it replays the
tick archive since its oldest working order was accepted, admitting each order when the
replay reaches its acceptance, so the ticks it missed while down are decided as a matcher
that never stopped would have decided them (same decisions, same fill ids). A stream that
reconnects first catches up on the archived ticks it missed in between.

Fills, triggers and ioc/fok cancels go to the orders service. An EXPIRE decision only
drops the day order from the book: expiry has one owner, the orders service, which
expires day orders at their session's close on its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from functools import partial

from services.common.background import spawn
from services.common.errors import DomainError
from services.matcher.book import OrderBook, Outcome
from services.matcher.clients import MarketDataClient, OrdersClient, SessionCalendar
from services.matcher.domain import TERMINAL_ACTIONS, Action, Tick, WorkingOrder, decide, evaluated_ticks
from services.matcher.multileg import SpreadDecision, WorkingSpread, decide_spread
from services.matcher.views import BookSummary, OpenOrder, OpenSpread, QuotesDropped, SymbolSummary

log = logging.getLogger(__name__)

RECENT_TICKS = 50_000
RETRY_SECONDS = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)


async def decide_spread_on(
    spread: WorkingSpread, quotes: Mapping[str, Tick], calendar: SessionCalendar, max_quote_age_ns: int
) -> SpreadDecision:
    """``decide_spread`` on the legs' ``quotes`` as the live matcher decides a spread (and
    explain replays it): evaluated at the latest of those quotes, or at the order's
    acceptance (its last replace) if later, in the session in force then."""
    evaluated_ns = max([spread.accepted_ns, *(tick.at_ns for tick in quotes.values())])
    await calendar.ensure(evaluated_ns)
    return decide_spread(
        spread,
        quotes,
        session=calendar.session_at(evaluated_ns),
        evaluated_ns=evaluated_ns,
        max_quote_age_ns=max_quote_age_ns,
    )


class Engine:
    def __init__(
        self, orders: OrdersClient, marketdata: MarketDataClient, calendar: SessionCalendar, max_quote_age_ns: int
    ) -> None:
        self.orders = orders
        self.marketdata = marketdata
        self.calendar = calendar
        self.max_quote_age_ns = max_quote_age_ns
        self.book = OrderBook()
        self._multipliers: dict[str, Decimal] = {}
        self._recent: dict[str, deque[Tick]] = {}
        self._last_sequence: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._feeds: dict[str, asyncio.Task[None]] = {}
        self._actions: set[asyncio.Future[None]] = set()
        # Working multi-leg orders, by order id (decided on their legs' quotes, not in ``book``),
        # and their ids by leg symbol in admission order (a leg's tick decides exactly those).
        self.spreads: dict[str, WorkingSpread] = {}
        self._spreads_by_leg: dict[str, dict[str, None]] = {}
        # Set once the book is rebuilt: order events wait for it, so a symbol's catch-up on
        # the archive is never overtaken by a live admission.
        self._loaded = asyncio.Event()
        self.ticks_processed = 0
        self.fills_decided = 0
        self.ticks_caught_up = 0

    def _lock(self, symbol: str) -> asyncio.Lock:
        return self._locks.setdefault(symbol, asyncio.Lock())

    # -- orders ---------------------------------------------------------------------------

    async def load_open_orders(self) -> int:
        """Rebuild the book from the orders service, each symbol caught up on the archive."""
        by_symbol: dict[str, list[OpenOrder]] = {}
        spreads: list[OpenSpread] = []
        async for order in self.orders.working_orders():
            if isinstance(order, OpenSpread):
                spreads.append(order)
            else:
                by_symbol.setdefault(order.working.symbol, []).append(order)
        for symbol in sorted(by_symbol):
            await self._recover(symbol, by_symbol[symbol])
        for spread in spreads:
            await self._admit_spread(spread.spread)
        self._loaded.set()
        return sum(len(orders) for orders in by_symbol.values()) + len(spreads)

    async def _recover(self, symbol: str, orders: list[OpenOrder]) -> None:
        """Replay the symbol's archived ticks from its oldest order's acceptance through the
        book, admitting each order when the replay reaches its acceptance."""
        waiting = deque(sorted((o.working for o in orders), key=lambda w: (w.accepted_ns, w.order_id)))
        for order in orders:
            self._multipliers[order.working.order_id] = order.multiplier
        outcomes: list[Outcome] = []
        async with self._lock(symbol):
            if symbol not in self._last_sequence:  # a feed already running has seen these ticks
                since_ns = waiting[0].accepted_ns - self.max_quote_age_ns  # older quotes are stale for all
                async for tick in self.marketdata.archived_ticks(symbol, from_ns=since_ns):
                    while waiting and waiting[0].accepted_ns < tick.at_ns:
                        outcomes += await self._admit_locked(waiting.popleft(), None)
                    outcomes += await self._process_locked(tick)
                    self.ticks_caught_up += 1
            standing = None if self._recent.get(symbol) else await self.marketdata.latest_tick(symbol)
            while waiting:
                outcomes += await self._admit_locked(waiting.popleft(), standing)
        self._ensure_feed(symbol)
        for outcome in outcomes:
            self._act(outcome)

    async def run(self) -> None:
        """Background: load the book, retrying until the orders service answers."""
        for delay in (*RETRY_SECONDS, *[5.0] * 10_000):
            try:
                loaded = await self.load_open_orders()
                log.info("book loaded", extra={"fields": {"orders": loaded, "ticks_caught_up": self.ticks_caught_up}})
                return
            except DomainError as exc:
                log.info("waiting for orders to load the book", extra={"fields": {"reason": exc.reason}})
                await asyncio.sleep(delay)

    async def ready(self) -> None:
        """Wait until the book is rebuilt."""
        await self._loaded.wait()

    async def admit(self, order: OpenOrder | OpenSpread) -> None:
        """An accepted or replaced order: decide it on the ticks since its terms took
        effect, then keep it working unless that decided it."""
        if isinstance(order, OpenSpread):
            await self._admit_spread(order.spread)
            return
        working = order.working
        self._multipliers[working.order_id] = order.multiplier
        self._ensure_feed(working.symbol)
        standing = None
        if not self._recent.get(working.symbol):
            standing = await self.marketdata.latest_tick(working.symbol)
        async with self._lock(working.symbol):
            outcomes = await self._admit_locked(working, standing)
        for outcome in outcomes:
            self._act(outcome)

    async def _admit_locked(self, working: WorkingOrder, standing: Tick | None) -> list[Outcome]:
        if self.book.get(working.order_id) == working or self.book.sibling_filled(working):
            return []
        self.book.remove(working.order_id)
        ticks = self._ticks_since(working.symbol, working.accepted_ns) or ([standing] if standing else [])
        outcomes, still_working = await self._catch_up(working, ticks)
        if still_working is not None:
            self.book.add(still_working)
        elif outcomes and outcomes[-1].decision.action is Action.FILL:
            self.book.fill_decided(working)
        return outcomes

    def summary(self) -> BookSummary:
        """The book per symbol (every symbol with working orders or followed quotes, with the
        time of the last tick processed) and the counters since start."""
        symbols = sorted(set(self.book.symbols()) | set(self._feeds))
        return BookSummary(
            symbols=tuple(SymbolSummary(s, len(self.book.orders_for(s)), self._last_tick_ns(s)) for s in symbols),
            working_orders=len(self.book) + len(self.spreads),
            ticks_processed=self.ticks_processed,
            fills_decided=self.fills_decided,
            decisions_in_flight=len(self._actions),
        )

    def _last_tick_ns(self, symbol: str) -> int | None:
        recent = self._recent.get(symbol)
        return recent[-1].at_ns if recent else None

    def remove(self, order_id: str) -> None:
        """An order that ended (filled, canceled, expired): it leaves the book."""
        self.book.remove(order_id)
        self._multipliers.pop(order_id, None)
        self._drop_spread(order_id)

    # -- multi-leg orders -------------------------------------------------------------------

    async def _admit_spread(self, spread: WorkingSpread) -> None:
        """A multi-leg order works until ``decide_spread`` fills or expires it; it is decided
        now and whenever one of its legs ticks. A replaced one takes its entry's place in one
        step: a decision still running on the old terms then sends nothing."""
        self._work_spread(spread)
        for leg in spread.legs:
            self._ensure_feed(leg.symbol)
        await self._decide_spread(spread.order_id)

    def _work_spread(self, spread: WorkingSpread) -> None:
        """Put ``spread`` in the place of any earlier version (same order, legs never replaced)."""
        self._drop_spread(spread.order_id)
        self.spreads[spread.order_id] = spread
        for leg in spread.legs:
            self._spreads_by_leg.setdefault(leg.symbol, {})[spread.order_id] = None

    def _drop_spread(self, order_id: str) -> None:
        spread = self.spreads.pop(order_id, None)
        if spread is None:
            return
        for leg in spread.legs:
            ids = self._spreads_by_leg[leg.symbol]
            del ids[order_id]
            if not ids:
                del self._spreads_by_leg[leg.symbol]

    def _spreads_on(self, symbol: str) -> list[str]:
        return list(self._spreads_by_leg.get(symbol, ()))

    async def _decide_spread(self, order_id: str) -> None:
        """``decide_spread`` on every leg's latest quote from market data (a leg whose quote did
        not change since it last streamed is priced as it stands now), evaluated at the latest
        of those quotes. A fill is sent once: the order leaves the book as it is decided."""
        spread = self.spreads.get(order_id)
        if spread is None:
            return
        quotes = {}
        for leg in spread.legs:
            tick = await self.marketdata.latest_tick(leg.symbol)
            if tick is not None:
                quotes[leg.symbol] = tick
        decision = await decide_spread_on(spread, quotes, self.calendar, self.max_quote_age_ns)
        # Decided on these terms only while they still work: a replace admitted meanwhile
        # swapped the entry for its own terms (decided by its own admission), a fill or a
        # cancel removed it.
        if decision.action is Action.WAIT or self.spreads.get(order_id) is not spread:
            return
        self._drop_spread(order_id)
        if decision.action is Action.FILL:
            self.fills_decided += 1
            self._track(self._send_spread(spread, decision))

    async def _send_spread(self, spread: WorkingSpread, decision: SpreadDecision) -> None:
        for attempt in range(1_000):
            try:
                await self.orders.record_spread_fill(spread, decision)
                return
            except DomainError as refusal:
                if refusal.reason != "UNAVAILABLE":
                    log.info(
                        "spread fill refused by orders",
                        extra={"fields": {"order_id": spread.order_id, "reason": refusal.reason}},
                    )
                    return
            await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])

    def _track(self, work: Awaitable[None]) -> None:
        spawn(work, self._actions)

    def _ticks_since(self, symbol: str, since_ns: int) -> list[Tick]:
        """The tick standing at ``since_ns`` and every tick after it, from the recent buffer."""
        recent = self._recent.get(symbol) or ()
        after = [t for t in recent if t.at_ns >= since_ns]
        before = [t for t in recent if t.at_ns < since_ns]
        return ([before[-1]] if before else []) + after

    async def _catch_up(self, order: WorkingOrder, ticks: list[Tick]) -> tuple[list[Outcome], WorkingOrder | None]:
        outcomes = []
        for tick, evaluated_ns in evaluated_ticks(order, ticks):
            await self.calendar.ensure(evaluated_ns)
            decision = decide(
                order,
                tick,
                session=self.calendar.session_at(evaluated_ns),
                evaluated_ns=evaluated_ns,
                max_quote_age_ns=self.max_quote_age_ns,
            )
            if decision.action is Action.WAIT:
                continue
            outcomes.append(Outcome(order, decision))
            if decision.action in TERMINAL_ACTIONS:
                return outcomes, None
            order = dataclasses.replace(order, triggered=True)
        return outcomes, order

    # -- quotes ---------------------------------------------------------------------------

    def _ensure_feed(self, symbol: str) -> None:
        task = self._feeds.get(symbol)
        if task is None or task.done():
            self._recent.setdefault(symbol, deque(maxlen=RECENT_TICKS))
            self._feeds[symbol] = asyncio.create_task(self._feed(symbol), name=f"feed-{symbol}")

    async def _feed(self, symbol: str) -> None:
        failures = 0
        while True:
            try:
                reconnected = True
                async for item in self.marketdata.quotes(symbol):
                    failures = 0
                    if isinstance(item, QuotesDropped):
                        await self._catch_up_archive(symbol, item.from_sequence - 1, item.to_sequence)
                        continue
                    if reconnected:  # what was published while we were not subscribed
                        reconnected = False
                        await self._catch_up_archive(symbol, self._last_sequence.get(symbol), item.sequence - 1)
                    await self.on_tick(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the stream dropping is expected: reconnect
                log.info(
                    "quote stream interrupted; reconnecting",
                    extra={"fields": {"symbol": symbol, "error": str(exc)[:200]}},
                )
            failures += 1
            await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])

    async def _catch_up_archive(self, symbol: str, after_sequence: int | None, through_sequence: int) -> None:
        """Ticks we missed (read too slowly, or were not subscribed), from the archive, in order."""
        if after_sequence is None or through_sequence <= after_sequence:
            return
        async for tick in self.marketdata.archived_ticks(
            symbol, after_sequence=after_sequence, through_sequence=through_sequence
        ):
            await self.on_tick(tick)
            self.ticks_caught_up += 1

    async def on_tick(self, tick: Tick) -> None:
        if tick.sequence <= self._last_sequence.get(tick.symbol, -1):
            return  # seen already (the latest quote resent on reconnect)
        async with self._lock(tick.symbol):
            outcomes = await self._process_locked(tick)
        for outcome in outcomes:
            self._act(outcome)
        for order_id in self._spreads_on(tick.symbol):
            self._track(self._decide_spread(order_id))

    async def _process_locked(self, tick: Tick) -> list[Outcome]:
        if tick.sequence <= self._last_sequence.get(tick.symbol, -1):
            return []
        await self.calendar.ensure(tick.at_ns)
        self._last_sequence[tick.symbol] = tick.sequence
        self._recent.setdefault(tick.symbol, deque(maxlen=RECENT_TICKS)).append(tick)
        self.ticks_processed += 1
        return self.book.process(tick, self.calendar.session_at(tick.at_ns), self.max_quote_age_ns)

    # -- decisions to the orders service ---------------------------------------------------

    def _act(self, outcome: Outcome) -> None:
        self._track(self._send(outcome))

    async def _send(self, outcome: Outcome) -> None:
        order, decision = outcome.order, outcome.decision
        send: Callable[[], Awaitable[None]]
        if decision.action is Action.EXPIRE:
            return  # the book dropped it; the orders service alone expires it, at the close
        if decision.action is Action.FILL:
            self.fills_decided += 1
            multiplier = self._multipliers.get(order.order_id, Decimal(1))
            send = partial(self.orders.record_fill, order, decision, multiplier)
        elif decision.action is Action.TRIGGER:
            send = partial(self.orders.mark_triggered, order, decision)
        else:
            send = partial(self.orders.cancel_unfilled, order, decision)
        attempt = 0
        while True:
            try:
                await send()
                return
            except DomainError as refusal:
                if refusal.reason != "UNAVAILABLE":
                    # The order moved on (canceled, filled) or the decision was refused: drop it.
                    log.info(
                        "decision refused by orders",
                        extra={
                            "fields": {
                                "order_id": order.order_id,
                                "action": decision.action.value,
                                "reason": refusal.reason,
                                "message": refusal.message,
                            }
                        },
                    )
                    return
            delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
            attempt += 1
            await asyncio.sleep(delay)

    async def drain(self) -> None:
        """Wait until every decision taken so far was sent (tests, shutdown)."""
        while self._actions:
            await asyncio.gather(*list(self._actions), return_exceptions=True)

    async def close(self) -> None:
        for task in self._feeds.values():
            task.cancel()
        await asyncio.gather(*self._feeds.values(), return_exceptions=True)
        await self.drain()
