"""build(settings): wires the matcher. Its book stays in memory (rebuilt from orders on
start); its own database holds backtest runs and their result files."""

from __future__ import annotations

from mbt.marketdata.v1 import marketdata_pb2_grpc
from mbt.orders.v1 import orders_pb2_grpc
from services.common.clock import Clock, WallClock
from services.common.config import Settings
from services.common.kit import ServiceKit
from services.common.persistence import migrate
from services.common.persistence.db import Database
from services.common.rpc.server import Registration, ServiceRuntime
from services.common.rpc.user_data import UserDataServicer
from services.jobs.queue import JobQueue
from services.matcher.clients import MarketDataClient, OrdersClient, SessionCalendar
from services.matcher.events import MatcherEvents
from services.matcher.service import BacktestServicer, MatcherServicer
from services.matcher.store import SERVICE, USER_TABLES
from services.matcher.usecases.backtests import Backtests
from services.matcher.usecases.explain import Explainer
from services.matcher.usecases.matching import Engine


def build(settings: Settings, *, clock: Clock | None = None) -> ServiceRuntime:
    kit = ServiceKit.create(SERVICE, settings, clock=clock)
    timeout = settings.rpc_timeout_seconds
    orders = OrdersClient(kit.stub("orders", orders_pb2_grpc.OrdersServiceStub), timeout)
    marketdata = MarketDataClient(kit.stub("marketdata", marketdata_pb2_grpc.MarketDataServiceStub), timeout)
    calendar = SessionCalendar(marketdata)
    max_quote_age_ns = int(settings.max_quote_age_seconds * 1_000_000_000)
    engine = Engine(orders, marketdata, calendar, max_quote_age_ns)
    explainer = Explainer(orders, marketdata, calendar, max_quote_age_ns)
    url = settings.service(SERVICE).database_url
    migrate.upgrade(SERVICE, url)
    db = Database(url, pool_size=settings.db_pool_size)
    # Backtest runs are bookkept in wall time: they run now, whatever the market clock says.
    queue = JobQueue(settings)
    backtests = Backtests(settings, db, WallClock(), marketdata, queue)
    runtime = kit.runtime(
        [
            Registration.of(MatcherServicer(engine, explainer)),
            Registration.of(MatcherEvents(engine)),
            Registration.of(BacktestServicer(backtests)),
            Registration.of(UserDataServicer(USER_TABLES, db, kit.clock)),
        ],
        background=[engine.run, backtests.offer_queued],
    )
    runtime.closers.insert(0, engine.close)
    runtime.closers.extend([queue.close, db.aclose])
    return runtime
