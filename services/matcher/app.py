"""build(settings): wires the matcher (no database: it rebuilds its book from orders)."""

from __future__ import annotations

from mbt.common.v1 import events_pb2_grpc
from services.common.clock import Clock
from services.common.config import Settings
from services.common.runtime import ServiceKit
from services.common.server import Registration, ServiceRuntime
from services.matcher.service import MatcherServicer

SERVICE = "matcher"


def build(settings: Settings, *, clock: Clock | None = None) -> ServiceRuntime:
    kit = ServiceKit.create(SERVICE, settings, clock=clock)
    return kit.runtime([
        Registration.of(MatcherServicer()),
        Registration.of(events_pb2_grpc.EventSinkServiceServicer()),
    ])
