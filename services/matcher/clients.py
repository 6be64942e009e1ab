"""The services the matcher calls, one named client each, speaking domain values: the
orders service (the working orders its book is rebuilt from, the decisions of the fill
function, a fill with its order) and market data (quotes live and archived, quote
history for backtests, the trading sessions — cached in ``SessionCalendar``). Refusals
come back as ``DomainError`` with the callee's reason."""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal

from mbt.marketdata.v1 import marketdata_pb2
from mbt.orders.v1 import orders_pb2
from services.common.errors import DomainError
from services.common.rpc.remote import call
from services.common.wire.conv import datetime_from_ns, timestamp_from_ns, to_date
from services.marketdata.domain.ticks import Tick as FeedTick
from services.matcher import wire
from services.matcher.domain import Decision, MarketSession, Tick, WorkingOrder
from services.matcher.multileg import SpreadDecision, WorkingSpread
from services.matcher.views import (
    ArchivedQuote,
    FilledOrder,
    FilledSpread,
    OpenOrder,
    OpenSpread,
    QuotesDropped,
    RecordedFill,
)

OPEN_ORDERS_PAGE = 500
ARCHIVE_PAGE = 1000
HISTORY_PAGE = 500  # ListQuoteHistory's largest page
WINDOW_DAYS = 14
DAY_NS = 86_400 * 10**9


class OrdersClient:
    def __init__(self, stub, timeout: float) -> None:
        self.stub = stub
        self.timeout = timeout

    async def working_orders(self) -> AsyncIterator[OpenOrder | OpenSpread]:
        """Every accepted order, page by page (ListOpenOrders)."""
        token = ""
        while True:
            reply = await self._call(
                self.stub.ListOpenOrders, orders_pb2.ListOpenOrdersRequest(page_size=OPEN_ORDERS_PAGE, page_token=token)
            )
            for order in reply.orders:
                if wire.is_working(order):
                    yield wire.open_order(order)
            token = reply.next_page_token
            if not token:
                return

    async def record_fill(self, order: WorkingOrder, decision: Decision, multiplier: Decimal) -> None:
        """RecordFill; idempotent (the fill id is derived from the order and the tick)."""
        await self._call(
            self.stub.RecordFill, orders_pb2.RecordFillRequest(fill=wire.fill_message(order, decision, multiplier))
        )

    async def record_spread_fill(self, spread: WorkingSpread, decision: SpreadDecision) -> None:
        """RecordFill of a multi-leg fill; idempotent (its id derives from the legs' quotes)."""
        await self._call(
            self.stub.RecordFill, orders_pb2.RecordFillRequest(fill=wire.spread_fill_message(spread, decision))
        )

    async def mark_triggered(self, order: WorkingOrder, decision: Decision) -> None:
        await self._call(self.stub.MarkOrderTriggered, wire.triggered_request(order, decision))

    async def cancel_unfilled(self, order: WorkingOrder, decision: Decision) -> None:
        """An ioc/fok order that could not fill on its deciding tick (the rule is the reason)."""
        await self._call(self.stub.CancelUnfilledOrder, wire.cancel_unfilled_request(order, decision))

    async def fill(self, fill_id: str) -> tuple[RecordedFill, FilledOrder | FilledSpread]:
        """A fill and the order it filled (a multi-leg order as ``FilledSpread``); not_found
        passes through."""
        reply = await self._call(self.stub.GetFill, orders_pb2.GetFillRequest(fill_id=fill_id))
        order = wire.filled_spread(reply.order) if reply.order.legs else wire.filled_order(reply.order)
        return wire.recorded_fill(reply.fill), order

    async def _call(self, method, request):
        return await call(method, request, timeout=self.timeout, what="orders")


class MarketDataClient:
    def __init__(self, stub, timeout: float) -> None:
        self.stub = stub
        self.timeout = timeout

    async def latest_tick(self, symbol: str) -> Tick | None:
        """The symbol's latest quote; None when market data has none or cannot say."""
        try:
            reply = await self._call(self.stub.GetLatestQuote, marketdata_pb2.GetLatestQuoteRequest(symbol=symbol))
        except DomainError:
            return None
        return wire.tick_from_quote(reply.quote)

    async def quotes(self, symbol: str) -> AsyncIterator[QuotesDropped | Tick]:
        """The symbol's live quotes, the latest first, with a notice wherever the stream
        dropped ticks. Ends or raises (grpc's error) when the stream is cut."""
        stream = self.stub.StreamQuotes(marketdata_pb2.StreamQuotesRequest(symbols=[symbol], include_latest=True))
        try:
            async for message in stream:
                for item in wire.stream_items(message):
                    yield item
        finally:
            stream.cancel()  # the reader stopped (reconnecting, shutting down): end the call now

    async def archived_ticks(
        self,
        symbol: str,
        *,
        from_ns: int | None = None,
        to_ns: int | None = None,
        after_sequence: int = 0,
        through_sequence: int | None = None,
    ) -> AsyncIterator[Tick]:
        """The symbol's archived ticks (what the matcher saw, or would have seen) in
        sequence order: from ``from_ns``, to ``to_ns``, after ``after_sequence`` and up to
        ``through_sequence`` (each bound optional, all inclusive but ``after_sequence``)."""
        async for quote in self.archived_quotes(
            symbol, from_ns=from_ns, to_ns=to_ns, after_sequence=after_sequence, through_sequence=through_sequence
        ):
            yield quote.tick

    async def archived_quotes(
        self,
        symbol: str,
        *,
        from_ns: int | None = None,
        to_ns: int | None = None,
        after_sequence: int = 0,
        through_sequence: int | None = None,
    ) -> AsyncIterator[ArchivedQuote]:
        """``archived_ticks``, each with where it came from (and a model quote's inputs)."""
        token = ""
        while True:
            request = marketdata_pb2.ListArchivedTicksRequest(
                symbol=symbol, after_sequence=max(0, after_sequence), page_size=ARCHIVE_PAGE, page_token=token
            )
            if from_ns is not None:
                request.from_time.CopyFrom(timestamp_from_ns(max(0, from_ns)))
            if to_ns is not None:
                request.to_time.CopyFrom(timestamp_from_ns(to_ns))
            reply = await self._call(self.stub.ListArchivedTicks, request)
            for quote in reply.quotes:
                if through_sequence is not None and quote.sequence > through_sequence:
                    return
                yield wire.archived_quote(quote)
            token = reply.next_page_token
            if not token:
                return

    async def archived_quote(self, symbol: str, sequence: int) -> ArchivedQuote | None:
        """The archived quote ``sequence`` of ``symbol`` with its source (and a model quote's
        inputs); None when the archive does not hold it (retention passed, never archived)."""
        reply = await self._call(
            self.stub.ListArchivedTicks,
            marketdata_pb2.ListArchivedTicksRequest(symbol=symbol, after_sequence=max(0, sequence - 1), page_size=1),
        )
        found = [quote for quote in reply.quotes if quote.sequence == sequence]
        return wire.archived_quote(found[0]) if found else None

    async def quote_history(self, symbol: str, from_ns: int, to_ns: int) -> AsyncIterator[FeedTick]:
        """The symbol's historical quotes in [from_ns, to_ns] (ListQuoteHistory, paged)."""
        token = ""
        while True:
            reply = await self._call(
                self.stub.ListQuoteHistory,
                marketdata_pb2.ListQuoteHistoryRequest(
                    symbol=symbol,
                    from_time=timestamp_from_ns(from_ns),
                    to_time=timestamp_from_ns(to_ns),
                    page_size=HISTORY_PAGE,
                    page_token=token,
                ),
            )
            for quote in reply.quotes:
                yield wire.feed_tick(quote)
            token = reply.next_page_token
            if not token:
                return

    async def sessions(self, first: date, last: date) -> list[MarketSession]:
        """The regular sessions of the New York days ``first`` to ``last``."""
        reply = await self._call(
            self.stub.ListCalendar, marketdata_pb2.ListCalendarRequest(from_date=to_date(first), to_date=to_date(last))
        )
        return wire.sessions(reply)

    async def _call(self, method, request):
        return await call(method, request, timeout=self.timeout, what="market data")


class SessionCalendar:
    """The trading sessions around the times asked about, loaded from market data a few
    weeks at a time and kept."""

    def __init__(self, marketdata: MarketDataClient) -> None:
        self.marketdata = marketdata
        self._opens: list[int] = []
        self._sessions: list[MarketSession] = []
        # Loaded spans of time (epoch ns); the calendar is complete inside each.
        self._loaded: list[tuple[int, int]] = []

    async def ensure(self, at_ns: int) -> None:
        """Make sure the sessions around ``at_ns`` are loaded."""
        if any(low <= at_ns < high for low, high in self._loaded):
            return
        day = datetime_from_ns(at_ns).date()
        loaded = {s.open_ns: s for s in self._sessions}
        loaded.update(
            {
                s.open_ns: s
                for s in await self.marketdata.sessions(
                    day - timedelta(days=WINDOW_DAYS), day + timedelta(days=WINDOW_DAYS)
                )
            }
        )
        self._sessions = [loaded[k] for k in sorted(loaded)]
        self._opens = sorted(loaded)
        margin = DAY_NS  # the first and last loaded days may straddle time zones
        self._loaded.append((at_ns - (WINDOW_DAYS - 1) * DAY_NS + margin, at_ns + (WINDOW_DAYS - 1) * DAY_NS))

    def session_at(self, at_ns: int) -> MarketSession | None:
        """The session in force at ``at_ns``, None when the market is closed."""
        index = bisect.bisect_right(self._opens, at_ns) - 1
        if index < 0:
            return None
        session = self._sessions[index]
        return session if at_ns < session.close_ns else None
