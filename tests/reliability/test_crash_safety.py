"""Kill services with SIGKILL in the middle of a burst of fills, let the supervisor restart
them, and check that no fill is lost or applied twice: every order has exactly one fill,
and cash, positions, activities and audit rows all recompute from the fills."""

import asyncio
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from mbt.activities.v1 import activities_pb2, activities_pb2_grpc
from services.common.config import SERVICES
from tests.support.identity import BULK_TIER, as_service, rest_headers
from tests.support.mesh import free_port
from tests.support.trading import START, eventually

ROOT = Path(__file__).resolve().parents[2]
D = Decimal
USERS = [f"crash-{n}" for n in range(4)]
ORDERS_PER_USER = 12


@pytest.fixture
def processes(databases, tmp_path):
    env = {
        **os.environ,
        "MBT_DATA_DIR": str(tmp_path / "var"),
        "MBT_GATEWAY_PORT": str(free_port()),
        "MBT_REPLAY_MODE": "stepped",
        "MBT_REPLAY_START": START.isoformat(),
        "MBT_LOG_LEVEL": "WARNING",
    }
    for name in SERVICES:
        env[f"MBT_{name.upper()}_PORT"] = str(free_port())
        if name != "matcher":
            env[f"MBT_{name.upper()}_DATABASE_URL"] = databases.new(name)
    with open(tmp_path / "run.out", "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    yield process, env, tmp_path
    process.send_signal(signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def kill(tmp_path: Path, service: str) -> None:
    os.kill(int((tmp_path / "var" / "run" / f"{service}.pid").read_text()), signal.SIGKILL)


async def submit_until_acknowledged(client: httpx.AsyncClient, user: str, index: int) -> dict:
    """A client that retries with its idempotency key until the order is acknowledged."""
    body = {
        "client_order_id": f"{user}-{index}",
        "symbol": "AMZN" if index % 2 else "GOOG",
        "side": "buy",
        "qty": str(1 + index % 3),
        "order_type": "market",
        "time_in_force": "gtc",
    }
    while True:
        try:
            response = await client.post("/api/mbt/orders", json=body, headers=rest_headers(user, BULK_TIER))
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            return response.json()["data"]
        assert response is None or response.status_code >= 500, response.text
        await asyncio.sleep(0.2)


async def test_sigkill_during_a_fill_burst_loses_nothing_and_applies_nothing_twice(processes):
    _process, env, tmp_path = processes
    out = tmp_path / "run.out"
    await eventually(lambda: _assert_up(out), timeout=120)
    url = f"http://127.0.0.1:{env['MBT_GATEWAY_PORT']}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        burst = [
            asyncio.create_task(submit_until_acknowledged(client, user, i))
            for i in range(ORDERS_PER_USER)
            for user in USERS
        ]
        await asyncio.sleep(0.5)
        kill(tmp_path, "accounts")
        await asyncio.sleep(1.0)
        kill(tmp_path, "orders")
        orders = await asyncio.wait_for(asyncio.gather(*burst), timeout=180)
        assert len({o["order_id"] for o in orders}) == len(USERS) * ORDERS_PER_USER

        for user in USERS:
            # One check is ~16 requests: polling once a second stays well inside the rate limit.
            await eventually(lambda user=user: _assert_consistent(client, user), timeout=120, interval=1.0)
    await _assert_one_audit_row_per_fill(env)
    assert "died with exit code -9" in out.read_text()


async def _assert_up(out: Path) -> None:
    assert "all up" in out.read_text()


async def _data(client: httpx.AsyncClient, path: str, headers: dict, **params):
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text  # a restarting service answers 503: look again
    return response.json()["data"]


async def _assert_consistent(client: httpx.AsyncClient, user: str) -> None:
    headers = rest_headers(user, BULK_TIER)
    listed = await _data(client, "/api/mbt/orders", headers, page_size=100)
    assert len(listed) == ORDERS_PER_USER
    assert {o["status"] for o in listed} == {"filled"}
    fills = []
    for order in listed:
        detail = await _data(client, f"/api/mbt/orders/{order['order_id']}", headers)
        assert len(detail["fills"]) == 1
        fills += detail["fills"]
    account = await _data(client, "/api/mbt/account", headers)
    spent = sum((D(f["qty"]) * D(f["price"]) for f in fills), D(0))
    assert D(account["cash"]) == D(account["starting_cash"]) - spent
    assert D(account["reserved"]) == 0
    positions = {p["symbol"]: D(p["qty"]) for p in await _data(client, "/api/mbt/positions", headers)}
    expected: dict[str, Decimal] = {}
    for fill in fills:
        expected[fill["symbol"]] = expected.get(fill["symbol"], D(0)) + D(fill["qty"])
    assert positions == expected
    activities = await _data(client, "/api/mbt/activities", headers, type="fill", page_size=100)
    assert sorted(a["fill_id"] for a in activities) == sorted(f["fill_id"] for f in fills)


async def _assert_one_audit_row_per_fill(env) -> None:
    import grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{env['MBT_ACTIVITIES_PORT']}") as channel:
        stub = activities_pb2_grpc.ActivitiesServiceStub(channel)

        async def check():
            for user in USERS:
                entries = (
                    await stub.ListAuditLog(
                        activities_pb2.ListAuditLogRequest(user_id=user, page_size=500), metadata=as_service("tests")
                    )
                ).entries
                actions = [e.record.action for e in entries]
                assert actions.count("fill") == ORDERS_PER_USER
                assert actions.count("submit") == ORDERS_PER_USER

        await eventually(check, timeout=120)
