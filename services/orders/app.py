"""build(settings): wires the orders service."""

from __future__ import annotations

from mbt.common.v1 import user_data_pb2_grpc
from services.common.clock import Clock
from services.common.config import Settings
from services.common.runtime import ServiceKit
from services.common.server import Registration, ServiceRuntime
from services.orders.service import OrdersServicer
from services.orders.store import OUTBOX, SERVICE


def build(settings: Settings, *, clock: Clock | None = None) -> ServiceRuntime:
    kit = ServiceKit.create(SERVICE, settings, tables=OUTBOX, clock=clock)
    return kit.runtime([
        Registration.of(OrdersServicer()),
        Registration.of(user_data_pb2_grpc.UserDataServiceServicer()),
    ])
