"""The market-data service replaying the bundled sample in stepped mode, over real gRPC:
deterministic ticks, exact stepping, the clock the other services follow, the archive.
Expected ticks come from the recording file read by the tests themselves
(``tests.support.recording``), not from the loader under test."""

import asyncio

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from mbt.marketdata.v1 import marketdata_pb2 as pb
from services.common.wire.conv import timestamp_ns
from tests.support import recording
from tests.support.errors import error_info
from tests.support.marketdata import MATCHER, START_NS, content, read_quotes, start_marketdata


def ts(ns: int) -> Timestamp:
    return Timestamp(seconds=ns // 10**9, nanos=ns % 10**9)


def minutes(n: float) -> Duration:
    return Duration(seconds=int(n * 60))


def _price(value) -> str:
    """A recorded equity price as quotes show it: the bundled prices are all at or above $1."""
    assert value >= 1
    return f"{value:.2f}"


async def replay_twenty_minutes(server) -> tuple[list, list]:
    stream = server.stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["AMZN", "GOOG"]), metadata=MATCHER)
    received, steps = [], []
    try:
        await stream.initial_metadata()
        for by in (1, 4, 15):
            step = await server.step(by=minutes(by))
            steps.append((timestamp_ns(step.state.simulated_at), step.delivered_ticks))
            received += await read_quotes(stream, step.delivered_ticks)
    finally:
        stream.cancel()
    return [content(q) for q in received], steps


async def test_replaying_the_bundled_sample_twice_gives_the_same_ticks_in_the_same_order(databases, tmp_path):
    runs = []
    for name in ("first", "second"):
        server = await start_marketdata(databases, tmp_path / name)
        try:
            runs.append(await replay_twenty_minutes(server))
        finally:
            await server.stop()
    (ticks, steps), (again, steps_again) = runs
    assert ticks == again and steps == steps_again
    recorded = [q for q in recording.all_quotes() if START_NS < q.at_ns <= START_NS + 20 * 60 * 10**9]
    assert [(t[0], t[1], t[2], t[3], t[5]) for t in ticks] == [
        (q.symbol, q.sequence, q.at_ns, _price(q.bid), _price(q.ask)) for q in recorded
    ]
    assert steps[-1] == (START_NS + 20 * 60 * 10**9, ticks.__len__() - sum(s[1] for s in steps[:-1]))


async def test_a_step_delivers_exactly_the_ticks_up_to_its_time_and_updates_latest_quotes(marketdata):
    stream = marketdata.stub.StreamQuotes(
        pb.StreamQuotesRequest(symbols=["AMZN"], include_latest=True), metadata=MATCHER
    )
    try:
        [latest] = await read_quotes(stream, 1)
        target = START_NS + 90 * 10**9 + 123
        step = await marketdata.step(to_time=ts(target))
        quotes = await read_quotes(stream, step.delivered_ticks)
        recorded = [q for q in recording.quotes("AMZN") if START_NS < q.at_ns <= target]
        assert [(q.sequence, q.bid_price, q.bid_size, q.ask_price, q.ask_size) for q in quotes] == [
            (q.sequence, _price(q.bid), str(q.bid_size), _price(q.ask), str(q.ask_size)) for q in recorded
        ]
        assert quotes[0].sequence == latest.sequence + 1
        now = await marketdata.stub.GetLatestQuote(pb.GetLatestQuoteRequest(symbol="AMZN"), metadata=MATCHER)
        assert content(now.quote) == content(quotes[-1])
        assert timestamp_ns(step.state.simulated_at) == target - target % 1000  # the clock keeps microseconds
        assert step.state.speed == "0" and step.state.mode == pb.CLOCK_MODE_STEPPED
        step = await marketdata.step(by=Duration(nanos=1000))
        assert step.delivered_ticks == 0
    finally:
        stream.cancel()


async def test_latest_quotes_carry_time_sequence_condition_age_and_source(marketdata):
    reply = await marketdata.stub.GetLatestQuotes(pb.GetLatestQuotesRequest(symbols=["GOOG", "AMZN"]), metadata=MATCHER)
    goog, amzn = reply.quotes
    assert (goog.symbol, amzn.symbol) == ("GOOG", "AMZN")
    expected = recording.standing("AMZN", START_NS)
    assert (amzn.sequence, timestamp_ns(amzn.quote_at), amzn.bid_price, amzn.ask_price) == (
        expected.sequence,
        expected.at_ns,
        _price(expected.bid),
        _price(expected.ask),
    )
    assert amzn.condition == pb.QUOTE_CONDITION_USABLE and amzn.source == pb.QUOTE_SOURCE_REPLAY
    assert amzn.age.ToNanoseconds() == START_NS - expected.at_ns
    assert not amzn.delayed


async def test_the_clock_answers_and_every_step_reaches_clock_watchers(marketdata):
    clock = (await marketdata.stub.GetClock(pb.GetClockRequest(), metadata=MATCHER)).clock
    assert timestamp_ns(clock.now) == START_NS and clock.is_open
    assert clock.next_close_at.ToJsonString() == "2012-06-21T20:00:00Z"
    assert clock.next_open_at.ToJsonString() == "2012-06-22T13:30:00Z"
    assert clock.session.open_at.ToJsonString() == "2012-06-21T13:30:00Z" and not clock.session.early_close
    watch = marketdata.stub.WatchClock(pb.WatchClockRequest(), metadata=MATCHER)
    try:
        first = await watch.read()
        assert timestamp_ns(first.state.simulated_at) == START_NS and first.state.speed == "0"
        await marketdata.step(to_time=ts(START_NS + 8 * 3600 * 10**9))  # past the close, into the evening
        states = []
        while not states or timestamp_ns(states[-1].simulated_at) < START_NS + 8 * 3600 * 10**9:
            states.append((await asyncio.wait_for(watch.read(), 10)).state)
        assert [s.simulated_at.ToJsonString() for s in states][-1] == "2012-06-21T22:00:00Z"
    finally:
        watch.cancel()
    clock = (await marketdata.stub.GetClock(pb.GetClockRequest(), metadata=MATCHER)).clock
    assert not clock.is_open and clock.next_open_at.ToJsonString() == "2012-06-22T13:30:00Z"
    assert not clock.HasField("session") or clock.session.close_at.ToJsonString() == "2012-06-21T20:00:00Z"


@pytest.mark.parametrize(
    "request_fields, field",
    [
        ({"to_time": ts(START_NS - 10**9)}, "to_time"),
        ({"by": Duration(seconds=-1)}, "by"),
        ({}, "to_time"),
        ({"to_time": ts(START_NS + 10**9), "by": minutes(1)}, "to_time"),
        ({"to_time": ts(START_NS + 40 * 366 * 86400 * 10**9)}, "to_time"),
    ],
)
async def test_bad_steps_are_invalid_arguments(marketdata, request_fields, field):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await marketdata.step(**request_fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    reason, metadata = error_info(caught.value)
    assert (reason, metadata.get("field")) == ("INVALID_ARGUMENT", field), caught.value.details()


async def test_a_paced_replay_cannot_be_stepped_and_jumps_over_the_closed_market(databases, tmp_path):
    server = await start_marketdata(
        databases, tmp_path, MBT_REPLAY_MODE="paced", MBT_REPLAY_SPEED="600", MBT_REPLAY_START="2012-06-21T19:59:00Z"
    )
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await server.step(by=minutes(1))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        watch = server.stub.WatchClock(pb.WatchClockRequest(), metadata=MATCHER)
        try:
            state = (await watch.read()).state
            assert state.mode == pb.CLOCK_MODE_REPLAY and state.speed == "600"
            while state.simulated_at.ToJsonString() < "2012-06-22T13:30:00Z":
                state = (await asyncio.wait_for(watch.read(), 30)).state
            assert state.simulated_at.ToJsonString() == "2012-06-22T13:30:00Z"
        finally:
            watch.cancel()
    finally:
        await server.stop()


async def test_every_streamed_tick_is_archived_and_pages_in_sequence_order(marketdata):
    stream = marketdata.stub.StreamQuotes(
        pb.StreamQuotesRequest(symbols=["GOOG"], include_latest=True), metadata=MATCHER
    )
    try:
        streamed = await read_quotes(stream, 1)
        step = await marketdata.step(by=minutes(2))
        streamed += await read_quotes(stream, step.delivered_ticks)
    finally:
        stream.cancel()
    archived, token = [], ""
    while True:
        page = await marketdata.stub.ListArchivedTicks(
            pb.ListArchivedTicksRequest(symbol="GOOG", page_size=100, page_token=token), metadata=MATCHER
        )
        archived += page.quotes
        token = page.next_page_token
        if not token:
            break
    assert [content(q) for q in archived] == [content(q) for q in streamed]
    tail = await marketdata.stub.ListArchivedTicks(
        pb.ListArchivedTicksRequest(symbol="GOOG", after_sequence=streamed[-3].sequence), metadata=MATCHER
    )
    assert [q.sequence for q in tail.quotes] == [q.sequence for q in streamed[-2:]]
    window = await marketdata.stub.ListArchivedTicks(
        pb.ListArchivedTicksRequest(symbol="GOOG", from_time=streamed[1].quote_at, to_time=streamed[1].quote_at),
        metadata=MATCHER,
    )
    assert [q.sequence for q in window.quotes] == [q.sequence for q in streamed if q.quote_at == streamed[1].quote_at]


async def test_the_archive_forgets_ticks_older_than_its_retention(databases, tmp_path):
    # Released at once, so the two days stepped below archive nothing new.
    server = await start_marketdata(
        databases, tmp_path, MBT_TICK_ARCHIVE_RETENTION_DAYS="1", MBT_QUOTE_UNSUBSCRIBE_AFTER_SECONDS="0"
    )
    try:
        stream = server.stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["GOOG"]), metadata=MATCHER)
        await stream.initial_metadata()
        step = await server.step(by=minutes(1))
        await read_quotes(stream, step.delivered_ticks)
        stream.cancel()
        request = pb.ListArchivedTicksRequest(symbol="GOOG", page_size=1000)
        assert len((await server.stub.ListArchivedTicks(request, metadata=MATCHER)).quotes) == step.delivered_ticks
        await server.market.archiver.purge()
        assert len((await server.stub.ListArchivedTicks(request, metadata=MATCHER)).quotes) == step.delivered_ticks
        await server.step(by=Duration(seconds=2 * 86400))
        await server.market.archiver.purge()
        assert (await server.stub.ListArchivedTicks(request, metadata=MATCHER)).quotes == []
    finally:
        await server.stop()


async def test_a_restarted_replay_resumes_where_it_stopped(databases, tmp_path):
    url = databases.new("marketdata")
    server = await start_marketdata(databases, tmp_path, MBT_MARKETDATA_DATABASE_URL=url)
    await server.step(by=minutes(45))
    await server.stop()
    again = await start_marketdata(databases, tmp_path, MBT_MARKETDATA_DATABASE_URL=url)
    try:
        clock = (await again.stub.GetClock(pb.GetClockRequest(), metadata=MATCHER)).clock
        assert timestamp_ns(clock.now) == START_NS + 45 * 60 * 10**9
    finally:
        await again.stop()
