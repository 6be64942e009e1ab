"""MatcherService and BacktestService servicers: thin — wire in, use case, wire out (the
event sink is in events.py)."""

from __future__ import annotations

from mbt.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from services.common.errors import invalid_argument
from services.common.ids import requested_id
from services.common.rpc.context import identity, require_user_id
from services.matcher import wire
from services.matcher.usecases.backtests import Backtests
from services.matcher.usecases.explain import Explainer
from services.matcher.usecases.matching import Engine


class MatcherServicer(matcher_pb2_grpc.MatcherServiceServicer):
    def __init__(self, engine: Engine, explainer: Explainer) -> None:
        self.engine = engine
        self.explainer = explainer

    async def ExplainFill(self, request, context):
        fill_id = requested_id(request.fill_id, "fill", "fill_id", "fill")
        user_id = None if identity().is_service else require_user_id()
        explained = await self.explainer.explain(fill_id, user_id)
        return matcher_pb2.ExplainFillResponse(explanation=wire.explanation_to_proto(explained))

    async def GetBook(self, request, context):
        return wire.book_to_proto(self.engine.summary())


class BacktestServicer(matcher_pb2_grpc.BacktestServiceServicer):
    def __init__(self, backtests: Backtests) -> None:
        self.backtests = backtests

    async def CreateBacktest(self, request, context):
        if not request.HasField("backtest"):
            raise invalid_argument("backtest is required", "backtest")
        run = await self.backtests.create(require_user_id(), wire.spec_from_message(request.backtest))
        return matcher_pb2.CreateBacktestResponse(backtest=wire.backtest_to_proto(run))

    async def GetBacktest(self, request, context):
        run = await self.backtests.get(require_user_id(), _backtest_id(request.backtest_id))
        return matcher_pb2.GetBacktestResponse(backtest=wire.backtest_to_proto(run))

    async def ListBacktests(self, request, context):
        runs, token = await self.backtests.list(require_user_id(), request.page_size, request.page_token)
        return matcher_pb2.ListBacktestsResponse(
            backtests=[wire.backtest_to_proto(run) for run in runs], next_page_token=token
        )

    async def GetBacktestReport(self, request, context):
        backtest_id = _backtest_id(request.backtest_id)
        report = await self.backtests.report(require_user_id(), backtest_id)
        return matcher_pb2.GetBacktestReportResponse(report=wire.report_to_proto(backtest_id, report))

    async def RunBacktest(self, request, context):
        async for run in self.backtests.run(_backtest_id(request.backtest_id)):
            yield matcher_pb2.RunBacktestResponse(backtest=wire.backtest_to_proto(run))

    async def GetBacktestFile(self, request, context):
        backtest_id = _backtest_id(request.backtest_id)
        found = await self.backtests.file(require_user_id(), backtest_id, _required(request.name, "name"))
        return matcher_pb2.GetBacktestFileResponse(file=wire.file_to_proto(backtest_id, found))


def _backtest_id(raw: str) -> str:
    return requested_id(raw, "bt", "backtest_id", "backtest")


def _required(value: str, name: str) -> str:
    if not value.strip():
        raise invalid_argument(f"{name} is required", name)
    return value.strip()
