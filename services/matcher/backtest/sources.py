"""Where a backtest's quotes come from: the bundled recording or any recorded tick file
(CSV/Parquet, the replay layout), played on the XNYS sessions exactly as the replay plays
it, or the market-data service's quote history (ListQuoteHistory: Alpaca's historical
quotes with the alpaca provider).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from mbt.marketdata.v1 import marketdata_pb2
from services.common.wire.conv import timestamp_from_ns, timestamp_ns
from services.common.errors import invalid_argument
from services.common.rpc.remote import call
from services.marketdata.domain.ticks import Source
from services.marketdata.domain.ticks import Tick as FeedTick
from services.marketdata.domain.calendar import new_york_date, new_york_midnight_ns, xnys
from services.marketdata.recording import BUNDLED_QUOTES, RecordingError, load_recording
from services.marketdata.timeline import ReplayTimeline
from services.matcher.backtest.feed import Feed, FeedError, Sessions

BUNDLED = "bundled"
MARKETDATA = "marketdata"
HISTORY_PAGE = 500  # ListQuoteHistory's largest page


@functools.cache
def sessions() -> Sessions:
    """The XNYS sessions, built once per process."""
    return Sessions(xnys())


def window_start_ns(start_ns: int) -> int:
    """Quotes are read from the midnight (New York) of the first day, so the quote standing
    at the start is known."""
    return new_york_midnight_ns(new_york_date(start_ns))


def recorded_feed(data: str, symbols: Sequence[str], start_ns: int, end_ns: int, *, loop: bool = True) -> Feed:
    """A recording played as the replay plays it: day 0 on its own date(s), then, with
    ``loop``, again on every following XNYS session (same sequences as the replay)."""
    path = BUNDLED_QUOTES if data in ("", BUNDLED) else Path(data)
    if not path.is_file():
        raise invalid_argument(f"no recorded quotes at {data!r}", "data")
    try:
        recording = load_recording(path)
    except RecordingError as exc:
        raise invalid_argument(str(exc), "data") from None
    timeline = ReplayTimeline(recording, xnys(), loop=loop)
    wanted = [s for s in symbols if s in recording.indices_by_symbol] if symbols else None
    if wanted is not None and not wanted:
        raise invalid_argument(f"{path.name} has no quotes for {', '.join(symbols)}", "symbols")
    ticks = list(timeline.between(window_start_ns(start_ns) - 1, end_ns, wanted))
    try:
        return Feed.from_ticks(ticks, sessions(), f"{path.name} ({len(ticks):,} ticks)")
    except FeedError as exc:
        raise invalid_argument(str(exc), "data") from None


async def history_feed(marketdata_stub, symbols: Sequence[str], start_ns: int, end_ns: int, *,
                       timeout: float) -> Feed:
    """Quotes from the market-data service's ListQuoteHistory (paged), merged in time order."""
    if not symbols:
        raise invalid_argument("a backtest on market-data history names its symbols", "symbols")
    merged: list[tuple[int, int, FeedTick]] = []
    for rank, symbol in enumerate(sorted(symbols)):
        token = ""
        while True:
            reply = await call(marketdata_stub.ListQuoteHistory, marketdata_pb2.ListQuoteHistoryRequest(
                symbol=symbol, from_time=timestamp_from_ns(window_start_ns(start_ns)),
                to_time=timestamp_from_ns(end_ns), page_size=HISTORY_PAGE, page_token=token),
                timeout=timeout, what="market data")
            merged.extend((timestamp_ns(q.quote_at), rank, _feed_tick(q)) for q in reply.quotes)
            token = reply.next_page_token
            if not token:
                break
    merged.sort(key=lambda item: (item[0], item[1], item[2].sequence))
    ticks = [tick for _, _, tick in merged]
    try:
        return Feed.from_ticks(ticks, sessions(), f"market-data history ({len(ticks):,} ticks)")
    except FeedError as exc:
        raise invalid_argument(str(exc), "data") from None


def _feed_tick(quote: marketdata_pb2.Quote) -> FeedTick:
    def price(text: str) -> Decimal | None:
        return Decimal(text) if text else None

    return FeedTick.quote(quote.symbol, timestamp_ns(quote.quote_at), quote.sequence, price(quote.bid_price),
                          price(quote.bid_size), price(quote.ask_price), price(quote.ask_size), Source.REPLAY)


def day_bounds(first: date, last: date) -> tuple[int, int]:
    """[midnight New York of ``first``, midnight New York after ``last``) in epoch ns."""
    if last < first:
        raise invalid_argument("to must not be before from", "to")
    return new_york_midnight_ns(first), new_york_midnight_ns(last + timedelta(days=1)) - 1
