"""Reading the market-data tick archive: what the matcher saw (or would have seen), in
feed order, page by page. ExplainFill replays it; the engine catches up on it after a
restart, a reconnect or a lag."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

from mbt.marketdata.v1 import marketdata_pb2
from services.common.conv import timestamp_from_ns, timestamp_ns
from services.common.remote import call
from services.matcher.domain import Tick

PAGE_SIZE = 1000


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
