"""Bars of the replay: the recorded trades play on every replay day like the quotes (same
New York time of day, cut at an early close), bars come from them or, for a symbol without
trades, from quote mids; only closed bars, a window and a limit at a time."""

from datetime import UTC, datetime

import pytest

from services.common.wire.conv import datetime_to_ns
from services.marketdata.domain.bars import Basis, Timeframe
from services.marketdata.domain.calendar import xnys
from services.marketdata.recording import BUNDLED_QUOTES, BUNDLED_TRADES, load_recording, load_trades
from services.marketdata.timeline import ReplayTimeline

MINUTE = 60 * 10**9
END = 2**62


def ns(text: str) -> int:
    return datetime_to_ns(datetime.fromisoformat(text).astimezone(UTC))


@pytest.fixture(scope="module")
def timeline():
    return ReplayTimeline(load_recording(BUNDLED_QUOTES), xnys(), loop=True, trades=load_trades(BUNDLED_TRADES))


def values(bar) -> tuple:
    return bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trade_count, bar.vwap, bar.basis


def test_a_looped_day_has_the_recorded_days_bars_at_the_same_time_of_day(timeline):
    thursday = timeline.bars(
        "AMZN", Timeframe.FIVE_MINUTES, ns("2012-06-21T00:00:00-04:00"), ns("2012-06-21T23:59:59-04:00"), END, 1000
    )
    friday = timeline.bars(
        "AMZN", Timeframe.FIVE_MINUTES, ns("2012-06-22T00:00:00-04:00"), ns("2012-06-22T23:59:59-04:00"), END, 1000
    )
    assert len(thursday) == len(friday) == 78 and {b.basis for b in thursday} == {Basis.TRADES}
    day = 24 * 60 * MINUTE
    assert [(b.start_ns + day, b.end_ns + day, *values(b)) for b in thursday] == [
        (b.start_ns, b.end_ns, *values(b)) for b in friday
    ]


def test_an_early_close_day_stops_at_its_close(timeline):
    # Replay day 8 is 2012-07-03, which closed at 13:00: the recorded afternoon is not played.
    bars = timeline.bars(
        "GOOG", Timeframe.HOUR, ns("2012-07-03T00:00:00-04:00"), ns("2012-07-03T23:00:00-04:00"), END, 100
    )
    assert [(b.start_ns, b.end_ns) for b in bars][-1] == (
        ns("2012-07-03T12:30:00-04:00"),
        ns("2012-07-03T13:00:00-04:00"),
    )
    [day] = timeline.bars(
        "GOOG", Timeframe.DAY, ns("2012-07-03T00:00:00-04:00"), ns("2012-07-03T23:00:00-04:00"), END, 100
    )
    assert day.end_ns == ns("2012-07-03T13:00:00-04:00")
    assert day.trade_count == sum(b.trade_count for b in bars)
    [full_day] = timeline.bars(
        "GOOG", Timeframe.DAY, ns("2012-06-21T00:00:00-04:00"), ns("2012-06-21T23:00:00-04:00"), END, 100
    )
    assert day.trade_count < full_day.trade_count == 11678


def test_only_closed_bars_starting_in_the_window_and_at_most_the_limit(timeline):
    ten = ns("2012-06-21T10:00:00-04:00")
    bars = timeline.bars("AMZN", Timeframe.MINUTE, ten + 1, ten + 10 * MINUTE, ten + 4 * MINUTE + 1, 100)
    assert [b.start_ns for b in bars] == [ten + MINUTE, ten + 2 * MINUTE, ten + 3 * MINUTE]
    page = timeline.bars("AMZN", Timeframe.MINUTE, ten, END, END, 2)
    assert [b.start_ns for b in page] == [ten, ten + MINUTE]
    # A bar read in a narrow window is the bar of the whole day.
    [alone] = timeline.bars("AMZN", Timeframe.MINUTE, ten + MINUTE, ten + MINUTE, ten + 2 * MINUTE, 1)
    assert values(alone) == values(bars[0])


def test_a_symbol_without_trades_gets_quote_mid_bars(timeline):
    no_trades = ReplayTimeline(timeline.recording, xnys(), loop=True, trades=None)
    ten = ns("2012-06-21T10:00:00-04:00")
    [bar] = no_trades.bars("AMZN", Timeframe.MINUTE, ten, ten, END, 10)
    mids = [
        (t.bid + t.ask) / 2
        for t in timeline.recording.ticks
        if t.symbol == "AMZN" and ten <= t.quote_at_ns < ten + MINUTE and t.usable
    ]
    assert (bar.basis, bar.volume, bar.trade_count, bar.vwap) == (Basis.QUOTE_MID, 0, 0, None)
    assert (bar.open, bar.high, bar.low, bar.close) == (mids[0], max(mids), min(mids), mids[-1])
    assert no_trades.bars("MSFT", Timeframe.MINUTE, ten, ten, END, 10) == []
