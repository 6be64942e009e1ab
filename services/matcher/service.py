"""MatcherService and BacktestService servicers and the matcher's event sink (in memory: the book is rebuilt
from orders on start, so redelivered events are harmless and need no inbox)."""

from __future__ import annotations

from mbt.common.v1 import events_pb2, events_pb2_grpc
from mbt.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from services.common.rpc.context import identity, require_user_id
from services.common.errors import invalid_argument
from services.common.ids import requested_id
from services.common.rpc.protoregistry import message_class
from services.matcher.usecases.backtests import Backtests
from services.matcher.usecases.matching import Engine
from services.matcher.usecases.explain import Explainer

ADMITTED = {"mbt.orders.v1.OrderAccepted", "mbt.orders.v1.OrderReplaced", "mbt.orders.v1.OrderTriggered"}
ENDED = {"mbt.orders.v1.OrderCanceled", "mbt.orders.v1.OrderExpired", "mbt.orders.v1.OrderFilled",
         "mbt.orders.v1.OrderRejected"}


class MatcherServicer(matcher_pb2_grpc.MatcherServiceServicer):
    def __init__(self, engine: Engine, explainer: Explainer) -> None:
        self.engine = engine
        self.explainer = explainer

    async def ExplainFill(self, request, context):
        fill_id = requested_id(request.fill_id, "fill", "fill_id", "fill")
        user_id = None if identity().is_service else require_user_id()
        return matcher_pb2.ExplainFillResponse(explanation=await self.explainer.explain(fill_id, user_id))

    async def GetBook(self, request, context):
        stats = self.engine.book
        return matcher_pb2.GetBookResponse(
            symbols=[matcher_pb2.SymbolBook(symbol=s, working_orders=len(stats.orders_for(s))) for s in stats.symbols()],
            working_orders=len(stats), ticks_processed=self.engine.ticks_processed,
            fills_decided=self.engine.fills_decided)


class BacktestServicer(matcher_pb2_grpc.BacktestServiceServicer):
    def __init__(self, backtests: Backtests) -> None:
        self.backtests = backtests

    async def CreateBacktest(self, request, context):
        if not request.HasField("backtest"):
            raise invalid_argument("backtest is required", "backtest")
        backtest = await self.backtests.create(require_user_id(), request.backtest)
        return matcher_pb2.CreateBacktestResponse(backtest=backtest)

    async def GetBacktest(self, request, context):
        backtest = await self.backtests.get(require_user_id(), requested_id(request.backtest_id, "bt", "backtest_id", "backtest"))
        return matcher_pb2.GetBacktestResponse(backtest=backtest)

    async def ListBacktests(self, request, context):
        backtests, token = await self.backtests.list(require_user_id(), request.page_size, request.page_token)
        return matcher_pb2.ListBacktestsResponse(backtests=backtests, next_page_token=token)

    async def GetBacktestReport(self, request, context):
        report = await self.backtests.report(require_user_id(), requested_id(request.backtest_id, "bt", "backtest_id", "backtest"))
        return matcher_pb2.GetBacktestReportResponse(report=report)

    async def RunBacktest(self, request, context):
        async for backtest in self.backtests.run(requested_id(request.backtest_id, "bt", "backtest_id", "backtest")):
            yield matcher_pb2.RunBacktestResponse(backtest=backtest)

    async def GetBacktestFile(self, request, context):
        found = await self.backtests.file(require_user_id(), requested_id(request.backtest_id, "bt", "backtest_id", "backtest"),
                                          _required(request.name, "name"))
        return matcher_pb2.GetBacktestFileResponse(file=found)


def _required(value: str, name: str) -> str:
    if not value.strip():
        raise invalid_argument(f"{name} is required", name)
    return value.strip()


class MatcherEvents(events_pb2_grpc.EventSinkServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def Deliver(self, request, context):
        await self.engine.ready()  # an event older than the book must not overtake its rebuild
        for event in request.events:
            payload = message_class(event.event_type)()
            event.payload.Unpack(payload)
            if event.event_type in ADMITTED:
                await self.engine.admit(payload.order)
            elif event.event_type in ENDED:
                self.engine.remove(payload.order.order_id)
        return events_pb2.DeliverResponse(acknowledged_event_ids=[e.event_id for e in request.events])
