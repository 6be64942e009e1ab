"""The retention purge of orders (``OrdersService.PurgeExpiredOrders``) on the real mesh,
SQLite and PostgreSQL: a user's filled and canceled orders that ended before the cutoff go
with their fills, in batches, one audit row per batch; a working GTC order stays whatever its
age; a user whose cutoff is earlier keeps the same orders; a repeat deletes nothing; bad
input changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from mbt.orders.v1 import orders_pb2
from services.common.wire.conv import to_timestamp
from tests.support.identity import as_service
from tests.support.trading import eventually, order_in, rest_as

LIMIT = {"symbol": "AMZN", "side": "buy", "qty": "1", "order_type": "limit", "limit_price": "100.00"}
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
                        orders_pb2.UserRetention(user_id="fred", cutoff=to_timestamp(now)),
                        orders_pb2.UserRetention(user_id="paula", cutoff=to_timestamp(now - timedelta(days=90))),
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
    "no user id": ([orders_pb2.UserRetention(cutoff=to_timestamp(datetime(2013, 1, 1, tzinfo=UTC)))], 0),
    "no cutoff": ([orders_pb2.UserRetention(user_id="fred")], 0),
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
