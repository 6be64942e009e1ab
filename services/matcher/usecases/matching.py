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
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from decimal import Decimal

import grpc

from mbt.marketdata.v1 import marketdata_pb2
from mbt.orders.v1 import orders_pb2
from services.common.config import Settings
from services.common.wire.conv import decimal_str, money_str, timestamp_from_ns, timestamp_ns
from services.common.errors import DomainError
from services.common.rpc.remote import call, upstream_error
from services.matcher.clients import archived_ticks, tick_from_quote
from services.matcher.clients import SessionCalendar
from services.matcher.domain import (TERMINAL_ACTIONS, Action, Decision, OrderType, Side, Tick, TimeInForce,
                                     WorkingOrder, decide, evaluated_ticks, fill_id)
from services.matcher.book import OrderBook, Outcome

log = logging.getLogger(__name__)

RECENT_TICKS = 50_000
RETRY_SECONDS = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)
WORKING_STATUS = orders_pb2.ORDER_STATUS_ACCEPTED
SIDES = {1: Side.BUY, 2: Side.SELL}
TYPES = {1: OrderType.MARKET, 2: OrderType.LIMIT, 3: OrderType.STOP, 4: OrderType.STOP_LIMIT}
TIFS = {1: TimeInForce.DAY, 2: TimeInForce.GTC, 3: TimeInForce.IOC, 4: TimeInForce.FOK}


def _decimal(value: str) -> Decimal | None:
    return Decimal(value) if value else None


def working_order(order: orders_pb2.Order) -> WorkingOrder:
    """The order as the fill function works it. Its terms date from the last replace."""
    accepted_ns = max(timestamp_ns(order.accepted_at), timestamp_ns(order.replaced_at))
    return WorkingOrder(
        order_id=order.order_id, symbol=order.symbol, side=SIDES[order.side], qty=Decimal(order.qty),
        order_type=TYPES[order.order_type], time_in_force=TIFS[order.time_in_force],
        limit_price=_decimal(order.limit_price), stop_price=_decimal(order.stop_price),
        collar_price=_decimal(order.collar_price), accepted_ns=accepted_ns,
        triggered=order.HasField("triggered_at"),
        expires_ns=timestamp_ns(order.expires_at) if order.HasField("expires_at") else None)


def fill_message(order: WorkingOrder, decision: Decision, multiplier: str) -> orders_pb2.Fill:
    tick = decision.tick
    return orders_pb2.Fill(
        fill_id=fill_id(order.order_id, tick), order_id=order.order_id, symbol=order.symbol,
        side=1 if order.side is Side.BUY else 2, qty=decimal_str(order.qty), price=money_str(decision.price),
        bid_price=money_str(tick.bid), bid_size=decimal_str(tick.bid_size), ask_price=money_str(tick.ask),
        ask_size=decimal_str(tick.ask_size), quote_at=timestamp_from_ns(tick.at_ns), quote_sequence=tick.sequence,
        rule=decision.rule, filled_at=timestamp_from_ns(max(order.accepted_ns, tick.at_ns)), multiplier=multiplier)


class Engine:
    def __init__(self, settings: Settings, orders_stub, marketdata_stub) -> None:
        self.orders = orders_stub
        self.marketdata = marketdata_stub
        self.timeout = settings.rpc_timeout_seconds
        self.max_quote_age_ns = int(settings.max_quote_age_seconds * 1_000_000_000)
        self.calendar = SessionCalendar(marketdata_stub, settings.rpc_timeout_seconds)
        self.book = OrderBook()
        self._multipliers: dict[str, str] = {}
        self._recent: dict[str, deque[Tick]] = {}
        self._last_sequence: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._feeds: dict[str, asyncio.Task] = {}
        self._actions: set[asyncio.Task] = set()
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
        by_symbol: dict[str, list[orders_pb2.Order]] = {}
        token = ""
        while True:
            reply = await call(self.orders.ListOpenOrders, orders_pb2.ListOpenOrdersRequest(
                page_size=500, page_token=token), timeout=self.timeout, what="orders")
            for order in reply.orders:
                if order.status == WORKING_STATUS:
                    by_symbol.setdefault(order.symbol, []).append(order)
            token = reply.next_page_token
            if not token:
                break
        for symbol in sorted(by_symbol):
            await self._recover(symbol, by_symbol[symbol])
        self._loaded.set()
        return sum(len(orders) for orders in by_symbol.values())

    async def _recover(self, symbol: str, orders: list[orders_pb2.Order]) -> None:
        """Replay the symbol's archived ticks from its oldest order's acceptance through the
        book, admitting each order when the replay reaches its acceptance."""
        waiting = deque(sorted((working_order(o) for o in orders), key=lambda w: (w.accepted_ns, w.order_id)))
        for order in orders:
            self._multipliers[order.order_id] = order.multiplier or "1"
        outcomes: list[Outcome] = []
        async with self._lock(symbol):
            if symbol not in self._last_sequence:  # a feed already running has seen these ticks
                since_ns = waiting[0].accepted_ns - self.max_quote_age_ns  # older quotes are stale for all
                async for tick in archived_ticks(self.marketdata, symbol, from_ns=since_ns, timeout=self.timeout):
                    while waiting and waiting[0].accepted_ns < tick.at_ns:
                        outcomes += await self._admit_locked(waiting.popleft(), None)
                    outcomes += await self._process_locked(tick)
                    self.ticks_caught_up += 1
            standing = None if self._recent.get(symbol) else await self._latest(symbol)
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

    async def admit(self, order: orders_pb2.Order) -> None:
        """An accepted or replaced order: decide it on the ticks since its terms took
        effect, then keep it working unless that decided it."""
        if order.status != WORKING_STATUS:
            return
        working = working_order(order)
        self._multipliers[order.order_id] = order.multiplier or "1"
        self._ensure_feed(working.symbol)
        standing = None
        if not self._recent.get(working.symbol):
            standing = await self._latest(working.symbol)
        async with self._lock(working.symbol):
            outcomes = await self._admit_locked(working, standing)
        for outcome in outcomes:
            self._act(outcome)

    async def _admit_locked(self, working: WorkingOrder, standing: Tick | None) -> list[Outcome]:
        if self.book.get(working.order_id) == working:
            return []
        self.book.remove(working.order_id)
        ticks = self._ticks_since(working.symbol, working.accepted_ns) or ([standing] if standing else [])
        outcomes, still_working = await self._catch_up(working, ticks)
        if still_working is not None:
            self.book.add(still_working)
        return outcomes

    @property
    def decisions_in_flight(self) -> int:
        return len(self._actions)

    def last_tick_ns(self, symbol: str) -> int | None:
        """The time of the last tick of ``symbol`` the book has processed."""
        recent = self._recent.get(symbol)
        return recent[-1].at_ns if recent else None

    def fed_symbols(self) -> list[str]:
        """Symbols whose quotes the matcher follows."""
        return sorted(self._feeds)

    def remove(self, order_id: str) -> None:
        self.book.remove(order_id)
        self._multipliers.pop(order_id, None)

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
            decision = decide(order, tick, session=self.calendar.session_at(evaluated_ns),
                              evaluated_ns=evaluated_ns, max_quote_age_ns=self.max_quote_age_ns)
            if decision.action is Action.WAIT:
                continue
            outcomes.append(Outcome(order, decision))
            if decision.action in TERMINAL_ACTIONS:
                return outcomes, None
            order = dataclasses.replace(order, triggered=True)
        return outcomes, order

    async def _latest(self, symbol: str) -> Tick | None:
        try:
            reply = await call(self.marketdata.GetLatestQuote, marketdata_pb2.GetLatestQuoteRequest(symbol=symbol),
                               timeout=self.timeout, what="market data")
        except DomainError:
            return None
        return tick_from_quote(reply.quote)

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
                stream = self.marketdata.StreamQuotes(marketdata_pb2.StreamQuotesRequest(
                    symbols=[symbol], include_latest=True))
                reconnected = True
                async for message in stream:
                    failures = 0
                    if message.dropped:
                        await self._catch_up_archive(symbol, message.dropped_from_sequence - 1,
                                                     message.dropped_to_sequence)
                    for quote in message.quotes:
                        tick = tick_from_quote(quote)
                        if reconnected:  # what was published while we were not subscribed
                            reconnected = False
                            await self._catch_up_archive(symbol, self._last_sequence.get(symbol),
                                                         tick.sequence - 1)
                        await self.on_tick(tick)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the stream dropping is expected: reconnect
                log.info("quote stream interrupted; reconnecting",
                         extra={"fields": {"symbol": symbol, "error": str(exc)[:200]}})
            failures += 1
            await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])

    async def _catch_up_archive(self, symbol: str, after_sequence: int | None, through_sequence: int) -> None:
        """Ticks we missed (read too slowly, or were not subscribed), from the archive, in order."""
        if after_sequence is None or through_sequence <= after_sequence:
            return
        async for tick in archived_ticks(self.marketdata, symbol, after_sequence=after_sequence,
                                         through_sequence=through_sequence, timeout=self.timeout):
            await self.on_tick(tick)
            self.ticks_caught_up += 1

    async def on_tick(self, tick: Tick) -> None:
        if tick.sequence <= self._last_sequence.get(tick.symbol, -1):
            return  # seen already (the latest quote resent on reconnect)
        async with self._lock(tick.symbol):
            outcomes = await self._process_locked(tick)
        for outcome in outcomes:
            self._act(outcome)

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
        task = asyncio.create_task(self._send(outcome))
        self._actions.add(task)
        task.add_done_callback(self._actions.discard)

    async def _send(self, outcome: Outcome) -> None:
        order, decision = outcome.order, outcome.decision
        if decision.action is Action.EXPIRE:
            return  # the orders service expires day orders itself at the close
        if decision.action is Action.FILL:
            self.fills_decided += 1
            method, request = self.orders.RecordFill, orders_pb2.RecordFillRequest(
                fill=fill_message(order, decision, self._multipliers.get(order.order_id, "1")))
        elif decision.action is Action.TRIGGER:
            method, request = self.orders.MarkOrderTriggered, orders_pb2.MarkOrderTriggeredRequest(
                order_id=order.order_id, triggered_at=timestamp_from_ns(max(order.accepted_ns, decision.tick.at_ns)),
                quote_sequence=decision.tick.sequence)
        else:
            method, request = self.orders.CancelUnfilledOrder, orders_pb2.CancelUnfilledOrderRequest(
                order_id=order.order_id, reason=decision.rule,
                decided_at=timestamp_from_ns(max(order.accepted_ns, decision.tick.at_ns)))
        attempt = 0
        while True:
            try:
                await method(request, timeout=self.timeout)
                return
            except grpc.aio.AioRpcError as exc:
                refusal = upstream_error(exc, "orders")
                if refusal.reason != "UNAVAILABLE":
                    # The order moved on (canceled, filled) or the decision was refused: drop it.
                    log.info("decision refused by orders", extra={"fields": {
                        "order_id": order.order_id, "action": decision.action.value, "reason": refusal.reason,
                        "message": refusal.message}})
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
