"""Shared fixtures. Tests that take ``backend`` run on SQLite and on PostgreSQL; without
MBT_TEST_DATABASE_URL the PostgreSQL variant is reported as skipped, saying why."""

from __future__ import annotations

import pytest

from tests.support.databases import POSTGRES_URL, DatabaseFactory
from tests.support.trading import Trading, start_trading_mesh

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL variant: set MBT_TEST_DATABASE_URL to run it"),
        ],
    ),
]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def databases(backend, tmp_path):
    factory = DatabaseFactory(backend, tmp_path)
    yield factory
    factory.drop_all()


@pytest.fixture
async def mesh(databases, tmp_path):
    """The whole mesh on a stepped replay of the bundled recording, starting at
    ``tests.support.trading.START`` (modules that need another mesh define their own)."""
    mesh = await start_trading_mesh(databases, tmp_path)
    yield mesh
    await mesh.stop()


@pytest.fixture
async def trading(mesh):
    """gRPC access to ``mesh`` as users or as the platform."""
    trading = Trading(mesh)
    yield trading
    await trading.close()
