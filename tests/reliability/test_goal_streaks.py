"""Weekly goal streaks on a stepped replay, with the real scheduler and worker, on the
embedded transport with SQLite and on Redis with PostgreSQL: at each week's last session
close every account gets one ``system_nudge`` saying whether its profile's goal was met and
how long its streak is; the job run twice for a week (offered again, its message sent again,
the RPC called again) leaves one nudge per account and week."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

from mbt.accounts.v1 import accounts_pb2
from mbt.activities.v1 import activities_pb2, activities_pb2_grpc
from services.common.wire.conv import to_date
from services.jobs.runs import task_id
from tests.e2e.test_accounts import update_user
from tests.reliability.test_jobs import _logged, record
from tests.reliability.test_notifications import notifying  # noqa: F401  (the fixture)
from tests.support.identity import as_service
from tests.support.trading import eventually, rest_as

EVALUATE = "mbt.evaluate_goal_streak"
FIRST_WEEK, SECOND_WEEK = "2012-06-22", "2012-06-29"


async def buy(client, client_order_id: str) -> None:
    placed = await client.post(
        "/api/mbt/orders",
        json={
            "client_order_id": client_order_id,
            "symbol": "AMZN",
            "side": "buy",
            "qty": "1",
            "order_type": "market",
            "time_in_force": "day",
        },
    )
    assert placed.status_code == 200, placed.text
    order_id = placed.json()["data"]["order_id"]

    async def filled():
        assert (await client.get(f"/api/mbt/orders/{order_id}")).json()["data"]["status"] == "filled"

    await eventually(filled)


async def nudges(client) -> list[str]:
    """The user's system_nudge texts, oldest first."""
    rows = (await client.get("/api/mbt/activities", params={"type": "system_nudge"})).json()["data"]
    return [row["description"] for row in reversed(rows)]


async def test_each_week_close_nudges_every_account_once_with_its_streak(notifying):  # noqa: F811
    trading, processes, queue, _ = notifying
    await processes.start("worker")
    await processes.start("scheduler")
    async with rest_as(trading.mesh, "alice") as alice, rest_as(trading.mesh, "carol") as carol:
        async with rest_as(trading.mesh, "bob") as bob:
            for client in (alice, bob, carol):
                assert (await client.get("/api/mbt/account")).status_code == 200
        for user in ("alice", "carol"):
            await update_user(trading, user, investor_profile=accounts_pb2.INVESTOR_PROFILE_TRIAL)
        # bob keeps the default profile, Diversifier, and holds nothing.

        # Week one (Thursday 2012-06-21 on): alice and carol trade; the week ends Friday.
        await buy(alice, "a-1")
        await buy(carol, "c-1")
        await trading.step_to(datetime(2012, 6, 22, 20, 30, tzinfo=UTC))
        first = await record(processes, EVALUATE, FIRST_WEEK, "done")
        assert first.result == {"week_end": FIRST_WEEK, "accounts": 3, "met": 2, "longest_streak": 1}

        # Week two: only alice trades.
        await trading.step_to(datetime(2012, 6, 25, 14, 0, tzinfo=UTC))
        await buy(alice, "a-2")
        await trading.step_to(datetime(2012, 6, 29, 20, 30, tzinfo=UTC))
        second = await record(processes, EVALUATE, SECOND_WEEK, "done")
        assert second.result == {"week_end": SECOND_WEEK, "accounts": 3, "met": 1, "longest_streak": 2}
        assert sorted(run.key for run in await processes.runs(EVALUATE)) == [FIRST_WEEK, SECOND_WEEK]  # no other day

        assert await nudges(alice) == [
            "Weekly goal met: 1 trade (goal: at least 1). Your streak starts: 1 week in a row.",
            "Weekly goal met: 1 trade (goal: at least 1). Your streak continues: 2 weeks in a row.",
        ]
        assert await nudges(carol) == [
            "Weekly goal met: 1 trade (goal: at least 1). Your streak starts: 1 week in a row.",
            "Weekly goal not met: 0 trades (goal: at least 1). Your 1-week streak ends; "
            "next week's goal starts a new one.",
        ]
        async with rest_as(trading.mesh, "bob") as bob:
            assert (
                await nudges(bob)
                == [
                    "Weekly goal not met: positions in 0 underlyings (goal: at least 5). Next week's goal starts a streak."
                ]
                * 2
            )

        # The week's job again: offered (nothing sent), its message delivered again (skipped),
        # the RPC itself called again (answered as judged): one nudge per account and week.
        assert (await asyncio.to_thread(queue.offer, EVALUATE, SECOND_WEEK)).state == "done"
        await asyncio.to_thread(
            queue.app.send_task, EVALUATE, args=[SECOND_WEEK], task_id=task_id(EVALUATE, SECOND_WEEK)
        )
        await eventually(lambda: _logged(processes, "job skipped", SECOND_WEEK), timeout=90)
        stub = activities_pb2_grpc.GoalStreakServiceStub(trading.channel("activities"))
        [account_id] = {row["account_id"] for row in (await alice.get("/api/mbt/activities")).json()["data"]}
        again = await stub.EvaluateWeeklyGoal(
            activities_pb2.EvaluateWeeklyGoalRequest(
                week_end=to_date(date(2012, 6, 29)), account_id=account_id, user_id="alice", investor_profile="trial"
            ),
            metadata=as_service("jobs"),
        )
        assert (again.met, again.streak) == (True, 2)
        assert len(await nudges(alice)) == 2 and (await processes.run(EVALUATE, SECOND_WEEK)).attempts == 1
