"""What the matcher asks market data: the tick archive — what the matcher saw (or would
have seen), in feed order, page by page (ExplainFill replays it; the live loop catches up on
it after a restart, a reconnect or a lag) — and the trading sessions, cached."""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

from mbt.marketdata.v1 import marketdata_pb2
from services.common.rpc.remote import call
from services.common.wire.conv import datetime_from_ns, timestamp_from_ns, timestamp_ns, to_date
from services.matcher.domain import MarketSession, Tick

PAGE_SIZE = 1000
WINDOW_DAYS = 14
DAY_NS = 86_400 * 10**9


def tick_from_quote(quote: marketdata_pb2.Quote) -> Tick:
    return Tick(symbol=quote.symbol, bid=Decimal(quote.bid_price or "0"), bid_size=Decimal(quote.bid_size or "0"),
                ask=Decimal(quote.ask_price or "0"), ask_size=Decimal(quote.ask_size or "0"),
                at_ns=timestamp_ns(quote.quote_at), sequence=quote.sequence)


async def archived_ticks(marketdata_stub, symbol: str, *, timeout: float, from_ns: int | None = None,
                         to_ns: int | None = None, after_sequence: int = 0,
                         through_sequence: int | None = None) -> AsyncIterator[Tick]:
    """The symbol's archived ticks in sequence order: from ``from_ns``, to ``to_ns``, after
    ``after_sequence`` and up to ``through_sequence`` (each bound optional, all inclusive
    but ``after_sequence``)."""
    token = ""
    while True:
        request = marketdata_pb2.ListArchivedTicksRequest(symbol=symbol, after_sequence=max(0, after_sequence),
                                                          page_size=PAGE_SIZE, page_token=token)
        if from_ns is not None:
            request.from_time.CopyFrom(timestamp_from_ns(max(0, from_ns)))
        if to_ns is not None:
            request.to_time.CopyFrom(timestamp_from_ns(to_ns))
        reply = await call(marketdata_stub.ListArchivedTicks, request, timeout=timeout, what="market data")
        for quote in reply.quotes:
            if through_sequence is not None and quote.sequence > through_sequence:
                return
            yield tick_from_quote(quote)
        token = reply.next_page_token
        if not token:
            return



class SessionCalendar:
    def __init__(self, stub, timeout: float) -> None:
        self.stub = stub
        self.timeout = timeout
        self._opens: list[int] = []
        self._sessions: list[MarketSession] = []
        # Loaded spans of time (epoch ns); the calendar is complete inside each.
        self._loaded: list[tuple[int, int]] = []

    async def ensure(self, at_ns: int) -> None:
        """Make sure the sessions around ``at_ns`` are loaded."""
        if any(low <= at_ns < high for low, high in self._loaded):
            return
        day = datetime_from_ns(at_ns).date()
        start, end = day - timedelta(days=WINDOW_DAYS), day + timedelta(days=WINDOW_DAYS)
        reply = await call(self.stub.ListCalendar, marketdata_pb2.ListCalendarRequest(
            from_date=to_date(start), to_date=to_date(end)), timeout=self.timeout, what="market data")
        loaded = {s.open_ns: s for s in self._sessions}
        loaded.update({timestamp_ns(d.open_at): MarketSession(timestamp_ns(d.open_at), timestamp_ns(d.close_at))
                       for d in reply.days})
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
