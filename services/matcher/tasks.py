"""The matcher's jobs. ``mbt.run_backtest`` (key: the backtest id) is the queue of backtest
runs: the matcher offers each backtest when it is created (and, after a restart, every one
still queued or running); the job asks the matcher to run it (``RunBacktest``) and reports
its progress until it ends. Running it again is harmless: the matcher joins a run it has in
progress and answers a finished backtest as it is."""

from __future__ import annotations

from mbt.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from services.jobs.runs import JobContext, job
from services.matcher.wire import RUN_STATUS_WIRE

STATUS_NAMES = {number: status.value for status, number in RUN_STATUS_WIRE.items()}


@job("mbt.run_backtest")
def run_backtest(run: JobContext) -> dict:
    stub = run.stub("matcher", matcher_pb2_grpc.BacktestServiceStub)
    backtest = None
    # No deadline: a backtest takes as long as it takes; keepalive finds a matcher that died.
    for reply in stub.RunBacktest(matcher_pb2.RunBacktestRequest(backtest_id=run.key)):
        backtest = reply.backtest
        run.progress(status=STATUS_NAMES[backtest.status], progress_percent=backtest.progress_percent)
    if backtest is None:
        raise RuntimeError(f"RunBacktest {run.key} ended without a reply")
    return {
        "backtest_id": run.key,
        "status": STATUS_NAMES[backtest.status],
        "progress_percent": backtest.progress_percent,
        "error": backtest.error,
        "ticks": backtest.ticks,
        "orders": backtest.orders,
        "fills": backtest.fills,
    }
