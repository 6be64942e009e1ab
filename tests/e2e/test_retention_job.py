"""The ``mbt.purge_expired`` job end to end (a real worker; SQLite with the embedded
transport, PostgreSQL with Redis), with the Free window set to one day
(``MBT_RETENTION_FREE_DAYS=1``) so that a replay stepped past a day makes a session's
history expire: a Free user's orders that ended, their fills, ledger entries and activities
go, while the working GTC order and the open position stay, cash, positions, holds and
unrealized P&L are unchanged and the ledger invariants (``assert_ledger_consistent``, from
the carried-forward balance) still hold; a Pro user's
history of the same age stays whole and its ledger reconciles; the key done is not run
again and the purge repeated for the same cutoffs deletes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest

from mbt.accounts.v1 import accounts_pb2
from mbt.activities.v1 import activities_pb2
from mbt.orders.v1 import orders_pb2
from services.common.retention import UserCutoff
from services.common.wire.retention import user_cutoff_to_proto
from tests.e2e.test_retention import activity_lines, history, pnl, positions, trade
from tests.support.identity import as_service
from tests.support.jobs import VARIANTS, jobs_mesh
from tests.support.ledger_check import assert_ledger_consistent
from tests.support.trading import eventually, rest_as

D = Decimal
JOB = "mbt.purge_expired"
HOUR = "2012-06-22T16:00Z"
AT = datetime(2012, 6, 22, 16, 0, tzinfo=UTC)
LIMIT = {"symbol": "AMZN", "side": "buy", "qty": "1", "order_type": "limit", "limit_price": "100.00"}


@pytest.fixture(params=VARIANTS)
async def purging(request, tmp_path):
    async with jobs_mesh(request.param, tmp_path, MBT_RETENTION_FREE_DAYS="1") as mesh:
        yield mesh


async def a_session_of_trading(client) -> str:
    """Two fills (an open AMZN position of 2), a canceled day order, a working GTC order; the
    working order's id."""
    await trade(client, "AMZN", "buy", "3")
    await trade(client, "AMZN", "sell", "1")
    canceled = (await client.post("/api/mbt/orders", json={**LIMIT, "time_in_force": "day"})).json()["data"]
    await client.delete(f"/api/mbt/orders/{canceled['order_id']}")
    return (await client.post("/api/mbt/orders", json={**LIMIT, "time_in_force": "gtc"})).json()["data"]["order_id"]


async def make_pro(trading, user_id: str) -> None:
    """Accounts answers once its market clock is synchronised (UNAVAILABLE until then)."""
    try:
        await trading.accounts().UpdateUser(
            accounts_pb2.UpdateUserRequest(user_id=user_id, tier=accounts_pb2.TIER_PRO), metadata=as_service("tests")
        )
    except grpc.aio.AioRpcError as exc:
        assert exc.code() != grpc.StatusCode.UNAVAILABLE, exc.details()
        raise


async def account(client) -> tuple[str, str]:
    body = (await client.get("/api/mbt/account")).json()["data"]
    return body["cash"], body["reserved"]


async def test_a_free_users_expired_history_goes_and_a_pro_users_stays(purging):
    trading, processes, queue = purging
    await eventually(lambda: make_pro(trading, "paula"))
    async with rest_as(trading.mesh, "fred") as fred, rest_as(trading.mesh, "paula") as paula:
        working = await a_session_of_trading(fred)
        await a_session_of_trading(paula)
        for user in ("fred", "paula"):
            await eventually(lambda user=user: assert_ledger_consistent(trading, user))
        await trading.step_to(AT)
        fred_before = (
            await account(fred),
            await positions(trading, "fred"),
            (await pnl(trading, "fred")).unrealized_pl,
        )
        paula_before = (await history(paula), await activity_lines(paula), await positions(trading, "paula", True))

        await processes.start("worker")
        await asyncio.to_thread(queue.offer, JOB, HOUR)

        async def done():
            run = await processes.run(JOB, HOUR)
            assert run is not None and run.state == "done", run
            return run

        run = await eventually(done, timeout=120)
        # fred: three orders, two fills; the opening deposit and two fills in the ledger and
        # among the activities. paula's window (3 years) keeps everything.
        assert run.result == {
            "hour": HOUR,
            "users": 2,
            "orders": 3,
            "fills": 2,
            "ledger_entries": 3,
            "closed_positions": 0,
            "snapshots": 0,
            "activities": 3,
        }, run.result
        assert await history(fred) == {working: "accepted"}
        cash, reserved = await account(fred)
        fred_after = ((cash, reserved), await positions(trading, "fred"), (await pnl(trading, "fred")).unrealized_pl)
        assert fred_after == fred_before
        assert reserved == "100.00"  # the working order's hold
        assert await activity_lines(fred) == [("carried_forward", cash)]
        await assert_ledger_consistent(trading, "fred")
        assert (await history(paula), await activity_lines(paula), await positions(trading, "paula", True)) == (
            paula_before
        )
        await assert_ledger_consistent(trading, "paula")

        # The key is done: offered again, it does not run; the purge repeated deletes nothing.
        assert (await asyncio.to_thread(queue.offer, JOB, HOUR)).state == "done"
        users = [user_cutoff_to_proto(UserCutoff("fred", AT - timedelta(days=1)))]
        again = (
            await trading.orders().PurgeExpiredOrders(
                orders_pb2.PurgeExpiredOrdersRequest(users=users), metadata=as_service("jobs")
            ),
            await trading.accounts().PurgeExpiredHistory(
                accounts_pb2.PurgeExpiredHistoryRequest(users=users), metadata=as_service("jobs")
            ),
            await trading.activities().PurgeExpiredActivities(
                activities_pb2.PurgeExpiredActivitiesRequest(users=users), metadata=as_service("jobs")
            ),
        )
        assert [reply.batches for reply in again] == [0, 0, 0]
        assert (await processes.run(JOB, HOUR)).attempts == 1
