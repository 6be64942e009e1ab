"""Per-tier rate limits at the gateway: a Free user's 61st request in a minute is a 429
with the right headers, the budget refills, and two gateway replicas share one budget
through Redis. The clock is fixed, so "a minute" is exact and nothing races real time."""

import pytest

from tests.support.databases import REDIS_URL
from tests.support.identity import rest_headers, sign_in
from tests.support.redis_keys import fresh_prefix, requires_redis


def assert_limited(response, limit: int, retry_after: str = "1"):
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    assert response.headers["retry-after"] == retry_after
    assert response.headers["x-ratelimit-limit"] == str(limit)
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert response.headers["x-ratelimit-reset"] == "60"


async def test_a_free_user_gets_429_after_60_requests_in_a_minute(upstream, tmp_path, wall):
    async with upstream.gateway(tmp_path, now=wall) as client:
        await sign_in(client, "fred")
        for n in range(1, 61):
            response = await client.get("/api/mbt/orders")
            assert response.status_code == 200, (n, response.text)
            assert response.headers["x-ratelimit-limit"] == "60"
            assert response.headers["x-ratelimit-remaining"] == str(60 - n)
        assert_limited(await client.get("/api/mbt/orders"), 60)
        assert_limited(await client.get("/api/sessions/current"), 60)  # one budget for the whole API
        calls = len(upstream.api_calls())
        wall.advance(1)  # one request's worth refills
        assert (await client.get("/api/mbt/orders")).status_code == 200
        assert_limited(await client.get("/api/mbt/orders"), 60)
        assert len(upstream.api_calls()) == calls + 1


async def test_each_user_has_their_own_budget_and_tiers_differ(upstream, tmp_path, wall):
    async with upstream.gateway(tmp_path, now=wall) as client:
        for _ in range(60):
            await client.get("/api/mbt/orders", headers=rest_headers("fred"))
        assert_limited(await client.get("/api/mbt/orders", headers=rest_headers("fred")), 60)
        other = await client.get("/api/mbt/orders", headers=rest_headers("gina"))
        assert other.status_code == 200 and other.headers["x-ratelimit-remaining"] == "59"
        pro = await client.get("/api/mbt/orders", headers=rest_headers("pat", tier="pro"))
        assert (pro.headers["x-ratelimit-limit"], pro.headers["x-ratelimit-remaining"]) == ("600", "599")
        plus = await client.get("/api/mbt/orders", headers=rest_headers("pam", tier="pro_plus"))
        assert plus.headers["x-ratelimit-limit"] == "3000"


@pytest.fixture
async def redis_prefix():
    async with fresh_prefix() as prefix:
        yield prefix


@requires_redis
async def test_two_gateway_replicas_share_one_budget_through_redis(upstream, tmp_path, redis_prefix, wall):
    env = {"MBT_REDIS_URL": REDIS_URL, "MBT_REDIS_KEY_PREFIX": redis_prefix}
    async with (
        upstream.gateway(tmp_path / "a", now=wall, **env) as first,
        upstream.gateway(tmp_path / "b", now=wall, **env) as second,
    ):
        token = await sign_in(first, "fred")
        headers = {"Authorization": f"Bearer {token}"}
        for n in range(60):
            replica = first if n % 2 else second
            response = await replica.get("/api/mbt/orders", headers=headers)
            assert response.status_code == 200, (n, response.text)
        assert_limited(await first.get("/api/mbt/orders", headers=headers), 60)
        assert_limited(await second.get("/api/mbt/orders", headers=headers), 60)
        wall.advance(60)  # the whole budget refills
        # Session rows are shared too: signing out on one replica ends the session on both.
        assert (await second.delete("/api/sessions/current", headers=headers)).status_code == 200
        refused = await first.get("/api/mbt/orders", headers=headers)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
