"""build(settings): wires the market-data service, which owns the market clock."""

from __future__ import annotations

from decimal import Decimal

from mbt.marketdata.v1 import marketdata_pb2
from services.common.clock import AnchoredClock, WallClock
from services.common.config import Settings
from services.common.runtime import ServiceKit
from services.common.server import Registration, ServiceRuntime
from services.marketdata.service import ClockPublisher, MarketDataServicer
from services.marketdata.store import OUTBOX, SERVICE


def build(settings: Settings, *, clock: AnchoredClock | None = None) -> ServiceRuntime:
    clock = clock or AnchoredClock(WallClock().now(), Decimal(1))
    kit = ServiceKit.create(SERVICE, settings, tables=OUTBOX, clock=clock)
    publisher = ClockPublisher(clock, marketdata_pb2.CLOCK_MODE_WALL)
    return kit.runtime([Registration.of(MarketDataServicer(publisher))])
