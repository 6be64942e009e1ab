"""build(settings): wires the orders service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mbt.accounts.v1 import accounts_pb2_grpc
from mbt.common.v1 import user_data_pb2_grpc
from mbt.marketdata.v1 import marketdata_pb2_grpc
from services.common.clock import Clock
from services.common.config import Settings
from services.common.kit import ServiceKit
from services.common.rpc.server import Registration, ServiceRuntime
from services.orders.clients import MarketView
from services.orders.service import OrdersServicer
from services.orders.store import OUTBOX, SERVICE
from services.orders.usecases import Orders


def build(settings: Settings, *, clock: Clock | None = None, wall: Clock | None = None,
          wrap_accounts: Callable[[Any], Any] | None = None) -> ServiceRuntime:
    """``clock``: the simulated clock (default: follow market data). ``wall``: the wall clock
    replace leases run on. ``wrap_accounts``: wraps the accounts client (tests inject faults)."""
    kit = ServiceKit.create(SERVICE, settings, tables=OUTBOX, clock=clock)
    market = MarketView(kit.stub("marketdata", marketdata_pb2_grpc.MarketDataServiceStub),
                        settings.rpc_timeout_seconds)
    accounts = kit.stub("accounts", accounts_pb2_grpc.AccountsServiceStub)
    orders = Orders(settings, kit.db, kit.outbox, kit.clock, market,
                    wrap_accounts(accounts) if wrap_accounts else accounts, wall=wall)
    return kit.runtime([
        Registration.of(OrdersServicer(orders)),
        Registration.of(user_data_pb2_grpc.UserDataServiceServicer()),
    ], background=[orders.run_housekeeping])
