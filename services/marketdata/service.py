"""MarketDataService servicer: thin — parse, call domain and providers, map errors."""

from __future__ import annotations

import asyncio

from mbt.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from services.common.clock import AnchoredClock
from services.common.conv import decimal_str, to_timestamp


class ClockPublisher:
    """Tells WatchClock subscribers about every re-anchoring of the market clock."""

    def __init__(self, clock: AnchoredClock, mode: int) -> None:
        self.clock = clock
        self.mode = mode
        self._changed = asyncio.Condition()
        self._version = 0

    def state(self) -> marketdata_pb2.ClockState:
        simulated_at, wall_at, speed = self.clock.state()
        return marketdata_pb2.ClockState(simulated_at=to_timestamp(simulated_at), wall_at=to_timestamp(wall_at),
                                         speed=decimal_str(speed), mode=self.mode)

    async def changed(self) -> None:
        async with self._changed:
            self._version += 1
            self._changed.notify_all()

    async def watch(self):
        seen = -1
        while True:
            async with self._changed:
                if seen == self._version:
                    await self._changed.wait()
                seen = self._version
            yield self.state()


class MarketDataServicer(marketdata_pb2_grpc.MarketDataServiceServicer):
    def __init__(self, clock_publisher: ClockPublisher) -> None:
        self.clock_publisher = clock_publisher

    async def WatchClock(self, request, context):
        async for state in self.clock_publisher.watch():
            yield marketdata_pb2.WatchClockResponse(state=state)
