"""build(settings): wires the matcher (no database: it rebuilds its book from orders)."""

from __future__ import annotations

from mbt.marketdata.v1 import marketdata_pb2_grpc
from mbt.orders.v1 import orders_pb2_grpc
from services.common.clock import Clock
from services.common.config import Settings
from services.common.runtime import ServiceKit
from services.common.server import Registration, ServiceRuntime
from services.matcher.engine import Engine
from services.matcher.explain import Explainer
from services.matcher.service import MatcherEvents, MatcherServicer

SERVICE = "matcher"


def build(settings: Settings, *, clock: Clock | None = None) -> ServiceRuntime:
    kit = ServiceKit.create(SERVICE, settings, clock=clock)
    orders = kit.stub("orders", orders_pb2_grpc.OrdersServiceStub)
    marketdata = kit.stub("marketdata", marketdata_pb2_grpc.MarketDataServiceStub)
    engine = Engine(settings, orders, marketdata)
    explainer = Explainer(orders, marketdata, engine.calendar, engine.max_quote_age_ns,
                          settings.rpc_timeout_seconds)
    runtime = kit.runtime([Registration.of(MatcherServicer(engine, explainer)), Registration.of(MatcherEvents(engine))],
                          background=[engine.run])
    runtime.closers.insert(0, engine.close)
    return runtime
