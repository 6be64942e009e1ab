"""Each real job against a real worker process, on the embedded transport (SQLite) and on a
real Redis broker: a job delivered twice for the same key has one effect, and a worker
SIGKILLed in the middle of a job is replaced, the job runs again and its effect happens once;
a job whose service is away is retried until it is back, one a retry cannot help fails at once.

Runs are bookkept in the jobs' own database (the per-key record), read back here; a killed
worker's lease runs out after MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS (2 s here) and the
scheduler's sweep (or Redis's visibility timeout) sends the job again."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import date, datetime

import pytest
from sqlalchemy import insert

from mbt.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from services.activities import audit_chain
from services.activities.audit_trail import actor_key
from services.activities.store import AuditLogRow
from services.common.config import Settings
from services.common.persistence.db import BlockingDatabase
from services.common.wire.conv import from_timestamp, to_date
from services.jobs.runs import task_id
from tests.support.identity import as_user
from tests.support.jobs import VARIANTS, JobsProcesses, jobs_mesh
from tests.support.mesh import free_port
from tests.support.trading import START, Trading, eventually

CHAIN_ROWS = 40_000
VERIFY = "mbt.verify_audit_chain"


@pytest.fixture(params=VARIANTS)
async def jobs(request, tmp_path):
    async with jobs_mesh(request.param, tmp_path, MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS="2") as mesh:
        yield mesh


async def until(check, timeout: float = 90):
    return await eventually(check, timeout=timeout, interval=0.05)


async def record(processes: JobsProcesses, job: str, key: str, state: str):
    async def check():
        run = await processes.run(job, key)
        assert run is not None and run.state == state, run
        return run

    return await until(check)


async def backtest(trading: Trading, backtest_id: str) -> matcher_pb2.Backtest:
    stub = matcher_pb2_grpc.BacktestServiceStub(trading.channel("matcher"))
    return (
        await stub.GetBacktest(matcher_pb2.GetBacktestRequest(backtest_id=backtest_id), metadata=as_user("alice"))
    ).backtest


async def create_backtest(trading: Trading, last_day: date, slots: str) -> str:
    stub = matcher_pb2_grpc.BacktestServiceStub(trading.channel("matcher"))
    created = await stub.CreateBacktest(
        matcher_pb2.CreateBacktestRequest(
            backtest=matcher_pb2.Backtest(
                strategy="grid", parameters={"slots": slots}, from_date=to_date(START.date()), to_date=to_date(last_day)
            )
        ),
        metadata=as_user("alice"),
    )
    return created.backtest.backtest_id


def times(message: matcher_pb2.Backtest) -> tuple[datetime, datetime | None]:
    return from_timestamp(message.started_at), from_timestamp(message.finished_at)


async def test_a_backtest_runs_once_when_its_job_is_delivered_twice_or_its_worker_is_killed(jobs):
    trading, processes, queue = jobs
    await processes.start("worker")

    first = await create_backtest(trading, date(2012, 6, 21), "6")  # the matcher offers it; the worker runs it
    done = await record(processes, "mbt.run_backtest", first, "done")
    finished = await backtest(trading, first)
    assert finished.status == matcher_pb2.BACKTEST_STATUS_SUCCEEDED and done.attempts == 1
    assert done.result == {
        "backtest_id": first,
        "status": "succeeded",
        "progress_percent": 100,
        "error": "",
        "ticks": finished.ticks,
        "orders": finished.orders,
        "fills": finished.fills,
    }

    # offered again (nothing is sent) and delivered again (a duplicate message): one run, one effect
    assert (await asyncio.to_thread(queue.offer, "mbt.run_backtest", first)).state == "done"
    await asyncio.to_thread(
        queue.app.send_task, "mbt.run_backtest", args=[first], task_id=task_id("mbt.run_backtest", first)
    )
    await until(lambda: _logged(processes, "job skipped", first))
    assert times(await backtest(trading, first)) == times(finished)
    assert (await processes.run("mbt.run_backtest", first)).attempts == 1

    # a backtest that does not exist: not_found, which no retry changes
    unknown = "bt_" + "a" * 24
    await asyncio.to_thread(queue.offer, "mbt.run_backtest", unknown)
    refused = await record(processes, "mbt.run_backtest", unknown, "failed")
    assert refused.attempts == 1 and refused.error.startswith("not_found: ")

    # a long one, its worker killed while it runs in the matcher
    second = await create_backtest(trading, date(2012, 6, 29), "100")

    async def running():
        message, run = await backtest(trading, second), await processes.run("mbt.run_backtest", second)
        assert run is not None and run.state == "running", run
        assert message.status == matcher_pb2.BACKTEST_STATUS_RUNNING, message
        return message

    started = times(await until(running))[0]
    processes.kill("worker")
    await processes.start("worker")
    await processes.start("scheduler")  # its sweep sends the job again once the dead worker's lease runs out
    rerun = await record(processes, "mbt.run_backtest", second, "done")
    assert rerun.attempts == 2 and rerun.result["status"] == "succeeded"
    ended = await backtest(trading, second)
    # the matcher ran it once: the second attempt joined the run in progress (or found it finished)
    assert ended.status == matcher_pb2.BACKTEST_STATUS_SUCCEEDED and times(ended)[0] == started


async def _logged(processes: JobsProcesses, event: str, key: str) -> None:
    lines = [line for line in processes.log("worker").splitlines() if f'"event": "{event}"' in line and key in line]
    assert lines, f"no {event!r} for {key} yet"


def seed_audit_chain(settings: Settings, rows: int) -> audit_chain.Link:
    """``rows`` chained audit rows written straight into activities' table (what thousands of
    changes would leave), so that walking them takes a while."""
    db = BlockingDatabase(settings.service("activities").database_url)
    key, previous, values = actor_key(settings), None, []
    for n in range(rows):
        sealed = audit_chain.seal(
            key,
            audit_chain.Entry(
                sequence=0,
                audit_id=f"aud_seed{n:08d}",
                actor_type="user",
                actor_id=f"user{n % 50}",
                actor_hash="",
                action="submit",
                entity_type="order",
                entity_id=f"ord_seed{n:08d}",
                user_id=f"user{n % 50}",
                user_hash="",
                before=None,
                after={"status": "accepted"},
                request_id=f"req_seed{n:08d}",
                service="orders",
                occurred_at=START,
                recorded_at=START,
            ),
            previous,
        )
        previous = audit_chain.Link(sealed.sequence, sealed.audit_id, sealed.row_hash)
        values.append(
            {
                "audit_id": sealed.audit_id,
                "actor_type": sealed.actor_type,
                "actor_id": sealed.actor_id,
                "action": sealed.action,
                "entity_type": sealed.entity_type,
                "entity_id": sealed.entity_id,
                "user_id": sealed.user_id,
                "before": None,
                "after": sealed.after,
                "request_id": sealed.request_id,
                "service": sealed.service,
                "occurred_at": START,
                "recorded_at": START,
                "chain_seq": sealed.sequence,
                "actor_hash": sealed.actor_hash,
                "user_hash": sealed.user_hash,
                "prev_hash": sealed.prev_hash,
                "row_hash": sealed.row_hash,
            }
        )
    with db.transaction() as session:
        session.execute(insert(AuditLogRow), values)
    db.dispose()
    return previous


async def test_the_audit_verification_runs_once_per_session_even_delivered_twice_or_its_worker_killed(jobs):
    trading, processes, queue = jobs
    head = await asyncio.to_thread(seed_audit_chain, trading.mesh.settings, CHAIN_ROWS)
    await processes.start("worker")
    verify = VERIFY

    for _ in range(2):
        await asyncio.to_thread(queue.offer, verify, "2012-06-20")
    done = await record(processes, verify, "2012-06-20", "done")
    await asyncio.to_thread(queue.app.send_task, verify, args=["2012-06-20"], task_id=task_id(verify, "2012-06-20"))
    await until(lambda: _logged(processes, "job skipped", "2012-06-20"))
    assert done.attempts == 1 and (await processes.run(verify, "2012-06-20")).result == done.result
    assert done.result == {"verified_rows": CHAIN_ROWS, "head": asdict(head), "anchor": None, "broken": None}
    assert _count(processes, "job done", "2012-06-20") == 1

    await asyncio.to_thread(queue.offer, verify, "2012-06-21")
    await record(processes, verify, "2012-06-21", "running")
    processes.kill("worker")
    await processes.start("worker")
    await processes.start("scheduler")
    rerun = await record(processes, verify, "2012-06-21", "done")
    assert rerun.attempts == 2
    # the second verification is anchored at the head the first one saw
    assert rerun.result == {"verified_rows": CHAIN_ROWS, "head": asdict(head), "anchor": asdict(head), "broken": None}
    assert _count(processes, "job done", "2012-06-21") == 1


def _count(processes: JobsProcesses, event: str, key: str) -> int:
    return sum(1 for line in processes.log("worker").splitlines() if f'"event": "{event}"' in line and key in line)


async def test_a_job_whose_service_is_away_is_retried_and_done_once_it_is_back(jobs):
    _trading, processes, queue = jobs
    await processes.start("worker", MBT_ACTIVITIES_TARGET=f"127.0.0.1:{free_port()}")  # nothing listens there
    await asyncio.to_thread(queue.offer, VERIFY, "2012-06-20")

    async def retrying():
        run = await processes.run(VERIFY, "2012-06-20")
        assert run is not None and run.state == "pending" and run.error.startswith("unavailable: "), run
        return run

    await until(retrying)
    processes.kill("worker")  # and with it the retry it was holding
    await processes.start("worker")
    await processes.start("scheduler")
    done = await record(processes, VERIFY, "2012-06-20", "done")
    assert done.attempts >= 2 and done.error == "" and done.result["broken"] is None
