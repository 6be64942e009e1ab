"""Tests against the real Redis (``MBT_TEST_REDIS_URL``): each gets a key prefix nobody else
uses, and its keys are deleted afterwards, so tests never see another run's state."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as redis

from tests.support.databases import REDIS_URL

# A test (or a parameter) that needs Redis; reported as skipped when none is configured.
REDIS_MARKS = [pytest.mark.redis, pytest.mark.skipif(not REDIS_URL, reason="needs MBT_TEST_REDIS_URL")]


def requires_redis(test):
    for mark in REDIS_MARKS:
        test = mark(test)
    return test


@asynccontextmanager
async def fresh_prefix() -> AsyncIterator[str]:
    prefix = f"mbt-test-{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
