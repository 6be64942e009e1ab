"""Duplicate and concurrent submits: one order per client_order_id, and never more
buying power spent than there is."""

import asyncio
from decimal import Decimal

import pytest

from tests.support.trading import Trading, eventually, rest_as, start_trading_mesh

D = Decimal


@pytest.fixture
async def mesh(databases, tmp_path):
    mesh = await start_trading_mesh(databases, tmp_path)
    yield mesh
    await mesh.stop()


async def test_twenty_concurrent_submits_with_one_client_order_id_make_one_order(mesh):
    async with rest_as(mesh, "henry") as henry:
        body = {
            "client_order_id": "same-key",
            "symbol": "AMZN",
            "side": "buy",
            "qty": "1",
            "order_type": "limit",
            "limit_price": "100.00",
            "time_in_force": "gtc",
        }
        responses = await asyncio.gather(*(henry.post("/api/mbt/orders", json=body) for _ in range(20)))
        assert {r.status_code for r in responses} == {200}
        ids = {r.json()["data"]["order_id"] for r in responses}
        assert len(ids) == 1
        assert sum(1 for r in responses if not r.json()["meta"]["idempotent_replay"]) == 1
        listed = (await henry.get("/api/mbt/orders")).json()["data"]
        assert [o["order_id"] for o in listed] == list(ids)
        account = (await henry.get("/api/mbt/account")).json()["data"]
        assert D(account["reserved"]) == D("100.00")  # one hold, not twenty


async def test_fifty_concurrent_buys_never_take_buying_power_below_zero(mesh):
    async with rest_as(mesh, "iris") as iris:
        # Each holds $4,000 (40 x $100 limit, resting below the market); 25 would fit in $100,000.
        body = {
            "symbol": "AMZN",
            "side": "buy",
            "qty": "40",
            "order_type": "limit",
            "limit_price": "100.00",
            "time_in_force": "gtc",
        }
        responses = await asyncio.gather(
            *(iris.post("/api/mbt/orders", json={**body, "client_order_id": f"o{i}"}) for i in range(50))
        )
        accepted = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code != 200]
        assert len(accepted) == 25
        assert {r.json()["error"]["code"] for r in refused} == {"insufficient_buying_power"}
        account = (await iris.get("/api/mbt/account")).json()["data"]
        assert D(account["reserved"]) == D("100000.00")
        assert D(account["buying_power"]) == 0
        rejected = (await iris.get("/api/mbt/orders", params={"status": "rejected", "page_size": 100})).json()
        assert len(rejected["data"]) == 25
        assert {o["reject_reason"] for o in rejected["data"]} == {"insufficient_buying_power"}


async def test_a_cash_account_cannot_sell_what_it_does_not_hold(mesh):
    async with rest_as(mesh, "jack") as jack:
        response = await jack.post(
            "/api/mbt/orders",
            json={"symbol": "AMZN", "side": "sell", "qty": "1", "order_type": "market", "time_in_force": "day"},
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "insufficient_buying_power"
        assert "cannot sell short" in response.json()["error"]["message"]


async def test_another_users_ids_are_not_found(mesh):
    trading = Trading(mesh)
    try:
        async with rest_as(mesh, "kim") as kim, rest_as(mesh, "lee") as lee:
            order = (
                await kim.post(
                    "/api/mbt/orders",
                    json={"symbol": "AMZN", "side": "buy", "qty": "1", "order_type": "market", "time_in_force": "day"},
                )
            ).json()
            order_id = order["data"]["order_id"]

            async def filled():
                body = (await kim.get(f"/api/mbt/orders/{order_id}")).json()["data"]
                assert body["status"] == "filled"
                return body

            fill_id = (await eventually(filled))["fills"][0]["fill_id"]

            async def activity():
                rows = (await kim.get("/api/mbt/activities", params={"type": "fill"})).json()["data"]
                assert rows
                return rows[0]["activity_id"]

            activity_id = await eventually(activity)
            for method, path in (
                ("GET", f"/api/mbt/orders/{order_id}"),
                ("DELETE", f"/api/mbt/orders/{order_id}"),
                ("PATCH", f"/api/mbt/orders/{order_id}"),
                ("GET", f"/api/mbt/activities/{activity_id}"),
                ("GET", f"/api/mbt/fills/{fill_id}/explain"),
                ("GET", "/api/mbt/positions/AMZN"),
            ):
                kwargs = {"json": {"qty": "2"}} if method == "PATCH" else {}
                response = await lee.request(method, path, **kwargs)
                assert response.status_code == 404, (method, path, response.text)
                assert response.json()["error"]["code"] == "not_found"
            assert (await lee.get("/api/mbt/orders")).json()["data"] == []
    finally:
        await trading.close()
