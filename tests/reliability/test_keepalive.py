"""Every server permits the keepalive pings every client sends: a mesh left idle for many
ping intervals, with its long-lived streams open (followers' WatchClock, the matcher's
StreamQuotes), gets no GOAWAY ``too_many_pings``, drops no stream, and answers the next
call. The interval is configurable, so a 1 s ping makes minutes of production idling
last seconds here."""

import asyncio
import logging

from tests.support.identity import rest_headers
from tests.support.trading import eventually, rest_as, start_trading_mesh

PING_SECONDS = 1
IDLE_PINGS = 8
RESTING_BUY = {
    "symbol": "AMZN",
    "side": "buy",
    "qty": "1",
    "order_type": "limit",
    "limit_price": "1.00",
    "time_in_force": "gtc",
}


async def test_an_idle_mesh_keeps_its_connections_and_streams(databases, tmp_path, capfd, caplog):
    caplog.set_level(logging.INFO, logger="services")
    mesh = await start_trading_mesh(databases, tmp_path, MBT_GRPC_KEEPALIVE_SECONDS=str(PING_SECONDS))
    client = rest_as(mesh, "idle-ivy")
    try:

        async def rests() -> None:  # retried with its key until the services follow the market clock
            first = await client.post("/api/mbt/orders", json={**RESTING_BUY, "client_order_id": "before"})
            assert first.status_code == 200, first.text

        await eventually(rests)  # the matcher now streams AMZN quotes
        capfd.readouterr()
        caplog.clear()

        await asyncio.sleep(PING_SECONDS * IDLE_PINGS)

        after = await client.post("/api/mbt/orders", json={**RESTING_BUY, "client_order_id": "after"})
        assert after.status_code == 200, after.text
        account = await mesh.http.get("/api/mbt/account", headers=rest_headers("idle-ivy"))
        assert account.status_code == 200, account.text
        grpc_core_log = capfd.readouterr().err  # before stopping: a server that stops says GOAWAY too
    finally:
        await client.aclose()
        await mesh.stop()
    assert "GOAWAY" not in grpc_core_log and "too_many_pings" not in grpc_core_log, grpc_core_log[-3000:]
    assert [r.getMessage() for r in caplog.records if "interrupted" in r.getMessage()] == []
