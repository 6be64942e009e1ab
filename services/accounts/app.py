"""build(settings): wires the accounts service."""

from __future__ import annotations

from mbt.common.v1 import user_data_pb2_grpc
from services.accounts.service import AccountsServicer
from services.accounts.store import OUTBOX, SERVICE
from services.common.clock import Clock
from services.common.config import Settings
from services.common.inbox import EventSink
from services.common.runtime import ServiceKit
from services.common.server import Registration, ServiceRuntime


def build(settings: Settings, *, clock: Clock | None = None) -> ServiceRuntime:
    kit = ServiceKit.create(SERVICE, settings, tables=OUTBOX, clock=clock)
    return kit.runtime([
        Registration.of(AccountsServicer()),
        Registration.of(EventSink(kit.db, kit.outbox, kit.clock, handlers={})),
        Registration.of(user_data_pb2_grpc.UserDataServiceServicer()),
    ])
