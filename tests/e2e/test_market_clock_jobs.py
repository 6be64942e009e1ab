"""Scheduled jobs follow the market clock, not the wall clock: stepping the replay over two
session closes runs the close-time job twice, once per session and in order (the real
scheduler and worker processes, the real nightly audit verification); over a weekend it
runs for each trading day and none other; hourly jobs run once for each simulated hour."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest
from celery.contrib.testing.worker import start_worker

from mbt.marketdata.v1 import marketdata_pb2_grpc
from services.common.clock import FollowerClock
from services.common.config import Settings
from services.common.rpc.channels import open_channel
from services.jobs.queue import JobQueue
from services.jobs.registry import HOUR, HOURLY, REGISTRY, JobSpec
from services.jobs.runs import job
from services.jobs.scheduler import MarketCalendar, Scheduler
from tests.support.identity import as_service
from tests.support.jobs import JobsProcesses
from tests.support.mesh import start_mesh
from tests.support.trading import Trading, eventually, rest_as, trading_environ

UTC = UTC
VERIFY = "mbt.verify_audit_chain"
RAN: list[str] = []


@pytest.fixture(scope="module")
def hourly_job():
    """A job registered for these tests only (its task once per process, as Celery wants)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(REGISTRY, "tests.hourly", JobSpec("tests.hourly", __name__, HOUR, HOURLY))

        @job("tests.hourly")
        def hourly(run):
            RAN.append(run.key)
            return {"hour": run.key}

        yield REGISTRY["tests.hourly"]


@pytest.fixture
async def jobs_mesh(databases, tmp_path):
    environ = trading_environ(databases, tmp_path / "var", MBT_JOBS_DATABASE_URL=databases.new("jobs"))
    mesh = await start_mesh(Settings.from_env(environ))
    processes = JobsProcesses(environ, tmp_path / "logs")
    trading = Trading(mesh)
    yield trading, processes
    await processes.stop()
    await trading.close()
    await mesh.stop()


async def verifications(processes: JobsProcesses, keys: list[str]):
    async def check():
        runs = sorted(await processes.runs(VERIFY), key=lambda run: run.key)
        assert [(run.key, run.state) for run in runs] == [(key, "done") for key in keys], runs
        return runs

    return await eventually(check, timeout=90)


async def test_stepping_over_two_closes_runs_the_close_time_job_once_per_session_in_order(jobs_mesh):
    trading, processes = jobs_mesh
    await processes.start("worker")
    await processes.start("scheduler")
    async with rest_as(trading.mesh, "alice") as alice:
        placed = await alice.post(
            "/api/mbt/orders",
            json={
                "client_order_id": "c1",
                "symbol": "AMZN",
                "side": "buy",
                "qty": "1",
                "order_type": "limit",
                "limit_price": "100.00",
                "time_in_force": "gtc",
            },
        )
        assert placed.status_code == 200, placed.text
    await trading.step_to(datetime(2012, 6, 22, 20, 30, tzinfo=UTC))  # Thursday's and Friday's closes
    first, second = await verifications(processes, ["2012-06-21", "2012-06-22"])
    assert first.finished_at <= second.started_at
    assert first.result["broken"] is None and first.result["verified_rows"] >= 2  # the opening and the submit
    assert second.result["anchor"] == first.result["head"]

    # the weekend, Monday's and Tuesday's closes, and the expiration run due 90 minutes after the last
    await trading.step_to(datetime(2012, 6, 26, 21, 45, tzinfo=UTC))
    runs = await verifications(processes, ["2012-06-21", "2012-06-22", "2012-06-25", "2012-06-26"])
    assert all(run.attempts == 1 for run in runs)
    assert all(a.finished_at <= b.started_at for a, b in itertools.pairwise(runs))
    due = [line for line in processes.log("scheduler").splitlines() if '"event": "job due"' in line and VERIFY in line]
    assert [line.split('"key": "')[1][:10] for line in due] == ["2012-06-21", "2012-06-22", "2012-06-25", "2012-06-26"]

    # Every session-close job keeps the same pace: option expiration ran once per session too.
    async def expirations():
        expired = sorted((run.key, run.state, run.attempts) for run in await processes.runs("mbt.expire_options"))
        assert expired == [(key, "done", 1) for key in ("2012-06-21", "2012-06-22", "2012-06-25", "2012-06-26")]

    await eventually(expirations, timeout=90)


async def test_an_hourly_job_runs_once_for_each_simulated_hour_in_order(jobs_mesh, hourly_job):
    trading, _ = jobs_mesh
    settings = trading.mesh.settings
    RAN.clear()
    queue = JobQueue(settings)
    channel = open_channel(settings.service("marketdata").target, lambda: as_service("jobs"))
    marketdata = marketdata_pb2_grpc.MarketDataServiceStub(channel)
    clock = FollowerClock()
    following = asyncio.create_task(clock.follow(marketdata))
    scheduler = Scheduler(queue, clock, MarketCalendar(marketdata, 10), jobs=[hourly_job])
    stop = asyncio.Event()
    try:
        assert await clock.wait_synced(10)
        await scheduler.tick()  # a first run: the cursor starts at the market's now, 14:00 UTC
        scheduling = asyncio.create_task(scheduler.run(stop))
        with start_worker(queue.app, pool="threads", concurrency=2, perform_ping_check=False):
            await trading.step_to(datetime(2012, 6, 21, 17, 30, tzinfo=UTC))

            async def three():
                assert RAN == ["2012-06-21T15:00Z", "2012-06-21T16:00Z", "2012-06-21T17:00Z"], RAN

            await eventually(three, timeout=60)
            stop.set()
            await scheduling
            await trading.step_to(datetime(2012, 6, 21, 17, 59, tzinfo=UTC))
            await scheduler.tick()  # 17:59: nothing more is due
        runs = await asyncio.to_thread(queue.records.runs, "tests.hourly")
        assert sorted((run.key, run.state, run.attempts) for run in runs) == [
            (key, "done", 1) for key in ("2012-06-21T15:00Z", "2012-06-21T16:00Z", "2012-06-21T17:00Z")
        ]
    finally:
        following.cancel()
        scheduler.close()
        queue.close()
        await channel.close()
