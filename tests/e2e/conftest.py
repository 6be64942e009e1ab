"""Fixtures of the gateway tests: a scripted upstream standing in for every service, a wall
clock the test moves by hand, and an https client of a gateway in front of both."""

import pytest

from tests.support.upstream import scripted_upstream
from tests.support.wall import Wall


@pytest.fixture
async def upstream():
    async with scripted_upstream() as handler:
        yield handler


@pytest.fixture
def wall():
    return Wall()


@pytest.fixture
async def client(upstream, tmp_path, wall):
    async with upstream.gateway(tmp_path, now=wall) as client:
        yield client
