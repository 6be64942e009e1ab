"""The market-data server fixture: stepped replay of the bundled sample."""

import pytest

from tests.support.marketdata import start_marketdata


@pytest.fixture
async def marketdata(databases, tmp_path):
    server = await start_marketdata(databases, tmp_path)
    yield server
    await server.stop()
