"""Bars (pure): the bundled LOBSTER trades aggregated into OHLCV bars match a hand
computation straight from the raw file; buckets follow the XNYS session (aligned to the
open, cut at early closes, the day bar is the session); quote-mid bars for a feed without
trades; empty buckets omitted; finer bars roll up into coarser ones."""

import csv
import gzip
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import pytest

from services.common.errors import DomainError
from services.common.wire.conv import datetime_to_ns
from services.marketdata.domain.bars import (
    Basis,
    Timeframe,
    Trade,
    bar_windows,
    parse_timeframe,
    quote_mid_bars,
    roll_up,
    trade_bars,
)
from services.marketdata.domain.calendar import xnys
from services.marketdata.domain.ticks import Source, Tick
from services.marketdata.recording import BUNDLED_TRADES, load_trades

D = Decimal
MINUTE = 60 * 10**9


def ns(text: str) -> int:
    return datetime_to_ns(datetime.fromisoformat(text).astimezone(UTC))


def session(day: date):
    return xnys().session_on(day)


JUNE_21 = session(date(2012, 6, 21))
JULY_3 = session(date(2012, 7, 3))  # early close, 13:00 New York


def raw_trades(symbol: str) -> list[tuple[int, Decimal, Decimal]]:
    """(time, price, size) of the symbol's rows, read from the bundled file with the csv module."""
    with gzip.open(BUNDLED_TRADES, "rt", newline="") as handle:
        return [
            (int(row["ts_ns"]), D(row["price"]), D(row["size"]))
            for row in csv.DictReader(handle)
            if row["symbol"] == symbol
        ]


def by_hand(rows, start: int, end: int) -> tuple:
    """OHLCV of the rows in [start, end), the way a person would tally them."""
    inside = [r for r in rows if start <= r[0] < end]
    prices = [p for _, p, _ in inside]
    volume = sum(s for _, _, s in inside)
    with localcontext() as context:
        context.prec = 60
        vwap = (sum(p * s for _, p, s in inside) / volume).quantize(D("0.0001"), ROUND_HALF_EVEN)
    return prices[0], max(prices), min(prices), prices[-1], volume, len(inside), vwap


def ohlcv(bar) -> tuple:
    return bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trade_count, bar.vwap


@pytest.fixture(scope="module")
def trades():
    return load_trades(BUNDLED_TRADES).trades


@pytest.mark.parametrize("symbol", ["AMZN", "GOOG"])
def test_minute_bars_of_the_bundled_trades_match_a_hand_tally_of_the_raw_file(trades, symbol):
    bars = {b.start_ns: b for b in trade_bars(trades, Timeframe.MINUTE, [JUNE_21]) if b.symbol == symbol}
    rows = raw_trades(symbol)
    for minute in range(6):  # 10:00 to 10:05 New York
        start = ns("2012-06-21T10:00:00-04:00") + minute * MINUTE
        bar = bars[start]
        assert (bar.end_ns, bar.basis, bar.timeframe) == (start + MINUTE, Basis.TRADES, Timeframe.MINUTE)
        assert ohlcv(bar) == by_hand(rows, start, start + MINUTE), minute
    first = bars[JUNE_21.open_ns]  # the open: several prints share nanoseconds, file order decides
    assert ohlcv(first) == by_hand(rows, JUNE_21.open_ns, JUNE_21.open_ns + MINUTE)


def test_five_minute_hour_and_day_bars_match_the_hand_tally_too(trades):
    rows = raw_trades("AMZN")
    five = {b.start_ns: b for b in trade_bars(trades, Timeframe.FIVE_MINUTES, [JUNE_21]) if b.symbol == "AMZN"}
    start = ns("2012-06-21T11:55:00-04:00")
    assert ohlcv(five[start]) == by_hand(rows, start, start + 5 * MINUTE)
    hours = [b for b in trade_bars(trades, Timeframe.HOUR, [JUNE_21]) if b.symbol == "AMZN"]
    assert [(b.start_ns, b.end_ns) for b in hours][-2:] == [
        (ns("2012-06-21T14:30:00-04:00"), ns("2012-06-21T15:30:00-04:00")),
        (ns("2012-06-21T15:30:00-04:00"), ns("2012-06-21T16:00:00-04:00")),
    ]
    assert ohlcv(hours[0]) == by_hand(rows, ns("2012-06-21T09:30:00-04:00"), ns("2012-06-21T10:30:00-04:00"))
    [day] = [b for b in trade_bars(trades, Timeframe.DAY, [JUNE_21]) if b.symbol == "AMZN"]
    assert (day.start_ns, day.end_ns) == (JUNE_21.open_ns, JUNE_21.close_ns)
    assert ohlcv(day) == by_hand(rows, JUNE_21.open_ns, JUNE_21.close_ns)
    assert day.trade_count == 11419


def test_bars_are_ordered_by_start_then_symbol_and_every_trade_of_the_day_is_counted_once(trades):
    bars = trade_bars(trades, Timeframe.FIFTEEN_MINUTES, [JUNE_21])
    assert [(b.start_ns, b.symbol) for b in bars] == sorted((b.start_ns, b.symbol) for b in bars)
    assert sum(b.trade_count for b in bars) == len(trades) == 23097
    assert len(bars) == 2 * 26  # 26 quarter hours in 09:30-16:00, both symbols traded in each


def test_intraday_buckets_follow_the_session_open_and_an_early_close():
    assert bar_windows(JULY_3.open_ns, JULY_3.close_ns, Timeframe.HOUR, [JULY_3]) == [
        (ns(f"2012-07-03T{a}-04:00"), ns(f"2012-07-03T{b}-04:00"))
        for a, b in [("09:30", "10:30"), ("10:30", "11:30"), ("11:30", "12:30"), ("12:30", "13:00")]
    ]
    assert bar_windows(0, 2**62, Timeframe.DAY, [JUNE_21, JULY_3]) == [
        (JUNE_21.open_ns, JUNE_21.close_ns),
        (JULY_3.open_ns, JULY_3.close_ns),
    ]
    assert len(bar_windows(0, 2**62, Timeframe.MINUTE, [JULY_3])) == 210
    # The bars that close while a clock moves: ends in (after, until], the until included.
    ten = ns("2012-06-21T10:00:00-04:00")
    assert bar_windows(ten - 1, ten + 2 * MINUTE, Timeframe.MINUTE, [JUNE_21]) == [
        (ten - MINUTE, ten),
        (ten, ten + MINUTE),
        (ten + MINUTE, ten + 2 * MINUTE),
    ]
    assert bar_windows(ten, ten + MINUTE - 1, Timeframe.MINUTE, [JUNE_21]) == []
    # A clock standing at a session's close has seen its last (short) hour close already.
    close = JUNE_21.close_ns
    assert bar_windows(close - 1, close, Timeframe.HOUR, [JUNE_21]) == [(close - 30 * MINUTE, close)]
    assert bar_windows(close, close + 60 * MINUTE, Timeframe.HOUR, [JUNE_21]) == []


def test_nothing_outside_the_session_and_no_bar_without_activity():
    symbol = "XYZ"
    trades = [
        Trade(symbol, ns("2012-07-03T09:29:59-04:00"), D("10.00"), D(100)),  # pre-market
        Trade(symbol, ns("2012-07-03T09:30:00-04:00"), D("10.10"), D(100)),  # the open: first bar
        Trade(symbol, ns("2012-07-03T09:30:59.999999999-04:00"), D("10.30"), D(300)),
        Trade(symbol, ns("2012-07-03T09:33:00-04:00"), D("10.20"), D(1)),  # 09:31, 09:32: nothing
        Trade(symbol, ns("2012-07-03T13:00:00-04:00"), D("11.00"), D(100)),
    ]  # at the early close: out
    bars = trade_bars(trades, Timeframe.MINUTE, [JULY_3])
    assert [(b.start_ns, b.open, b.close, b.volume, b.trade_count, b.vwap) for b in bars] == [
        (JULY_3.open_ns, D("10.10"), D("10.30"), D(400), 2, D("10.2500")),
        (JULY_3.open_ns + 3 * MINUTE, D("10.20"), D("10.20"), D(1), 1, D("10.2000")),
    ]
    [day] = trade_bars(trades, Timeframe.DAY, [JULY_3])
    assert (day.open, day.high, day.close, day.end_ns) == (D("10.10"), D("10.30"), D("10.20"), JULY_3.close_ns)


def test_vwap_is_rounded_half_even_to_four_places_exactly():
    at = JULY_3.open_ns
    # 2 x 10.00001 + 2 x 10.00000 = 20.00002 / 4 = 10.000005: a tie, rounded to the even 10.0000.
    bars = trade_bars(
        [Trade("X", at, D("10.00001"), D(2)), Trade("X", at + 1, D("10.00000"), D(2))], Timeframe.MINUTE, [JULY_3]
    )
    assert bars[0].vwap == D("10.0000")
    bars = trade_bars(
        [Trade("X", at, D("10.00003"), D(2)), Trade("X", at + 1, D("10.00000"), D(2))], Timeframe.MINUTE, [JULY_3]
    )
    assert bars[0].vwap == D("10.0000") and str(bars[0].vwap) == "10.0000"
    bars = trade_bars(
        [Trade("X", at, D("1.00"), D(1)), Trade("X", at + 1, D("1.01"), D(2))], Timeframe.MINUTE, [JULY_3]
    )
    assert bars[0].vwap == D("1.0067")  # 3.02 / 3 = 1.006666...


def tick(symbol: str, at: int, bid: str, ask: str) -> Tick:
    return Tick.quote(symbol, at, 1, D(bid), D(100), D(ask), D(100), Source.REPLAY)


def test_quote_mid_bars_use_the_mids_of_usable_quotes_and_say_so():
    open_ = JUNE_21.open_ns
    ticks = [
        tick("Q", open_ + 1, "10.00", "10.05"),  # mid 10.025
        tick("Q", open_ + 2, "10.10", "10.00"),  # crossed: skipped
        tick("Q", open_ + 3, "10.20", "10.20"),  # locked: skipped
        tick("Q", open_ + 4, "0", "10.00"),  # empty: skipped
        tick("Q", open_ + 5, "9.98", "10.00"),  # mid 9.99
        tick("Q", open_ + 6, "10.01", "10.04"),
    ]  # mid 10.025
    [bar] = quote_mid_bars(ticks, Timeframe.MINUTE, [JUNE_21])
    assert (bar.basis, bar.open, bar.high, bar.low, bar.close) == (
        Basis.QUOTE_MID,
        D("10.025"),
        D("10.025"),
        D("9.99"),
        D("10.025"),
    )
    assert (bar.volume, bar.trade_count, bar.vwap) == (D(0), 0, None)
    assert quote_mid_bars(ticks[1:4], Timeframe.MINUTE, [JUNE_21]) == []


def test_an_index_level_makes_its_bars_so_its_day_bar_opens_and_closes_at_its_official_values():
    # An index's quote is its level (bid = ask, Condition.INDEX): never usable for a fill,
    # but its day bar's open and close are what its AM- and PM-settled options settle on.
    open_ = JUNE_21.open_ns
    levels = ["17.61", "18.02", "17.25", "17.40"]
    ticks = [
        Tick.quote("^VIX", open_ + k * 30 * MINUTE, k + 1, D(v), None, D(v), None, Source.REPLAY, index=True)
        for k, v in enumerate(levels)
    ]
    assert not any(t.usable for t in ticks)
    [bar] = quote_mid_bars(ticks, Timeframe.DAY, [JUNE_21])
    assert (bar.symbol, bar.basis, bar.open, bar.high, bar.low, bar.close) == (
        "^VIX",
        Basis.QUOTE_MID,
        D("17.61"),
        D("18.02"),
        D("17.25"),
        D("17.40"),
    )
    # A locked quote of a symbol that is not an index still makes no bar.
    assert quote_mid_bars([tick("Q", open_ + 1, "17.61", "17.61")], Timeframe.DAY, [JUNE_21]) == []


def test_finer_bars_roll_up_into_the_same_ohlcv_as_aggregating_directly(trades):
    minutes = trade_bars(trades, Timeframe.MINUTE, [JUNE_21])
    for timeframe in (Timeframe.FIFTEEN_MINUTES, Timeframe.HOUR, Timeframe.DAY):
        direct = trade_bars(trades, timeframe, [JUNE_21])
        rolled = roll_up(minutes, timeframe, [JUNE_21])
        assert [(*ohlcv(b)[:6], b.start_ns, b.end_ns, b.symbol) for b in rolled] == [
            (*ohlcv(b)[:6], b.start_ns, b.end_ns, b.symbol) for b in direct
        ]
        # The vwap of vwaps differs from the exact one only by the minute vwaps' rounding.
        assert all(abs(r.vwap - d.vwap) <= D("0.0001") for r, d in zip(rolled, direct, strict=True))
    pre_market = replace(minutes[0], start_ns=JUNE_21.open_ns - 30 * MINUTE, end_ns=JUNE_21.open_ns - 29 * MINUTE)
    assert roll_up([pre_market], Timeframe.HOUR, [JUNE_21]) == []


def test_events_out_of_time_order_are_refused():
    at = JUNE_21.open_ns
    with pytest.raises(ValueError, match="time order"):
        trade_bars([Trade("X", at + 5, D(1), D(1)), Trade("X", at, D(1), D(1))], Timeframe.MINUTE, [JUNE_21])


@pytest.mark.parametrize(
    "raw, timeframe",
    [
        ("1Min", Timeframe.MINUTE),
        ("5min", Timeframe.FIVE_MINUTES),
        ("15MIN", Timeframe.FIFTEEN_MINUTES),
        ("30Min", Timeframe.THIRTY_MINUTES),
        (" 1hour ", Timeframe.HOUR),
        ("1Day", Timeframe.DAY),
    ],
)
def test_timeframes_are_alpacas_names(raw, timeframe):
    assert parse_timeframe(raw) is timeframe


@pytest.mark.parametrize("raw", ["", "1m", "2Min", "1Week", "1Hours", "x" * 100])
def test_other_timeframes_are_invalid_arguments_listing_the_choices(raw):
    with pytest.raises(DomainError) as caught:
        parse_timeframe(raw)
    assert caught.value.reason == "INVALID_ARGUMENT" and caught.value.metadata == {"field": "timeframe"}
    assert "1Min, 5Min, 15Min, 30Min, 1Hour, 1Day" in caught.value.message
