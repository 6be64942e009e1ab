"""Shared state (session rows, passkey challenges) on both backends, the SQLite file of the
embedded default and a real Redis; and Redis rate limits. Same answers as the pure GCRA, a
take that only one caller wins, records that expire, and services refusing the token of a
session that ended."""

import asyncio

import pytest
import redis.asyncio as redis

from services.common.security.auth import SESSION_NAMESPACE, TokenAuthenticator, bearer
from services.common.security.ratelimit import TIER_LIMITS, RedisRateLimiter, gcra
from services.common.security.shared_state import RedisState, SqliteState
from services.common.security.tokens import InvalidToken, TokenIssuer, TokenKeys, TokenVerifier
from tests.support.databases import REDIS_URL
from tests.support.redis_keys import REDIS_MARKS, fresh_prefix, requires_redis
from tests.support.wall import Wall

MICROS = 1_000_000


@pytest.fixture
async def redis_client():
    async with fresh_prefix() as prefix:
        client = redis.Redis.from_url(REDIS_URL)
        client.test_prefix = prefix
        yield client
        await client.aclose()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=REDIS_MARKS)])
async def state(request, tmp_path):
    if request.param == "sqlite":
        yield SqliteState(tmp_path / "shared-state.db")
        return
    async with fresh_prefix() as prefix:
        client = redis.Redis.from_url(REDIS_URL)
        yield RedisState(client, prefix)
        await client.aclose()


async def test_records_round_trip_and_are_taken_once(state):
    await state.put("webauthn", "c1", {"purpose": "assertion"}, 60)
    assert await state.get("webauthn", "c1") == {"purpose": "assertion"}
    assert await state.get("session", "c1") is None
    takes = await asyncio.gather(*(state.take("webauthn", "c1") for _ in range(8)))
    assert takes.count({"purpose": "assertion"}) == 1 and takes.count(None) == 7
    await state.put("session", "s1", {"user_id": "a"}, 60)
    await state.delete("session", "s1")
    assert await state.get("session", "s1") is None


async def test_sqlite_records_expire_on_the_clock(tmp_path):
    wall = Wall(1_800_000_000)
    state = SqliteState(tmp_path / "shared-state.db", wall)
    await state.put("session", "s1", {"user_id": "a"}, 60)
    wall.advance(59)
    assert await state.get("session", "s1") == {"user_id": "a"}
    wall.advance(1)
    assert await state.get("session", "s1") is None
    assert await state.take("session", "s1") is None


async def test_two_processes_see_one_sqlite_file(tmp_path):
    writer, reader = SqliteState(tmp_path / "shared-state.db"), SqliteState(tmp_path / "shared-state.db")
    await writer.put("session", "s1", {"user_id": "a"}, 60)
    assert await reader.get("session", "s1") == {"user_id": "a"}
    await reader.delete("session", "s1")
    assert await writer.get("session", "s1") is None


@requires_redis
async def test_redis_records_expire(redis_client):
    state = RedisState(redis_client, redis_client.test_prefix)
    await state.put("session", "s1", {"user_id": "a"}, 0.5)
    assert 0 < await redis_client.pttl(f"{redis_client.test_prefix}session:s1") <= 500


async def test_services_refuse_the_token_of_a_session_that_ended(state):
    keys = TokenKeys.development()
    authenticator = TokenAuthenticator(TokenVerifier(keys), state)
    metadata = dict(bearer(TokenIssuer(keys).user("alice", tier="free", ttl_seconds=600, session_id="ses_1")))
    with pytest.raises(InvalidToken, match="session has ended"):
        await authenticator.authenticate(metadata)
    await state.put(SESSION_NAMESPACE, "ses_1", {"user_id": "alice"}, 60)
    assert (await authenticator.authenticate(metadata)).session_id == "ses_1"
    await state.put(SESSION_NAMESPACE, "ses_1", {"user_id": "mallory"}, 60)
    with pytest.raises(InvalidToken, match="session has ended"):
        await authenticator.authenticate(metadata)
    await state.delete(SESSION_NAMESPACE, "ses_1")
    with pytest.raises(InvalidToken, match="session has ended"):
        await authenticator.authenticate(metadata)


@requires_redis
async def test_redis_rate_limits_decide_exactly_like_the_pure_function(redis_client):
    wall = Wall(1_800_000_000)
    limiter = RedisRateLimiter(redis_client, redis_client.test_prefix, now=wall)
    for limit in TIER_LIMITS.values():
        tat, expected = None, []
        for _ in range(limit + 1):
            new_tat, decision = gcra(tat, int(wall() * MICROS), limit)
            tat = new_tat if new_tat is not None else tat
            expected.append(decision)
        assert [await limiter.hit(f"user:{limit}", limit) for _ in range(limit + 1)] == expected
    wall.advance(1)
    assert (await limiter.hit("user:3000", 3000)).remaining == 49
    assert 0 < await redis_client.pttl(f"{redis_client.test_prefix}ratelimit:user:60") <= 60_000
