"""A market-data server over real gRPC and a real database, in stepped replay mode unless
a test asks otherwise: time moves only when the test steps it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mbt.marketdata.v1 import marketdata_pb2 as pb
from mbt.marketdata.v1 import marketdata_pb2_grpc
from services.common.clients import open_channel
from services.common.config import Settings
from services.common.server import RunningService, start
from services.marketdata.app import build
from services.marketdata.market import MarketData
from tests.support.identity import as_service

MATCHER = as_service("matcher")


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


async def start_marketdata(databases, tmp_path, **env: str) -> MarketDataServer:
    environ = {"MBT_DATA_DIR": str(tmp_path), "MBT_LOG_FORMAT": "text", "MBT_REPLAY_MODE": "stepped",
               "MBT_MARKETDATA_DATABASE_URL": databases.new("marketdata"), **env}
    running = await start(build(Settings.from_env(environ)))
    channel = open_channel(running.address)
    return MarketDataServer(running, marketdata_pb2_grpc.MarketDataServiceStub(channel), channel)


@pytest.fixture
async def marketdata(databases, tmp_path):
    server = await start_marketdata(databases, tmp_path)
    yield server
    await server.stop()
