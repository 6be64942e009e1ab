"""StreamQuotes fan-out over real gRPC: many subscribers to a symbol make one upstream
subscription and each receives every tick; a subscriber that stops reading is told
exactly what it missed and can catch up from the archive."""

import asyncio

import grpc
from google.protobuf.duration_pb2 import Duration

from mbt.marketdata.v1 import marketdata_pb2 as pb
from mbt.marketdata.v1 import marketdata_pb2_grpc
from tests.support.marketdata import MATCHER, content, read_quotes, start_marketdata, wait_until


async def test_n_subscribers_to_one_symbol_share_one_upstream_subscription_and_all_get_every_tick(marketdata):
    provider = marketdata.market.provider
    streams = [
        marketdata.stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["AMZN"]), metadata=MATCHER) for _ in range(4)
    ]
    streams.append(marketdata.stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["GOOG", "AMZN"]), metadata=MATCHER))
    try:
        for stream in streams:
            await stream.initial_metadata()
        assert provider.upstream_subscriptions == {"AMZN": 1, "GOOG": 1}
        assert marketdata.market.hub.subscribers("AMZN") == 5
        step = await marketdata.step(by=Duration(seconds=120))
        both = await read_quotes(streams[4], step.delivered_ticks)
        expected = [content(q) for q in both if q.symbol == "AMZN"]
        for stream in streams[:4]:
            assert [content(q) for q in await read_quotes(stream, len(expected))] == expected
        assert {q.symbol for q in both} == {"AMZN", "GOOG"}
    finally:
        for stream in streams:
            stream.cancel()
    await wait_until(lambda: marketdata.market.hub.symbols == frozenset())
    # Nobody listens now; the replay keeps feeding the archive through the grace period.
    assert provider.subscribed == {"AMZN", "GOOG"}


async def test_a_subscriber_that_stops_reading_is_told_what_it_missed_and_catches_up_from_the_archive(
    databases, tmp_path
):
    server = await start_marketdata(
        databases, tmp_path, MBT_QUOTE_STREAM_BUFFER="20", MBT_QUOTE_STREAM_BATCH="10", MBT_STEP_STALL_SECONDS="0.05"
    )
    try:
        # A fixed 64 KiB HTTP/2 window: a client that does not read soon holds the server up.
        channel = grpc.aio.insecure_channel(server.running.address, options=[("grpc.http2.bdp_probe", 0)])
        lagging = marketdata_pb2_grpc.MarketDataServiceStub(channel).StreamQuotes(
            pb.StreamQuotesRequest(symbols=["AMZN"]), metadata=MATCHER
        )
        await lagging.initial_metadata()
        step = await server.step(by=Duration(seconds=3600))  # about 8,000 AMZN ticks while nobody reads
        seen, gaps = [], []
        while len(seen) + sum(g.dropped for g in gaps) < step.delivered_ticks:
            message = await asyncio.wait_for(lagging.read(), 30)
            assert message is not grpc.aio.EOF
            seen.extend(message.quotes)
            if message.dropped:
                assert message.dropped_symbol == "AMZN" and not message.quotes
                assert message.dropped == message.dropped_to_sequence - message.dropped_from_sequence + 1
                gaps.append(message)
        lagging.cancel()
        await channel.close()
        assert gaps, "the stream buffered everything; the test needs a longer step"
        caught_up = []
        for gap in gaps:
            after = gap.dropped_from_sequence - 1
            while after < gap.dropped_to_sequence:
                page = await server.stub.ListArchivedTicks(
                    pb.ListArchivedTicksRequest(symbol="AMZN", after_sequence=after, page_size=5000), metadata=MATCHER
                )
                caught_up += [q for q in page.quotes if q.sequence <= gap.dropped_to_sequence]
                after = page.quotes[-1].sequence
        sequences = sorted(q.sequence for q in seen + caught_up)
        assert sequences == list(range(sequences[0], sequences[0] + step.delivered_ticks))
    finally:
        await server.stop()
