"""A market-data server for tests: real gRPC and a real database, in stepped replay mode
unless a test asks otherwise (time moves only when the test steps it), and helpers to
read its streams."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc

from mbt.marketdata.v1 import marketdata_pb2 as pb
from mbt.marketdata.v1 import marketdata_pb2_grpc
from services.common.clock import AnchoredClock
from services.common.config import Settings
from services.common.rpc.channels import open_channel
from services.common.rpc.server import RunningService, start
from services.common.wire.conv import timestamp_ns
from services.marketdata.app import build
from services.marketdata.usecases import MarketData
from tests.support.identity import as_service

MATCHER = as_service("matcher")
# Where the bundled replay starts: 10:00 New York, 30 minutes after the open.
START = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)
START_NS = int(START.timestamp()) * 10**9


@dataclass
class MarketDataServer:
    running: RunningService
    stub: marketdata_pb2_grpc.MarketDataServiceStub
    channel: object

    @property
    def market(self) -> MarketData:
        return self.running.runtime.registrations[0].servicer.market

    async def step(self, **kwargs) -> pb.StepClockResponse:
        return await self.stub.StepClock(pb.StepClockRequest(**kwargs), metadata=MATCHER)

    async def stop(self) -> None:
        await self.channel.close()
        await self.running.stop(0.5)


async def start_marketdata(databases, tmp_path, *, clock: AnchoredClock | None = None, **env: str) -> MarketDataServer:
    """The server; ``clock`` (already anchored) moves the alpaca provider's wall clock elsewhere."""
    environ = {
        "MBT_DATA_DIR": str(tmp_path),
        "MBT_LOG_FORMAT": "text",
        "MBT_REPLAY_MODE": "stepped",
        "MBT_MARKETDATA_DATABASE_URL": databases.new("marketdata"),
        **env,
    }
    running = await start(build(Settings.from_env(environ), clock=clock))
    channel = open_channel(running.address)
    return MarketDataServer(running, marketdata_pb2_grpc.MarketDataServiceStub(channel), channel)


async def read_quotes(stream, count: int, timeout: float = 30) -> list:
    """The next ``count`` quotes of a stream that must not report drops."""
    quotes = []

    async def collect():
        while len(quotes) < count:
            message = await stream.read()
            assert message is not grpc.aio.EOF
            assert message.dropped == 0, message
            quotes.extend(message.quotes)

    await asyncio.wait_for(collect(), timeout)
    return quotes


def content(quote) -> tuple:
    """Everything about a quote except its age (which depends on when it was sent)."""
    return (
        quote.symbol,
        quote.sequence,
        timestamp_ns(quote.quote_at),
        quote.bid_price,
        quote.bid_size,
        quote.ask_price,
        quote.ask_size,
        quote.condition,
        quote.source,
    )


async def wait_until(predicate, timeout: float = 10) -> None:
    async def poll():
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)
