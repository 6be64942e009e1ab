"""Shared fixtures. The backend is SQLite unless MBT_TEST_DATABASE_URL is set, in which
case tests that take ``backend`` run on both SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.support.databases import POSTGRES_URL, DatabaseFactory

BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def databases(backend, tmp_path):
    factory = DatabaseFactory(backend, tmp_path)
    yield factory
    factory.drop_all()
