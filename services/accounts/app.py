"""build(settings): wires the accounts service."""

from __future__ import annotations

from mbt.common.v1 import user_data_pb2_grpc
from mbt.marketdata.v1 import marketdata_pb2_grpc
from services.accounts.clients import Pricing
from services.accounts.service import AccountsServicer
from services.accounts.store import OUTBOX, SERVICE
from services.accounts.usecases import Accounts
from services.common.clock import Clock
from services.common.config import Settings
from services.common.messaging.inbox import EventSink
from services.common.kit import ServiceKit
from services.common.rpc.server import Registration, ServiceRuntime


def build(settings: Settings, *, clock: Clock | None = None) -> ServiceRuntime:
    kit = ServiceKit.create(SERVICE, settings, tables=OUTBOX, clock=clock)
    pricing = Pricing(kit.stub("marketdata", marketdata_pb2_grpc.MarketDataServiceStub), settings.rpc_timeout_seconds,
                      kit.credentials)
    accounts = Accounts(kit.db, kit.outbox, kit.clock, pricing)
    handlers = {
        "mbt.orders.v1.OrderFilled": accounts.on_order_filled,
        "mbt.orders.v1.OrderReplaced": accounts.on_order_replaced,
        "mbt.orders.v1.OrderCanceled": accounts.on_order_ended,
        "mbt.orders.v1.OrderExpired": accounts.on_order_ended,
    }
    return kit.runtime([
        Registration.of(AccountsServicer(accounts)),
        Registration.of(EventSink(kit.db, kit.outbox, kit.clock, handlers)),
        Registration.of(user_data_pb2_grpc.UserDataServiceServicer()),
    ])
