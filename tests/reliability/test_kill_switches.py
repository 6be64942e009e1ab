"""Kill switches: MBT_TRADING_DISABLED makes trading read-only; MBT_NEW_ORDERS_DISABLED
blocks new exposure but lets users cancel."""

import pytest

from services.common.config import Settings
from services.common.rpc.server import start
from tests.support.mesh import build_service
from tests.support.trading import eventually, rest_as, start_trading_mesh

BODY = {
    "symbol": "AMZN",
    "side": "buy",
    "qty": "1",
    "order_type": "limit",
    "limit_price": "100.00",
    "time_in_force": "gtc",
}


async def restart_orders_with(mesh, **switches: str) -> None:
    """Restart the orders service with different switches (same database, same port)."""
    environ = {"MBT_DATA_DIR": str(mesh.settings.data_dir), "MBT_REPLAY_MODE": "stepped", **switches}
    for name, service in mesh.settings.services.items():
        environ[f"MBT_{name.upper()}_PORT"] = str(service.port)
        environ[f"MBT_{name.upper()}_DATABASE_URL"] = service.database_url
    settings = Settings.from_env(environ)
    await mesh.services["orders"].stop(0)
    mesh.services["orders"] = await start(build_service("orders", settings), port=settings.service("orders").port)

    async def reachable():  # the gateway's channel reconnects with backoff
        async with rest_as(mesh, "probe") as probe:
            assert (await probe.get("/api/mbt/orders")).status_code == 200

    await eventually(reachable)


@pytest.fixture
async def mesh(databases, tmp_path):
    mesh = await start_trading_mesh(databases, tmp_path)
    yield mesh
    await mesh.stop()


async def test_trading_disabled_refuses_every_change_and_still_reads(mesh):
    async with rest_as(mesh, "mia") as mia:
        order = (await mia.post("/api/mbt/orders", json=BODY)).json()["data"]
        await restart_orders_with(mesh, MBT_TRADING_DISABLED="1")
        for response in (
            await mia.post("/api/mbt/orders", json={**BODY, "client_order_id": "x"}),
            await mia.delete(f"/api/mbt/orders/{order['order_id']}"),
            await mia.patch(f"/api/mbt/orders/{order['order_id']}", json={"qty": "2"}),
        ):
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "trading_disabled"
        assert (await mia.get(f"/api/mbt/orders/{order['order_id']}")).json()["data"]["status"] == "accepted"
        assert (await mia.get("/api/mbt/account")).status_code == 200


async def test_new_orders_disabled_blocks_submits_and_replaces_but_not_cancels(mesh):
    async with rest_as(mesh, "noah") as noah:
        order = (await noah.post("/api/mbt/orders", json=BODY)).json()["data"]
        await restart_orders_with(mesh, MBT_NEW_ORDERS_DISABLED="1")
        refused = await noah.post("/api/mbt/orders", json={**BODY, "client_order_id": "y"})
        assert (refused.status_code, refused.json()["error"]["code"]) == (503, "new_orders_disabled")
        bigger = await noah.patch(f"/api/mbt/orders/{order['order_id']}", json={"qty": "50"})  # more exposure
        assert (bigger.status_code, bigger.json()["error"]["code"]) == (503, "new_orders_disabled")
        unchanged = (await noah.get(f"/api/mbt/orders/{order['order_id']}")).json()["data"]
        assert (unchanged["version"], unchanged["qty"], unchanged["status"]) == (1, "1", "accepted")
        assert (await noah.get("/api/mbt/account")).json()["data"]["reserved"] == "100.00"
        canceled = await noah.delete(f"/api/mbt/orders/{order['order_id']}")
        assert canceled.json()["data"]["status"] == "canceled"
        listed = (await noah.get("/api/mbt/orders")).json()["data"]
        assert [o["order_id"] for o in listed] == [order["order_id"]]
