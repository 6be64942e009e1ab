"""Where a backtest's quotes come from: the bundled recording or any recorded tick file
(CSV/Parquet, the replay layout), played on the XNYS sessions exactly as the replay plays
it, or the market-data service's quote history (ListQuoteHistory: Alpaca's historical
quotes with the alpaca provider).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from services.common.errors import invalid_argument
from services.marketdata.domain.calendar import new_york_date, new_york_midnight_ns, xnys
from services.marketdata.domain.ticks import Tick as FeedTick
from services.marketdata.recording import BUNDLED_QUOTES, RecordingError, load_recording
from services.marketdata.timeline import ReplayTimeline
from services.matcher.backtest.feed import Feed, FeedError, Sessions
from services.matcher.backtest.model import BUNDLED
from services.matcher.clients import MarketDataClient


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


async def history_feed(marketdata: MarketDataClient, symbols: Sequence[str], start_ns: int, end_ns: int) -> Feed:
    """Quotes from the market-data service's history, merged in time order."""
    if not symbols:
        raise invalid_argument("a backtest on market-data history names its symbols", "symbols")
    merged: list[tuple[int, int, FeedTick]] = []
    for rank, symbol in enumerate(sorted(symbols)):
        merged.extend(
            [
                (tick.quote_at_ns, rank, tick)
                async for tick in marketdata.quote_history(symbol, window_start_ns(start_ns), end_ns)
            ]
        )
    merged.sort(key=lambda item: (item[0], item[1], item[2].sequence))
    ticks = [tick for _, _, tick in merged]
    try:
        return Feed.from_ticks(ticks, sessions(), f"market-data history ({len(ticks):,} ticks)")
    except FeedError as exc:
        raise invalid_argument(str(exc), "data") from None


def day_bounds(first: date, last: date) -> tuple[int, int]:
    """[midnight New York of ``first``, midnight New York after ``last``) in epoch ns."""
    if last < first:
        raise invalid_argument("to must not be before from", "to")
    return new_york_midnight_ns(first), new_york_midnight_ns(last + timedelta(days=1)) - 1
