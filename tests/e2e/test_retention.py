"""The retention purge of orders (``OrdersService.PurgeExpiredOrders``) on the real mesh,
SQLite and PostgreSQL: a user's filled and canceled orders that ended before the cutoff go
with their fills, in batches, one audit row per batch; a working GTC order stays whatever its
age; a user whose cutoff is earlier keeps the same orders; a repeat deletes nothing; bad
input changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest

from mbt.accounts.v1 import accounts_pb2
from mbt.activities.v1 import activities_pb2
from mbt.common.v1 import retention_pb2
from mbt.orders.v1 import orders_pb2
from services.common.wire.conv import to_timestamp
from tests.support.identity import as_service, as_user
from tests.support.ledger_check import assert_ledger_consistent
from tests.support.trading import eventually, order_in, rest_as

LIMIT = {"symbol": "AMZN", "side": "buy", "qty": "1", "order_type": "limit", "limit_price": "100.00"}
D = Decimal
MARKET = {"symbol": "AMZN", "side": "buy", "qty": "1", "order_type": "market", "time_in_force": "day"}


async def history(client) -> dict[str, str]:
    return {o["order_id"]: o["status"] for o in (await client.get("/api/mbt/orders")).json()["data"]}


async def ended_orders(client) -> list[str]:
    """A filled market buy, a canceled limit buy and a working GTC limit buy; their ids."""
    bought = (await client.post("/api/mbt/orders", json=MARKET)).json()["data"]
    await order_in(client, bought["order_id"], "filled")
    canceled = (await client.post("/api/mbt/orders", json={**LIMIT, "time_in_force": "day"})).json()["data"]
    assert (await client.delete(f"/api/mbt/orders/{canceled['order_id']}")).json()["data"]["status"] == "canceled"
    working = (await client.post("/api/mbt/orders", json={**LIMIT, "time_in_force": "gtc"})).json()["data"]
    return [bought["order_id"], canceled["order_id"], working["order_id"]]


async def test_final_orders_past_the_cutoff_go_with_their_fills_and_working_ones_stay(mesh, trading):
    async with rest_as(mesh, "fred") as fred, rest_as(mesh, "paula") as paula:
        bought, canceled, working = await ended_orders(fred)
        kept = await ended_orders(paula)
        await trading.step(60)
        now = await trading.now()

        def purge(batch_size: int = 1):
            return trading.orders().PurgeExpiredOrders(
                orders_pb2.PurgeExpiredOrdersRequest(
                    users=[
                        retention_pb2.UserRetention(user_id="fred", cutoff=to_timestamp(now)),
                        retention_pb2.UserRetention(user_id="paula", cutoff=to_timestamp(now - timedelta(days=90))),
                    ],
                    batch_size=batch_size,
                ),
                metadata=as_service("jobs"),
            )

        reply = await purge()
        assert (reply.orders_purged, reply.fills_purged, reply.batches) == (2, 1, 2)
        assert await history(fred) == {working: "accepted"}
        assert (await fred.get(f"/api/mbt/orders/{bought}")).status_code == 404
        assert await history(paula) == {kept[0]: "filled", kept[1]: "canceled", kept[2]: "accepted"}

        async def audited():
            rows = [e.record for e in await trading.audit(user_id="fred") if e.record.action == "retention_purge"]
            assert sorted((r.entity_id, int(r.before["orders"]), int(r.before["fills"])) for r in rows) == sorted(
                [(bought, 1, 1), (canceled, 1, 0)]
            )

        await eventually(audited)

        again = await purge(batch_size=0)
        assert (again.orders_purged, again.fills_purged, again.batches) == (0, 0, 0)
        assert await history(fred) == {working: "accepted"}


BAD_REQUESTS = {
    "no user id": ([retention_pb2.UserRetention(cutoff=to_timestamp(datetime(2013, 1, 1, tzinfo=UTC)))], 0),
    "no cutoff": ([retention_pb2.UserRetention(user_id="fred")], 0),
    "negative batch": ([], -1),
    "batch too large": ([], 5001),
}


async def test_bad_purge_requests_are_refused(trading):
    for name, (users, batch_size) in BAD_REQUESTS.items():
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await trading.orders().PurgeExpiredOrders(
                orders_pb2.PurgeExpiredOrdersRequest(users=users, batch_size=batch_size), metadata=as_service("jobs")
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name


async def trade(client, symbol: str, side: str, qty: str) -> dict:
    order = (
        await client.post(
            "/api/mbt/orders",
            json={"symbol": symbol, "side": side, "qty": qty, "order_type": "market", "time_in_force": "day"},
        )
    ).json()["data"]
    return await order_in(client, order["order_id"], "filled")


async def pnl(trading, user: str, start=None):
    request = accounts_pb2.GetPnlRequest(from_time=to_timestamp(start)) if start else accounts_pb2.GetPnlRequest()
    return (await trading.accounts().GetPnl(request, metadata=as_user(user))).pnl


async def positions(trading, user: str, include_closed: bool = False) -> dict[str, tuple[str, str, str]]:
    reply = await trading.accounts().ListPositions(
        accounts_pb2.ListPositionsRequest(include_closed=include_closed), metadata=as_user(user)
    )
    return {
        f"{p.symbol}{'' if p.qty != '0' else ':closed'}": (p.qty, p.avg_entry_price, p.realized_pl)
        for p in reply.positions
    }


async def test_account_history_past_the_cutoff_folds_into_a_carried_forward_balance(mesh, trading):
    async with rest_as(mesh, "fred") as fred, rest_as(mesh, "paula") as paula:
        for client in (fred, paula):
            await trade(client, "AMZN", "buy", "3")
            await trade(client, "AMZN", "sell", "1")
            await trade(client, "GOOG", "buy", "1")
            await trade(client, "GOOG", "sell", "1")
        await eventually(lambda: assert_ledger_consistent(trading, "fred"))
        await trading.step(60)
        now = await trading.now()
        cash = (await fred.get("/api/mbt/account")).json()["data"]["cash"]
        held = await positions(trading, "fred")
        assert set(await positions(trading, "fred", include_closed=True)) == {"AMZN", "GOOG:closed"}
        before = await pnl(trading, "fred")
        paula_before = (await positions(trading, "paula", True), (await pnl(trading, "paula")).realized_pl)

        def purge():
            return trading.accounts().PurgeExpiredHistory(
                accounts_pb2.PurgeExpiredHistoryRequest(
                    users=[
                        retention_pb2.UserRetention(user_id="fred", cutoff=to_timestamp(now)),
                        retention_pb2.UserRetention(user_id="paula", cutoff=to_timestamp(now - timedelta(days=90))),
                        retention_pb2.UserRetention(user_id="nobody", cutoff=to_timestamp(now)),
                    ],
                    batch_size=2,
                ),
                metadata=as_service("jobs"),
            )

        reply = await purge()
        # The opening deposit and four fills, two a batch; the closed GOOG position.
        assert (reply.ledger_entries_folded, reply.closed_positions_purged, reply.snapshots_purged) == (5, 1, 0)
        assert reply.batches == 3
        assert (await fred.get("/api/mbt/account")).json()["data"]["cash"] == cash
        assert await positions(trading, "fred") == held
        assert await positions(trading, "fred", include_closed=True) == held
        after = await pnl(trading, "fred")
        assert after.unrealized_pl == before.unrealized_pl
        # The ledger reconciles from the carried-forward balance once orders has purged the
        # fills folded (as the job does, with the same cutoff).
        await trading.orders().PurgeExpiredOrders(
            orders_pb2.PurgeExpiredOrdersRequest(
                users=[retention_pb2.UserRetention(user_id="fred", cutoff=to_timestamp(now))]
            ),
            metadata=as_service("jobs"),
        )
        await assert_ledger_consistent(trading, "fred")
        assert (await positions(trading, "paula", True), (await pnl(trading, "paula")).realized_pl) == paula_before

        again = await purge()
        assert (again.ledger_entries_folded, again.closed_positions_purged, again.batches) == (0, 0, 0)

        # After the purge, the P&L of a window after the cutoff still starts from the carried
        # position: selling one AMZN realizes against the average entry the purge kept.
        sold = await trade(fred, "AMZN", "sell", "1")
        realized = D(sold["filled_avg_price"]) - D(held["AMZN"][1])
        await eventually(lambda: assert_ledger_consistent(trading, "fred"))
        window = await pnl(trading, "fred", now)
        assert D(window.realized_pl) == realized
        assert (await positions(trading, "fred"))["AMZN"][:2] == ("1", held["AMZN"][1])

        async def audited():
            rows = [e.record for e in await trading.audit(user_id="fred") if e.record.entity_type == "account"]
            purges = [r for r in rows if r.action == "retention_purge"]
            assert sorted(int(r.before["ledger_entries"]) for r in purges) == [1, 2, 2]

        await eventually(audited)


async def activity_lines(client) -> list[tuple[str, str]]:
    listed = (await client.get("/api/mbt/activities")).json()["data"]
    return [(a["activity_type"], a["net_amount"]) for a in listed]


async def test_activities_past_the_cutoff_fold_into_a_carried_forward_activity(mesh, trading):
    async with rest_as(mesh, "fred") as fred, rest_as(mesh, "paula") as paula:
        for client in (fred, paula):
            await trade(client, "AMZN", "buy", "3")
            await trade(client, "AMZN", "sell", "1")
        await eventually(lambda: assert_ledger_consistent(trading, "fred"))
        await eventually(lambda: assert_ledger_consistent(trading, "paula"))
        await trading.step(60)
        now = await trading.now()
        cash = (await fred.get("/api/mbt/account")).json()["data"]["cash"]
        paula_lines = await activity_lines(paula)

        def purge():
            return trading.activities().PurgeExpiredActivities(
                activities_pb2.PurgeExpiredActivitiesRequest(
                    users=[
                        retention_pb2.UserRetention(user_id="fred", cutoff=to_timestamp(now)),
                        retention_pb2.UserRetention(user_id="paula", cutoff=to_timestamp(now - timedelta(days=90))),
                    ],
                    batch_size=2,
                ),
                metadata=as_service("jobs"),
            )

        reply = await purge()
        assert (reply.activities_purged, reply.batches) == (3, 2)  # the opening and two fills
        assert await activity_lines(fred) == [("carried_forward", cash)]
        assert await activity_lines(paula) == paula_lines
        again = await purge()
        assert (again.activities_purged, again.batches) == (0, 0)

        await trade(fred, "AMZN", "sell", "1")
        await eventually(lambda: assert_ledger_consistent(trading, "fred"))
        lines = await activity_lines(fred)
        assert [kind for kind, _ in lines] == ["fill", "carried_forward"]

        async def audited():
            rows = [e.record for e in await trading.audit(user_id="fred") if e.record.entity_type == "activity"]
            assert sorted(int(r.before["activities"]) for r in rows if r.action == "retention_purge") == [1, 2]

        await eventually(audited)
