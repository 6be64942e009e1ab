"""A job's worker SIGKILLed right after the owning service did the work and before it
answered (the worst moment: the effect is made, the run is not recorded), on the embedded
transport (SQLite) and on a real Redis broker (PostgreSQL): the replacement worker runs the
job again once the dead worker's lease runs out (MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS, 2 s
here; the scheduler's sweep or Redis's visibility timeout sends it again), the run ends done
and the effect happened once. The servicer method is wrapped for the test: the real method
runs, then the worker process is killed, then the (unheard) answer is sent.

The money jobs (EOD marks, dividends, margin interest) run on a replay from the day before
AAPL's 2012-08-09 ex-date: dora holds 10 shares in cash, mia 200 on margin (a debit
balance). A fill's notification (inbox and webhook) and a week's goal nudges run on the
default replay, as does an option expiry (a long call in the money, exercised, and one out of
it, expired worthless, at Friday 2012-06-22's close) and a user's data export (the first archive
stays), and the erasure of a user past the cooling period (accounts' erasure, the last, done
and then the worker killed), and the retention purge of a Free user's expired day (a one-day
window; accounts' ledger fold done and then the worker killed)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from mbt.accounts.v1 import accounts_pb2, privacy_pb2, privacy_pb2_grpc
from services.accounts.service import AccountsServicer, PrivacyServicer
from services.activities.service import GoalStreakServicer, NotificationsServicer
from services.common.rpc.user_data import UserDataServicer
from services.common.security.auth import bearer
from tests.e2e.test_accounts import update_user
from tests.e2e.test_gdpr import COOLING_DAYS, total, user_rows
from tests.e2e.test_money_jobs import filled_cash, open_margin
from tests.e2e.test_option_expiration import (
    AFTER_FRIDAYS_CLOSE,
    FRIDAY,
    ITM_CALL,
    OTM_CALL,
    seed_fill,
)
from tests.e2e.test_retention import activity_lines, history
from tests.e2e.test_retention_job import AT as PURGE_AT
from tests.e2e.test_retention_job import HOUR as PURGE_HOUR
from tests.e2e.test_retention_job import a_session_of_trading, account
from tests.reliability.test_goal_streaks import buy, nudges
from tests.reliability.test_jobs import record, until
from tests.reliability.test_notifications import SECRET_ENTRY, Webhook, filled_order
from tests.support.identity import TOKENS
from tests.support.jobs import VARIANTS, jobs_mesh
from tests.support.ledger_check import assert_ledger_consistent
from tests.support.money_jobs import EX_DATE_CLOSE, ex_date_environ, snapshots
from tests.support.option_views import cash, expirations, holdings
from tests.support.trading import Trading, eventually, rest_as

D = Decimal
DAY = "2012-08-09"
USERS = ("dora", "mia")


@dataclass
class KillAfter:
    """Wraps ``servicer.<method>`` (a servicer class): its first call kills ``pid`` once the
    real method has returned, before the answer goes out."""

    servicer: type
    method: str
    # Which servicer's calls count (a class several services serve): all by default.
    serves: Callable[[Any], bool] = lambda servicer: True
    pid: int | None = None
    replies: list = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = getattr(self.servicer, self.method)

        async def killing(servicer, request, context):
            reply = await real(servicer, request, context)
            if not self.serves(servicer):
                return reply
            self.replies.append(reply)
            if len(self.replies) == 1:
                assert self.pid is not None, "the worker was not started"
                os.kill(self.pid, signal.SIGKILL)
            return reply

        monkeypatch.setattr(self.servicer, self.method, killing)

    async def killed(self) -> None:
        assert self.replies, f"{self.method} not asked yet"


async def rerun_after_kill(processes, kill: KillAfter, job: str, key: str, calls: int = 2):
    """Reap the killed worker, start another and the scheduler (whose sweep sends the job
    again on the embedded transport); the record once done, run at least twice, the method
    asked at least ``calls`` times in all."""
    await until(kill.killed)
    await asyncio.to_thread(processes.kill, "worker")
    assert (await processes.run(job, key)).state == "running"  # unrecorded: its lease runs out
    await processes.start("worker")
    await processes.start("scheduler")
    rerun = await record(processes, job, key, "done")
    # (an attempt that timed out under load is retried: at least two, each later one finding it done)
    assert rerun.attempts >= 2 and len(kill.replies) >= calls, (rerun, kill.replies)
    return rerun


async def activities_of(trading: Trading, user: str, kind: str) -> list[str]:
    async with rest_as(trading.mesh, user) as client:
        activities = (await client.get("/api/mbt/activities")).json()["data"]
    return sorted(a["net_amount"] for a in activities if a["activity_type"] == kind)


async def snapshots_of_the_day(trading: Trading) -> Counter:
    rows = await asyncio.to_thread(snapshots, trading.mesh.settings)
    return Counter(row.account_id for row in rows if row.as_of_date == EX_DATE_CLOSE.date())


async def one_snapshot_per_account(trading: Trading) -> None:
    assert list((await snapshots_of_the_day(trading)).values()) == [1, 1]


async def one_dividend_each(trading: Trading) -> None:
    assert await activities_of(trading, "dora", "dividend") == ["26.50"]
    assert await activities_of(trading, "mia", "dividend") == ["530.00"]


async def one_interest_charge(trading: Trading) -> None:
    assert await activities_of(trading, "dora", "margin_interest") == []
    charges = await activities_of(trading, "mia", "margin_interest")
    assert len(charges) == 1 and D(charges[0]) < 0, charges


# job: (accounts' method, what a run that found the work done answers, the effect, once)
JOBS = {
    "mbt.eod_mark_all": ("MarkEndOfDay", "created", one_snapshot_per_account),
    "mbt.credit_dividends": ("CreditDividends", "posted", one_dividend_each),
    "mbt.accrue_margin_interest": ("AccrueMarginInterest", "charged", one_interest_charge),
}


@pytest.mark.parametrize("job", list(JOBS))
@pytest.mark.parametrize("variant", VARIANTS)
async def test_a_money_job_whose_worker_is_killed_after_the_work_reruns_and_has_one_effect(
    job, variant, tmp_path, monkeypatch
):
    method, count, effect_once = JOBS[job]
    kill = KillAfter(AccountsServicer, method)
    kill.install(monkeypatch)
    async with jobs_mesh(variant, tmp_path, environ=ex_date_environ, MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS="2") as jobs:
        trading, processes, queue = jobs
        async with rest_as(trading.mesh, "dora") as dora:
            await filled_cash(dora, D("100000.00"), "AAPL", "buy", 10)
        async with rest_as(trading.mesh, "mia") as mia:
            await open_margin(trading, mia, "mia")
            assert await filled_cash(mia, D("100000.00"), "AAPL", "buy", 200) < 0
        await trading.step_to(EX_DATE_CLOSE.replace(minute=30))
        kill.pid = (await processes.start("worker")).pid
        await asyncio.to_thread(queue.offer, job, DAY)
        rerun = await rerun_after_kill(processes, kill, job, DAY)
        assert int(getattr(kill.replies[0], count)) > 0  # the first run did the work
        assert int(rerun.result[count]) == 0, rerun.result  # the second found it done
        await until(lambda: effect_once(trading))


@pytest.mark.parametrize("variant", VARIANTS)
async def test_a_fill_notification_whose_worker_is_killed_after_delivery_is_in_the_inbox_and_webhook_once(
    variant, tmp_path, monkeypatch
):
    job = "mbt.send_fill_notification"
    kill = KillAfter(NotificationsServicer, "DeliverNotification")
    kill.install(monkeypatch)
    hook = Webhook()
    try:
        async with jobs_mesh(
            variant,
            tmp_path,
            MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS="2",
            MBT_NOTIFY_WEBHOOK_URL=hook.url,
            MBT_NOTIFY_WEBHOOK_SECRET=SECRET_ENTRY,
        ) as jobs:
            trading, processes, _ = jobs
            kill.pid = (await processes.start("worker")).pid
            async with rest_as(trading.mesh, "alice") as alice:
                order = await filled_order(
                    trading, alice, client_order_id="k-1", symbol="AMZN", side="buy", qty="10",
                    order_type="market", time_in_force="day",
                )  # fmt: skip
                [fill] = order.fills
                rerun = await rerun_after_kill(processes, kill, job, fill.fill_id)
                first = kill.replies[0]
                assert first.webhook == "delivered" and rerun.result["webhook"] == "delivered"
                assert rerun.result["notification_id"] == first.notification.notification_id
                listed = (await alice.get("/api/mbt/notifications")).json()["data"]
                assert [n["notification_id"] for n in listed] == [first.notification.notification_id]
                assert [post[0]["X-MBT-Notification-Id"] for post in hook.received] == [
                    first.notification.notification_id
                ]
    finally:
        hook.close()


@pytest.mark.parametrize("variant", VARIANTS)
async def test_a_goal_streak_job_whose_worker_is_killed_after_one_account_nudges_each_account_once(
    variant, tmp_path, monkeypatch
):
    job, week_end = "mbt.evaluate_goal_streak", "2012-06-22"
    kill = KillAfter(GoalStreakServicer, "EvaluateWeeklyGoal")
    kill.install(monkeypatch)
    async with jobs_mesh(variant, tmp_path, MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS="2") as jobs:
        trading, processes, queue = jobs
        async with rest_as(trading.mesh, "alice") as alice, rest_as(trading.mesh, "bob") as bob:
            for client in (alice, bob):
                assert (await client.get("/api/mbt/account")).status_code == 200
            await update_user(trading, "alice", investor_profile=accounts_pb2.INVESTOR_PROFILE_TRIAL)
            await buy(alice, "a-1")  # alice meets her week's goal; bob (Diversifier, nothing held) does not
            await trading.step_to(datetime(2012, 6, 22, 20, 30, tzinfo=UTC))
            kill.pid = (await processes.start("worker")).pid
            await asyncio.to_thread(queue.offer, job, week_end)
            rerun = await rerun_after_kill(processes, kill, job, week_end, calls=1 + 2)  # one account, then both
            assert rerun.result == {"week_end": week_end, "accounts": 2, "met": 1, "longest_streak": 1}
            assert len(await nudges(alice)) == 1 and len(await nudges(bob)) == 1


@pytest.mark.parametrize("variant", VARIANTS)
async def test_an_expiry_job_whose_worker_is_killed_after_settling_settles_each_contract_once(
    variant, tmp_path, monkeypatch
):
    job = "mbt.expire_options"
    kill = KillAfter(AccountsServicer, "ExpireOptions")
    kill.install(monkeypatch)
    async with jobs_mesh(variant, tmp_path, MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS="2") as jobs:
        trading, processes, queue = jobs
        await seed_fill(trading, "alice", ITM_CALL, "buy", "1", "6.00")
        await seed_fill(trading, "alice", OTM_CALL, "buy", "1", "0.50")
        await trading.step_to(AFTER_FRIDAYS_CLOSE)
        kill.pid = (await processes.start("worker")).pid
        await asyncio.to_thread(queue.offer, job, FRIDAY)
        rerun = await rerun_after_kill(processes, kill, job, FRIDAY)
        assert len(kill.replies[0].settlements) == 2  # the first run settled both
        assert rerun.result["settled"] == 0, rerun.result  # the second found them settled
        async with rest_as(trading.mesh, "alice") as alice:
            # 100,000 - 600 - 50 in premiums, - 21,500 for 100 shares at the 215 strike
            assert await cash(alice) == D("77850.00")
            assert await holdings(alice) == {"AMZN": (D(100), D(215))}
            rows = await expirations(alice, 2)
            assert sorted((r["symbol"], r["subtype"]) for r in rows) == [
                (ITM_CALL, "exercised"),
                (OTM_CALL, "expired_worthless"),
            ]


@pytest.mark.parametrize("variant", VARIANTS)
async def test_an_export_job_whose_worker_is_killed_after_completing_it_keeps_the_first_archive(
    variant, tmp_path, monkeypatch
):
    job = "mbt.export_user_data"
    kill = KillAfter(PrivacyServicer, "CompleteDataExport")
    kill.install(monkeypatch)
    async with jobs_mesh(variant, tmp_path, MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS="2") as jobs:
        trading, processes, _ = jobs
        kill.pid = (await processes.start("worker")).pid
        async with rest_as(trading.mesh, "alice") as alice:
            asked = await alice.post("/api/mbt/exports", json={})  # accounts offers the job
            assert asked.status_code == 200, asked.text
            export_id = asked.json()["data"]["export_id"]
            rerun = await rerun_after_kill(processes, kill, job, export_id)
            first = kill.replies[0].export
            assert first.status == privacy_pb2.DATA_EXPORT_STATUS_READY and first.archive_sha256
            # the second run completed it again: the first archive stays
            assert rerun.result["archive_sha256"] == first.archive_sha256
            export = (await alice.get(f"/api/mbt/exports/{export_id}")).json()["data"]
            assert (export["status"], export["archive_sha256"]) == ("ready", first.archive_sha256)
            fetched = (await alice.get(f"/api/mbt/exports/{export_id}/archive")).json()["data"]
            assert hashlib.sha256(base64.b64decode(fetched["archive"])).hexdigest() == first.archive_sha256


@pytest.mark.parametrize("variant", VARIANTS)
async def test_an_erasure_job_whose_worker_is_killed_after_accounts_erased_the_user_leaves_nothing_of_them(
    variant, tmp_path, monkeypatch
):
    job, hour = "mbt.erase_user_data", "2012-06-21T16:00Z"
    kill = KillAfter(UserDataServicer, "EraseUserData", serves=lambda servicer: servicer.tables.service == "accounts")
    kill.install(monkeypatch)
    async with jobs_mesh(
        variant, tmp_path, MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS="2", MBT_ERASURE_COOLING_DAYS=str(COOLING_DAYS)
    ) as jobs:
        trading, processes, queue = jobs
        settings = trading.mesh.settings
        kill.pid = (await processes.start("worker")).pid
        async with rest_as(trading.mesh, "alice") as alice, rest_as(trading.mesh, "bob") as bob:
            await buy(alice, "a-1")
            await buy(bob, "b-1")
            exported = await alice.post("/api/mbt/exports", json={})
            export_id = exported.json()["data"]["export_id"]
            await record(processes, "mbt.export_user_data", export_id, "done")
        privacy = privacy_pb2_grpc.PrivacyServiceStub(trading.channel("accounts"))
        stepped_up = bearer(TOKENS.user("alice", tier="free", ttl_seconds=600, elevated_until=int(time.time()) + 600))
        await privacy.RequestErasure(privacy_pb2.RequestErasureRequest(), metadata=stepped_up)
        bob_before = await user_rows(settings, "bob")
        await trading.step(timedelta(hours=2).total_seconds())  # past the cooling period

        await asyncio.to_thread(queue.offer, job, hour)
        rerun = await rerun_after_kill(processes, kill, job, hour, calls=1)  # accounts' erasure is not asked again
        assert sum(kill.replies[0].deleted_rows.values()) > 0  # the first run erased alice
        # the second found nobody due
        assert rerun.result == {"erased_users": 0, "canceled_orders": 0, "deleted_rows": {}}
        assert total(await user_rows(settings, "alice")) == 0
        assert await user_rows(settings, "bob") == bob_before
        # the jobs' own record of her export names her no more
        assert (await processes.run("mbt.export_user_data", export_id)).arguments == {"user_id": ""}


@pytest.mark.parametrize("variant", VARIANTS)
async def test_a_purge_job_whose_worker_is_killed_after_the_ledger_fold_folds_it_once(variant, tmp_path, monkeypatch):
    job = "mbt.purge_expired"
    kill = KillAfter(AccountsServicer, "PurgeExpiredHistory")
    kill.install(monkeypatch)
    async with jobs_mesh(
        variant, tmp_path, MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS="2", MBT_RETENTION_FREE_DAYS="1"
    ) as jobs:
        trading, processes, queue = jobs
        async with rest_as(trading.mesh, "fred") as fred:
            working = await a_session_of_trading(fred)
            await eventually(lambda: assert_ledger_consistent(trading, "fred"))
            await trading.step_to(PURGE_AT)
            before = await account(fred)
            kill.pid = (await processes.start("worker")).pid
            await asyncio.to_thread(queue.offer, job, PURGE_HOUR)
            rerun = await rerun_after_kill(processes, kill, job, PURGE_HOUR)
            assert kill.replies[0].ledger_entries_folded == 3  # the opening deposit and two fills
            assert rerun.result["ledger_entries"] == 0, rerun.result  # the rerun folds nothing more
            assert await history(fred) == {working: "accepted"}
            assert await account(fred) == before
            assert await activity_lines(fred) == [("carried_forward", before[0])]  # one balance carried forward
            await assert_ledger_consistent(trading, "fred")
