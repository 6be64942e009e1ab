"""Market-data figures: replay throughput in process and over gRPC streaming, fan-out
latency per tick, and bar aggregation. Everything replays the bundled LOBSTER sample in
stepped mode (one whole recorded session: 100,640 ticks and 23,097 trades of AMZN and GOOG)."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bench.report import Figure, machine
from tests.support.mesh import free_port

RUNS = 5
ROOT = Path(__file__).resolve().parents[1]
SESSION_START = datetime(2012, 6, 21, 13, 30, tzinfo=UTC)
SESSION_END_NS = int(datetime(2012, 6, 21, 20, 0, tzinfo=UTC).timestamp()) * 10**9
SYMBOLS = ["AMZN", "GOOG"]


def _replay_parts(capacity: int, archive):
    from services.common.clock import AnchoredClock
    from services.marketdata.clockfeed import ClockPublisher
    from services.marketdata.domain.calendar import xnys
    from services.marketdata.hub import QuoteHub
    from services.marketdata.providers.replay import ReplayProvider
    from services.marketdata.recording import BUNDLED_QUOTES, BUNDLED_TRADES, load_recording, load_trades
    from services.marketdata.timeline import ReplayTimeline

    clock = AnchoredClock(SESSION_START, Decimal(0))
    publisher = ClockPublisher(clock, "stepped")
    timeline = ReplayTimeline(load_recording(BUNDLED_QUOTES), xnys(), loop=True, trades=load_trades(BUNDLED_TRADES))
    provider = ReplayProvider(
        timeline,
        xnys(),
        publisher,
        stepped=True,
        speed=Decimal(0),
        skip_closed=False,
        stall_seconds=30,
        chain=None,
        reference_symbols=set(),
    )
    hub = QuoteHub(
        capacity=capacity,
        subscribe_upstream=provider.subscribe,
        unsubscribe_upstream=provider.unsubscribe,
        archive=archive,
    )
    provider.attach(hub)
    return provider, hub


async def _in_process_once() -> float:
    provider, hub = _replay_parts(10_000, lambda ticks: None)
    subscription = await hub.subscribe(SYMBOLS)
    received = 0

    async def consume(total: int) -> None:
        nonlocal received
        while received < total:
            received += len(await subscription.next_batch(500))

    started = time.perf_counter()
    consumer = asyncio.create_task(consume(100_640))
    delivered = await provider.step(SESSION_END_NS)
    await consumer
    return delivered / (time.perf_counter() - started)


async def _fanout_latency_once(subscribers: int, ticks: int = 5000) -> tuple[float, float]:
    """Median and 99th percentile microseconds from publish to a subscriber holding the tick."""
    from services.marketdata.recording import BUNDLED_QUOTES, load_recording

    _, hub = _replay_parts(10_000, lambda ticks: None)
    subscriptions = [await hub.subscribe(SYMBOLS) for _ in range(subscribers)]
    feed = load_recording(BUNDLED_QUOTES).ticks[:ticks]
    published: dict[int, float] = {}
    latencies: list[float] = []

    async def consume(subscription) -> None:
        seen = 0
        while seen < ticks:
            batch = await subscription.next_batch(500)
            now = time.perf_counter()
            latencies.extend(now - published[id(t)] for t in batch)
            seen += len(batch)

    consumers = [asyncio.create_task(consume(s)) for s in subscriptions]
    for tick in feed:  # a live feed: one tick at a time, the loop runs between ticks
        published[id(tick)] = time.perf_counter()
        hub.publish([tick])
        await asyncio.sleep(0)
    await asyncio.gather(*consumers)
    latencies.sort()
    return (statistics.median(latencies) * 1e6, latencies[int(len(latencies) * 0.99)] * 1e6)


async def _grpc_once(address: str, subscribers: int, step_to_ns: int) -> float:
    import grpc

    from mbt.marketdata.v1 import marketdata_pb2 as pb
    from mbt.marketdata.v1 import marketdata_pb2_grpc
    from tests.support.identity import as_service

    metadata = as_service("bench")
    channels = [grpc.aio.insecure_channel(address) for _ in range(subscribers)]
    streams = [
        marketdata_pb2_grpc.MarketDataServiceStub(c).StreamQuotes(
            pb.StreamQuotesRequest(symbols=SYMBOLS), metadata=metadata
        )
        for c in channels
    ]
    for stream in streams:
        await stream.initial_metadata()
    totals = [0] * subscribers

    async def consume(index: int, total: int) -> None:
        while totals[index] < total:
            totals[index] += len((await streams[index].read()).quotes)

    stub = marketdata_pb2_grpc.MarketDataServiceStub(channels[0])
    started = time.perf_counter()
    step = stub.StepClock(pb.StepClockRequest(to_time={"seconds": step_to_ns // 10**9}), metadata=metadata)
    consumers = [asyncio.create_task(consume(i, 100_640)) for i in range(subscribers)]
    reply = await step
    await asyncio.gather(*consumers)
    elapsed = time.perf_counter() - started
    for stream in streams:
        stream.cancel()
    for channel in channels:
        await channel.close()
    return reply.delivered_ticks / elapsed


def _grpc_figure(subscribers: int) -> float:
    """Ticks per second of one replayed session streamed to each of ``subscribers``
    clients; the server (with its SQLite tick archive) runs in its own process."""
    rates = []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as data_dir:
            port = free_port()
            env = {
                **os.environ,
                "MBT_DATA_DIR": data_dir,
                "MBT_MARKETDATA_PORT": str(port),
                "MBT_REPLAY_MODE": "stepped",
                "MBT_REPLAY_START": "2012-06-21T13:30:00Z",
                "MBT_LOG_LEVEL": "WARNING",
            }
            server = subprocess.Popen(
                [sys.executable, "-m", "services.marketdata"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait_serving(f"127.0.0.1:{port}")
                rates.append(asyncio.run(_grpc_once(f"127.0.0.1:{port}", subscribers, SESSION_END_NS)))
            finally:
                server.terminate()
                server.wait(30)
    return statistics.median(rates)


def _wait_serving(address: str) -> None:
    from services.run import _grpc_serving

    deadline = time.monotonic() + 60
    while not _grpc_serving(address):
        if time.monotonic() > deadline:
            raise RuntimeError(f"market data did not start on {address}")
        time.sleep(0.2)


def _aggregation_once(build) -> float:
    """Input events per second of one aggregation of the bundled session (``build`` returns
    the event count and a function doing the aggregation)."""
    count, aggregate = build()
    started = time.perf_counter()
    aggregate()
    return count / (time.perf_counter() - started)


def _trade_bars():
    from services.marketdata.domain.bars import Timeframe, trade_bars
    from services.marketdata.domain.calendar import xnys
    from services.marketdata.recording import BUNDLED_TRADES, load_trades

    trades = load_trades(BUNDLED_TRADES).trades
    session = [xnys().session_on(SESSION_START.date())]
    return len(trades), lambda: trade_bars(trades, Timeframe.MINUTE, session)


def _mid_bars():
    from services.marketdata.domain.bars import Timeframe, quote_mid_bars
    from services.marketdata.domain.calendar import xnys
    from services.marketdata.recording import BUNDLED_QUOTES, load_recording

    ticks = load_recording(BUNDLED_QUOTES).ticks
    session = [xnys().session_on(SESSION_START.date())]
    return len(ticks), lambda: quote_mid_bars(ticks, Timeframe.MINUTE, session)


async def _bar_closes_once() -> float:
    """Bars per second handed to one StreamBars subscription (1Min, AMZN and GOOG) while a
    stepped replay moves over the whole session, in process."""
    from services.common.instruments import parse_symbols
    from services.marketdata.barfeed import BarFeed
    from services.marketdata.domain.bars import Timeframe
    from services.marketdata.domain.calendar import xnys

    provider, _ = _replay_parts(10_000, lambda ticks: None)
    feed = BarFeed(provider, xnys(), provider.publisher.clock)
    subscription = feed.subscribe(parse_symbols(SYMBOLS), Timeframe.MINUTE)
    started = time.perf_counter()
    await feed.advance(SESSION_END_NS)
    elapsed = time.perf_counter() - started
    bars = 0
    for _ in range(390):  # the session's minutes
        bars += len((await subscription.next()).bars)
    return bars / elapsed


def _option_model_once() -> tuple[float, float, int, int]:
    """Model option quotes for AMZN's listed chain over the whole bundled session: (model ticks
    per second, contract evaluations per second, contracts, model ticks)."""
    from services.marketdata import recording
    from services.marketdata.app import bundled_calibration
    from services.marketdata.domain.calendar import xnys
    from services.marketdata.optionmodel import OptionQuoteModel, reference_prices
    from services.marketdata.timeline import ReplayTimeline

    timeline = ReplayTimeline(recording.load_recording(recording.BUNDLED_QUOTES), xnys(), loop=False)
    model = OptionQuoteModel(
        timeline, xnys(), bundled_calibration(), references=reference_prices(timeline, ["AMZN"]), rate=Decimal("0.001")
    )
    start_ns = int(SESSION_START.timestamp()) * 10**9
    contracts = model.contracts("AMZN", start_ns, None)
    model.track(contracts, start_ns)
    underlying = list(timeline.between(start_ns, SESSION_END_NS, {"AMZN"}))
    started = time.perf_counter()
    produced = sum(1 for _ in model.expand(underlying, frozenset()))
    elapsed = time.perf_counter() - started
    evaluations = sum(1 for t in underlying if t.usable) * len(contracts)
    return produced / elapsed, evaluations / elapsed, len(contracts), produced


def run() -> list[Figure]:
    config = f"bundled LOBSTER session (100,640 ticks), stepped replay; {machine()}"
    in_process = statistics.median(asyncio.run(_in_process_once()) for _ in range(RUNS))
    figures = [
        Figure(
            "replay -> hub -> 1 subscriber, in process",
            in_process,
            "ticks/s",
            RUNS,
            config + "; batches of 500",
            ">= 200,000",
        )
    ]
    for subscribers in (1, 4):
        figures.append(
            Figure(
                f"replay -> StreamQuotes -> {subscribers} gRPC subscriber(s)",
                _grpc_figure(subscribers),
                "ticks/s",
                RUNS,
                config + "; server in its own process with its SQLite tick archive; rate per subscriber",
                ">= 50,000",
            )
        )
    figures.append(
        Figure(
            "1Min bars from the bundled trades (domain.bars.trade_bars)",
            statistics.median(_aggregation_once(_trade_bars) for _ in range(RUNS)),
            "trades/s",
            RUNS,
            "23,097 trades -> 772 bars (AMZN and GOOG, 2012-06-21); " + machine(),
        )
    )
    figures.append(
        Figure(
            "1Min quote-mid bars from the bundled quotes (domain.bars.quote_mid_bars)",
            statistics.median(_aggregation_once(_mid_bars) for _ in range(RUNS)),
            "ticks/s",
            RUNS,
            "100,640 ticks -> 780 bars; " + machine(),
        )
    )
    figures.append(
        Figure(
            "bar closes of a stepped session -> 1 StreamBars subscription, in process",
            statistics.median(asyncio.run(_bar_closes_once()) for _ in range(RUNS)),
            "bars/s",
            RUNS,
            "1Min, AMZN and GOOG, 390 closes computed one window at a time from the replay; " + machine(),
        )
    )
    ticks_per_second, evaluations, contracts, produced = _option_model_once()
    model_config = (
        f"AMZN's {contracts} listed contracts (7 expiries x 14 strikes x call/put) priced at each of "
        f"the session's usable AMZN ticks (QuantLib BSM, calibrated smile, grid rounding), {produced:,} "
        f"changed quotes sent; one run of the whole day; {machine()}"
    )
    figures.append(
        Figure("model option quotes produced (stream path, one session)", ticks_per_second, "ticks/s", 1, model_config)
    )
    figures.append(Figure("model option quotes: contract evaluations", evaluations, "evaluations/s", 1, model_config))
    for subscribers in (1, 16):
        results = [asyncio.run(_fanout_latency_once(subscribers)) for _ in range(RUNS)]
        figures.append(
            Figure(
                f"fan-out latency per tick, {subscribers} subscriber(s), median",
                statistics.median(r[0] for r in results),
                "us",
                RUNS,
                "5,000 ticks published one at a time, in process",
            )
        )
        figures.append(
            Figure(
                f"fan-out latency per tick, {subscribers} subscriber(s), p99",
                statistics.median(r[1] for r in results),
                "us",
                RUNS,
                "5,000 ticks published one at a time, in process",
            )
        )
    return figures
