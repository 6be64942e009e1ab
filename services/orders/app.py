"""build(settings): wires the orders service."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from mbt.accounts.v1 import accounts_pb2_grpc
from mbt.marketdata.v1 import marketdata_pb2_grpc
from services.common.clock import Clock, WallClock
from services.common.config import Settings
from services.common.kit import ServiceKit
from services.common.persistence.uow import unit_of_work
from services.common.rpc.server import Registration, ServiceRuntime
from services.common.rpc.user_data import UserDataServicer
from services.orders.clients import AccountsClient, MarketClient
from services.orders.events import publish
from services.orders.service import OrdersServicer
from services.orders.store import OUTBOX, SERVICE, USER_TABLES
from services.orders.usecases.deps import Deps
from services.orders.usecases.lifecycle import Lifecycle, run_housekeeping
from services.orders.usecases.reads import OrderReads
from services.orders.usecases.replace import ReplaceSaga
from services.orders.usecases.retention import OrderRetention
from services.orders.usecases.submit import SubmitSaga


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    wall: Clock | None = None,
    wrap_accounts: Callable[[Any], Any] | None = None,
) -> ServiceRuntime:
    """``clock``: the simulated clock (default: follow market data). ``wall``: the wall clock
    replace leases run on. ``wrap_accounts``: wraps the accounts stub (tests inject faults)."""
    kit = ServiceKit.create(SERVICE, settings, tables=OUTBOX, clock=clock)
    accounts = kit.stub("accounts", accounts_pb2_grpc.AccountsServiceStub)
    deps = Deps(
        settings=settings,
        db=kit.database,
        uow=partial(unit_of_work, kit.database, kit.event_outbox, publish),
        clock=kit.clock,
        wall=wall or WallClock(),
        market=MarketClient(
            kit.stub("marketdata", marketdata_pb2_grpc.MarketDataServiceStub), settings.rpc_timeout_seconds
        ),
        accounts=AccountsClient(wrap_accounts(accounts) if wrap_accounts else accounts, settings.rpc_timeout_seconds),
    )
    submits, replaces = SubmitSaga(deps), ReplaceSaga(deps)
    lifecycle = Lifecycle(deps, activate=submits.activate)
    return kit.runtime(
        [
            Registration.of(OrdersServicer(submits, replaces, lifecycle, OrderReads(deps), OrderRetention(deps))),
            Registration.of(UserDataServicer(USER_TABLES, kit.database, kit.clock)),
        ],
        background=[partial(run_housekeeping, lifecycle, submits, replaces)],
    )
