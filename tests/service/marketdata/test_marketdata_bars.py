"""Bars over real gRPC from the replay of the bundled day: ListBars pages through closed
bars, refuses bad timeframes and windows, shows each tier what it may see and labels
quote-mid bars; StreamBars delivers every bar exactly once, when the clock reaches its
close, in stepped and in paced replay."""

import asyncio
import csv
import gzip

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from mbt.marketdata.v1 import marketdata_pb2 as pb
from services.common.wire.conv import timestamp_ns
from services.marketdata.recording import BUNDLED_QUOTES, BUNDLED_TRADES, load_recording
from tests.support.identity import as_ops, as_user
from tests.support.marketdata import MATCHER, START_NS, start_marketdata

FREE, PRO = as_user("fay", "free"), as_user("pat", "pro")
SECOND = 10**9
MINUTE = 60 * SECOND
OPEN_NS = START_NS - 30 * MINUTE  # 2012-06-21 09:30 New York
CLOSE_NS = START_NS + 6 * 60 * MINUTE  # 16:00 New York
NEXT_OPEN_NS = OPEN_NS + 24 * 60 * MINUTE  # Friday 09:30


def ts(ns: int) -> Timestamp:
    return Timestamp(seconds=ns // SECOND, nanos=ns % SECOND)


async def refused(call, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


def window(bar_or_message) -> tuple[int, int]:
    return timestamp_ns(bar_or_message.start_time), timestamp_ns(bar_or_message.end_time)


async def list_all(stub, metadata, page_size: int, **request) -> tuple[list, int]:
    """Every bar of a ListBars request, page by page; and how many pages it took."""
    bars, token, pages = [], "", 0
    while True:
        reply = await stub.ListBars(
            pb.ListBarsRequest(**request, page_size=page_size, page_token=token), metadata=metadata
        )
        bars += reply.bars
        pages += 1
        token = reply.next_page_token
        if not token:
            return bars, pages


async def test_list_bars_pages_through_the_closed_bars_of_a_window(marketdata):
    await marketdata.step(to_time=ts(START_NS + 2 * 60 * MINUTE + 30 * SECOND))  # 12:00:30 New York
    request = {"symbol": "AMZN", "timeframe": "1Min", "from_time": ts(OPEN_NS)}
    paged, pages = await list_all(marketdata.stub, MATCHER, 7, **request)
    whole = (await marketdata.stub.ListBars(pb.ListBarsRequest(**request, page_size=500), metadata=MATCHER)).bars
    assert paged == list(whole) and pages == 22  # 150 minutes, 7 a page
    assert [window(b) for b in paged] == [(OPEN_NS + m * MINUTE, OPEN_NS + (m + 1) * MINUTE) for m in range(150)]
    first = paged[0]
    assert (first.symbol, first.timeframe, first.basis, first.source) == (
        "AMZN",
        "1Min",
        pb.BAR_BASIS_TRADES,
        pb.QUOTE_SOURCE_REPLAY,
    )
    assert (first.open, first.high, first.low, first.close, first.volume, first.trade_count, first.vwap) == (
        "223.82",
        "224.45",
        "223.75",
        "224.33",
        "10821",
        140,
        "224.0650",
    )
    with gzip.open(BUNDLED_TRADES, "rt", newline="") as recorded:
        expected = sum(
            1
            for row in csv.DictReader(recorded)
            if row["symbol"] == "AMZN" and OPEN_NS <= int(row["ts_ns"]) < OPEN_NS + 150 * MINUTE
        )
    assert sum(b.trade_count for b in paged) == expected

    hours = (
        await marketdata.stub.ListBars(pb.ListBarsRequest(symbol="goog", timeframe="1hour"), metadata=MATCHER)
    ).bars
    assert [window(b) for b in hours] == [
        (OPEN_NS, OPEN_NS + 60 * MINUTE),
        (OPEN_NS + 60 * MINUTE, OPEN_NS + 120 * MINUTE),
    ]
    token = (
        await marketdata.stub.ListBars(pb.ListBarsRequest(**request, page_size=7), metadata=MATCHER)
    ).next_page_token
    other = dict(request, timeframe="5Min")
    error = await refused(
        marketdata.stub.ListBars(pb.ListBarsRequest(**other, page_token=token), metadata=MATCHER),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "page_token" in error.details()


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"symbol": "AMZN"}, "timeframe must be one of 1Min, 5Min, 15Min, 30Min, 1Hour, 1Day"),
        ({"symbol": "AMZN", "timeframe": "2Min"}, "got '2Min'"),
        (
            {"symbol": "AMZN", "timeframe": "1Min", "from_time": ts(START_NS), "to_time": ts(START_NS - MINUTE)},
            "from must not",
        ),
        ({"symbol": "AMZN", "timeframe": "1Min", "from_time": Timestamp(seconds=-2208988800)}, "1990"),
        ({"symbol": "AMZN", "timeframe": "1Day", "from_time": ts(START_NS - 400 * 24 * 60 * MINUTE)}, "366 days"),
        ({"symbol": "AMZN", "timeframe": "1Min", "from_time": ts(START_NS + MINUTE)}, "future"),
        ({"symbol": "SPY230915C00450000", "timeframe": "1Min"}, "option"),
        ({"symbol": "AM!ZN", "timeframe": "1Min"}, "neither a ticker"),
        ({"symbol": "AMZN", "timeframe": "1Min", "page_size": -1}, "page_size"),
        ({"symbol": "AMZN", "timeframe": "1Min", "page_token": "garbage"}, "page_token"),
    ],
)
async def test_bad_bar_requests_are_invalid_arguments_that_say_why(marketdata, fields, says):
    error = await refused(
        marketdata.stub.ListBars(pb.ListBarsRequest(**fields), metadata=PRO), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert says in error.details()


async def test_unknown_symbols_are_not_found_and_streams_need_a_service(marketdata):
    await refused(
        marketdata.stub.ListBars(pb.ListBarsRequest(symbol="ZZZZ", timeframe="1Min"), metadata=PRO),
        grpc.StatusCode.NOT_FOUND,
    )
    stream = marketdata.stub.StreamBars(pb.StreamBarsRequest(symbols=["AMZN"], timeframe="1Min"), metadata=PRO)
    await refused(stream.read(), grpc.StatusCode.PERMISSION_DENIED)
    stream = marketdata.stub.StreamBars(pb.StreamBarsRequest(symbols=["AMZN"], timeframe="1Week"), metadata=MATCHER)
    await refused(stream.read(), grpc.StatusCode.INVALID_ARGUMENT)


async def test_each_tier_sees_the_bars_it_may(marketdata):
    await marketdata.step(to_time=ts(START_NS + 30 * MINUTE + 20 * SECOND))  # 10:30:20 New York
    last_start = {}
    for name, identity in (
        ("free", FREE),
        ("no tier", as_user("nat")),
        ("pro", PRO),
        ("service", MATCHER),
        ("ops", as_ops("carol", reading_user="fay")),
    ):
        bars = (
            await marketdata.stub.ListBars(
                pb.ListBarsRequest(symbol="AMZN", timeframe="1Min", to_time=ts(START_NS + 60 * MINUTE), page_size=500),
                metadata=identity,
            )
        ).bars
        last_start[name] = window(bars[-1])
    # Free (and no tier): bars that closed 15 minutes ago; everyone else: up to now.
    assert last_start["free"] == last_start["no tier"] == (START_NS + 14 * MINUTE, START_NS + 15 * MINUTE)
    assert (
        last_start["pro"]
        == last_start["service"]
        == last_start["ops"]
        == (START_NS + 29 * MINUTE, START_NS + 30 * MINUTE)
    )
    daily = await marketdata.stub.ListBars(pb.ListBarsRequest(symbol="AMZN", timeframe="1Day"), metadata=PRO)
    assert list(daily.bars) == []  # today's session has not closed


async def test_a_symbol_without_trades_gets_bars_of_its_quote_mids_labelled_so(databases, tmp_path):
    amzn_only = tmp_path / "trades.csv"
    with gzip.open(BUNDLED_TRADES, "rt", newline="") as source, amzn_only.open("w", newline="") as target:
        rows = csv.reader(source)
        writer = csv.writer(target)
        writer.writerow(next(rows))
        writer.writerows(row for row in rows if row[1] == "AMZN")
    server = await start_marketdata(databases, tmp_path, MBT_REPLAY_TRADES_FILE=str(amzn_only))
    try:
        request = {"timeframe": "5Min", "from_time": ts(OPEN_NS), "page_size": 1}
        [goog] = (await server.stub.ListBars(pb.ListBarsRequest(symbol="GOOG", **request), metadata=PRO)).bars
        assert (goog.basis, goog.volume, goog.trade_count, goog.vwap) == (pb.BAR_BASIS_QUOTE_MID, "0", 0, "")
        first = next(t for t in load_recording(BUNDLED_QUOTES).ticks if t.symbol == "GOOG")
        assert goog.open == str((first.bid + first.ask) / 2) == "579.815"
        [amzn] = (await server.stub.ListBars(pb.ListBarsRequest(symbol="AMZN", **request), metadata=PRO)).bars
        assert (amzn.basis, amzn.open) == (pb.BAR_BASIS_TRADES, "223.82")
    finally:
        await server.stop()


async def read_closes(stream, count: int) -> list:
    async def collect():
        return [await stream.read() for _ in range(count)]

    messages = await asyncio.wait_for(collect(), 30)
    assert grpc.aio.EOF not in messages
    return messages


def minute_closes(first_end: int, last_end: int) -> list[tuple[int, int]]:
    return [(end - MINUTE, end) for end in range(first_end, last_end + 1, MINUTE)]


async def test_a_stepped_replay_delivers_each_bar_once_right_at_its_close(marketdata):
    stub = marketdata.stub
    minutes = stub.StreamBars(pb.StreamBarsRequest(symbols=["GOOG", "AMZN"], timeframe="1Min"), metadata=MATCHER)
    hours = stub.StreamBars(pb.StreamBarsRequest(symbols=["AMZN"], timeframe="1Hour"), metadata=MATCHER)
    try:
        await minutes.initial_metadata()
        await hours.initial_metadata()
        # Uneven steps: short of a close by a microsecond, onto it, across several, to a close
        # exactly, past the session's close into the evening, over the night into Friday.
        steps = [
            ({"by": Duration(seconds=59, nanos=999_999_000)}, []),
            ({"by": Duration(nanos=1000)}, minute_closes(START_NS + MINUTE, START_NS + MINUTE)),
            ({"by": Duration(seconds=150)}, minute_closes(START_NS + 2 * MINUTE, START_NS + 3 * MINUTE)),
            ({"to_time": ts(START_NS + 5 * MINUTE)}, minute_closes(START_NS + 4 * MINUTE, START_NS + 5 * MINUTE)),
            ({"by": Duration(seconds=7)}, []),
            ({"to_time": ts(CLOSE_NS + 90 * MINUTE)}, minute_closes(START_NS + 6 * MINUTE, CLOSE_NS)),
            (
                {"to_time": ts(NEXT_OPEN_NS + 2 * MINUTE + 1000)},
                minute_closes(NEXT_OPEN_NS + MINUTE, NEXT_OPEN_NS + 2 * MINUTE),
            ),
        ]
        hourly = [(OPEN_NS + h * 60 * MINUTE, OPEN_NS + (h + 1) * 60 * MINUTE) for h in range(6)]
        expected_hours = {5: [*hourly, (CLOSE_NS - 30 * MINUTE, CLOSE_NS)]}
        streamed = []
        for index, (step, expected) in enumerate(steps):
            await marketdata.step(**step)
            received = await read_closes(minutes, len(expected))
            # Each close once, in order: a premature or repeated message would shift this list.
            assert [window(m) for m in received] == expected, index
            for message in received:
                assert all(window(b) == window(message) for b in message.bars)
                streamed += message.bars
            if index in expected_hours:
                hour_closes = await read_closes(hours, len(expected_hours[index]))
                assert [window(m) for m in hour_closes] == expected_hours[index]
                assert hour_closes[-1].bars[0].close == received[-1].bars[0].close  # both end with the day's last trade
        # The streamed bars are the bars ListBars lists (a minute where a symbol did not trade has none of it).
        listed = []
        for symbol in ("AMZN", "GOOG"):
            listed += (
                await list_all(
                    stub,
                    MATCHER,
                    500,
                    symbol=symbol,
                    timeframe="1Min",
                    from_time=ts(START_NS),
                    to_time=ts(NEXT_OPEN_NS + MINUTE),
                )
            )[0]
        assert len(streamed) > 700 and sorted(streamed, key=lambda b: (window(b), b.symbol)) == sorted(
            listed, key=lambda b: (window(b), b.symbol)
        )
        # Nothing extra is queued: the next close is the next message on both streams.
        await marketdata.step(by=Duration(seconds=60))
        [next_minute] = await read_closes(minutes, 1)
        assert window(next_minute) == (NEXT_OPEN_NS + 2 * MINUTE, NEXT_OPEN_NS + 3 * MINUTE)
        await marketdata.step(to_time=ts(NEXT_OPEN_NS + 60 * MINUTE))
        await read_closes(minutes, 57)
        [friday_hour] = await read_closes(hours, 1)
        assert window(friday_hour) == (NEXT_OPEN_NS, NEXT_OPEN_NS + 60 * MINUTE)
        # A streamed bar is the bar ListBars lists for that window.
        [hour] = (
            await stub.ListBars(
                pb.ListBarsRequest(
                    symbol="AMZN", timeframe="1Hour", from_time=ts(NEXT_OPEN_NS), to_time=ts(NEXT_OPEN_NS)
                ),
                metadata=MATCHER,
            )
        ).bars
        assert hour == friday_hour.bars[0]
    finally:
        minutes.cancel()
        hours.cancel()


async def test_a_paced_replay_delivers_consecutive_bars_once_each_after_its_close(databases, tmp_path):
    server = await start_marketdata(
        databases, tmp_path, MBT_REPLAY_MODE="paced", MBT_REPLAY_SPEED="300", MBT_REPLAY_START="2012-06-21T14:00:00Z"
    )
    stream = server.stub.StreamBars(pb.StreamBarsRequest(symbols=["AMZN"], timeframe="1Min"), metadata=MATCHER)
    try:
        await stream.initial_metadata()
        windows = []
        for _ in range(4):
            [message] = await read_closes(stream, 1)
            clock = (await server.stub.GetClock(pb.GetClockRequest(), metadata=MATCHER)).clock
            assert timestamp_ns(clock.now) >= timestamp_ns(message.end_time)
            windows.append(window(message))
        first_end = windows[0][1]
        assert windows == minute_closes(first_end, first_end + 3 * MINUTE)
    finally:
        stream.cancel()
        await server.stop()
