"""The money jobs run twice for the same key have one effect, on the embedded transport
(SQLite) and on a real Redis broker (PostgreSQL): offered twice and delivered twice (a
duplicate message), each runs once; and the work itself is idempotent per key (what a worker
that did it but died before recording it would repeat): asking accounts again posts and
writes nothing. The replay starts the day before AAPL's 2012-08-09 ex-date."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from mbt.accounts.v1 import accounts_pb2
from services.common.wire.conv import to_date
from services.jobs.runs import task_id
from tests.e2e.test_money_jobs import filled_cash, open_margin
from tests.reliability.test_jobs import _count, _logged, record, until
from tests.support.identity import as_service
from tests.support.jobs import VARIANTS, jobs_mesh
from tests.support.money_jobs import EX_DATE_CLOSE, ex_date_environ, snapshots
from tests.support.trading import Trading, rest_as

D = Decimal
DAY = "2012-08-09"
JOBS = ("mbt.eod_mark_all", "mbt.credit_dividends", "mbt.accrue_margin_interest")


@pytest.fixture(params=VARIANTS)
async def jobs(request, tmp_path):
    async with jobs_mesh(
        request.param, tmp_path, environ=ex_date_environ, MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS="2"
    ) as jobs:
        yield jobs


async def effects(trading: Trading, users: list[str]) -> dict:
    """Each user's cash, dividend and interest activities, and every snapshot."""
    seen = {}
    for user in users:
        async with rest_as(trading.mesh, user) as client:
            account = (await client.get("/api/mbt/account")).json()["data"]
            activities = (await client.get("/api/mbt/activities")).json()["data"]
        seen[user] = (
            account["cash"],
            sorted(
                (a["activity_type"], a["net_amount"])
                for a in activities
                if a["activity_type"] in ("dividend", "margin_interest")
            ),
        )
    rows = await asyncio.to_thread(snapshots, trading.mesh.settings)
    seen["snapshots"] = sorted((row.account_id, row.as_of_date, row.equity) for row in rows)
    return seen


async def test_each_money_job_run_twice_for_the_same_day_has_one_effect(jobs):
    trading, processes, queue = jobs
    async with rest_as(trading.mesh, "dora") as dora:
        await filled_cash(dora, D("100000.00"), "AAPL", "buy", 10)
    async with rest_as(trading.mesh, "mia") as mia:  # a Diversifier on margin, 200 shares: a debit
        await open_margin(trading, mia, "mia")
        debit_cash = await filled_cash(mia, D("100000.00"), "AAPL", "buy", 200)
    assert debit_cash < 0
    await trading.step_to(EX_DATE_CLOSE.replace(minute=30))
    await processes.start("worker")

    for job in JOBS:
        for _ in range(2):
            await asyncio.to_thread(queue.offer, job, DAY)
    for job in JOBS:
        await record(processes, job, DAY, "done")
        await asyncio.to_thread(queue.app.send_task, job, args=[DAY], task_id=task_id(job, DAY))
    await until(lambda: _logged(processes, "job skipped", DAY))
    for job in JOBS:
        run = await record(processes, job, DAY, "done")
        assert run.attempts == 1, run
        assert _count(processes, "job done", f'"{job}", "key": "{DAY}"') == 1
    first = await effects(trading, ["dora", "mia"])
    assert first["dora"][1] == [("dividend", "26.50")]
    assert first["mia"][1][0] == ("dividend", "530.00") and first["mia"][1][1][0] == "margin_interest"
    assert [day for _, day, _ in first["snapshots"]].count(EX_DATE_CLOSE.date()) == 2

    # The work itself, asked again (a worker that did it and died before recording it).
    accounts, service = trading.accounts(), as_service("jobs")
    day = to_date(EX_DATE_CLOSE.date())
    assert (
        await accounts.MarkEndOfDay(accounts_pb2.MarkEndOfDayRequest(session_date=day), metadata=service)
    ).created == 0
    assert (
        await accounts.CreditDividends(accounts_pb2.CreditDividendsRequest(pay_date=day), metadata=service)
    ).posted == 0
    again = await accounts.AccrueMarginInterest(
        accounts_pb2.AccrueMarginInterestRequest(session_date=day), metadata=service
    )
    assert (again.charged, again.days) == (0, 1)
    assert await effects(trading, ["dora", "mia"]) == first
