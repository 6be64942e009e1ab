"""The Redis side of shared state, rate limits and session checks, against a real Redis:
same decisions as the in-process versions, atomic take, records that expire."""

import pytest
import redis.asyncio as redis

from services.common.auth import SESSION_NAMESPACE, TokenAuthenticator, bearer
from services.common.ratelimit import TIER_LIMITS, RedisRateLimiter, gcra
from services.common.shared_state import RedisState
from services.common.tokens import InvalidToken, TokenIssuer, TokenKeys, TokenVerifier
from tests.support.databases import REDIS_URL
from tests.support.redis_keys import fresh_prefix, requires_redis
from tests.support.wall import Wall

MICROS = 1_000_000


@pytest.fixture
async def client():
    async with fresh_prefix() as prefix:
        client = redis.Redis.from_url(REDIS_URL)
        client.test_prefix = prefix
        yield client
        await client.aclose()


@requires_redis
async def test_redis_rate_limits_decide_exactly_like_the_pure_function(client):
    wall = Wall(1_800_000_000)
    limiter = RedisRateLimiter(client, client.test_prefix, now=wall)
    for limit in TIER_LIMITS.values():
        tat, expected = None, []
        for _ in range(limit + 1):
            new_tat, decision = gcra(tat, int(wall() * MICROS), limit)
            tat = new_tat if new_tat is not None else tat
            expected.append(decision)
        assert [await limiter.hit(f"user:{limit}", limit) for _ in range(limit + 1)] == expected
    wall.advance(1)
    assert (await limiter.hit("user:3000", 3000)).remaining == 49
    assert 0 < await client.pttl(f"{client.test_prefix}ratelimit:user:60") <= 60_000


@requires_redis
async def test_redis_state_takes_once_and_expires(client):
    state = RedisState(client, client.test_prefix)
    await state.put("webauthn", "c1", {"purpose": "assertion"}, 60)
    assert await state.get("webauthn", "c1") == {"purpose": "assertion"}
    assert await state.take("webauthn", "c1") == {"purpose": "assertion"}
    assert await state.take("webauthn", "c1") is None
    await state.put("session", "s1", {"user_id": "a"}, 0.001)
    assert 0 <= await client.pttl(f"{client.test_prefix}session:s1") <= 1


@requires_redis
async def test_services_refuse_a_signed_out_sessions_token_when_redis_is_shared(client):
    keys = TokenKeys.development()
    state = RedisState(client, client.test_prefix)
    authenticator = TokenAuthenticator(TokenVerifier(keys), state)
    token = TokenIssuer(keys).user("alice", tier="free", ttl_seconds=600, session_id="ses_1")
    metadata = dict(bearer(token))
    await state.put(SESSION_NAMESPACE, "ses_1", {"user_id": "alice"}, 60)
    assert (await authenticator.authenticate(metadata)).user_id == "alice"
    await state.delete(SESSION_NAMESPACE, "ses_1")
    with pytest.raises(InvalidToken, match="session has ended"):
        await authenticator.authenticate(metadata)
