import pytest

from services.common.security.ratelimit import TIER_LIMITS, InProcessRateLimiter, RateDecision, gcra, limit_for
from tests.support.wall import Wall

MICROS = 1_000_000
NOW = 1_800_000_000 * MICROS


def burst(limit: int, count: int, now: int = NOW) -> tuple[int | None, list[RateDecision]]:
    tat, decisions = None, []
    for _ in range(count):
        new_tat, decision = gcra(tat, now, limit)
        tat = new_tat if new_tat is not None else tat
        decisions.append(decision)
    return tat, decisions


@pytest.mark.parametrize("tier", ["free", "pro", "pro_plus"])
def test_a_whole_minutes_budget_can_be_spent_at_once_and_not_one_more(tier):
    limit = TIER_LIMITS[tier]
    _, decisions = burst(limit, limit + 1)
    assert all(d.allowed for d in decisions[:-1])
    assert [d.remaining for d in decisions[:3]] == [limit - 1, limit - 2, limit - 3]
    assert decisions[-2] == RateDecision(True, limit, 0, 60, 0)
    assert decisions[-1] == RateDecision(False, limit, 0, 60, 1)


def test_the_budget_refills_one_request_per_interval():
    tat, _ = burst(60, 60)
    for elapsed, allowed in ((0.5, False), (1.0, True)):
        _, decision = gcra(tat, NOW + int(elapsed * MICROS), 60)
        assert decision.allowed is allowed
    _new_tat, decision = gcra(tat, NOW + 60 * MICROS, 60)
    assert decision.allowed and decision.remaining == 59


def test_refused_requests_do_not_consume_budget():
    tat, _ = burst(60, 60)
    for _ in range(10):
        assert gcra(tat, NOW, 60)[0] is None
    assert gcra(tat, NOW + MICROS, 60)[1].allowed


def test_headers_carry_the_figures():
    _, decisions = burst(60, 61)
    assert decisions[0].headers() == {
        "x-ratelimit-limit": "60",
        "x-ratelimit-remaining": "59",
        "x-ratelimit-reset": "1",
    }
    assert decisions[-1].headers()["retry-after"] == "1"


def test_unknown_tiers_get_the_smallest_budget():
    assert limit_for("") == limit_for("platinum") == 60


async def test_the_in_process_limiter_keeps_one_budget_per_key():
    limiter = InProcessRateLimiter(now=Wall(1_800_000_000))
    for _ in range(60):
        assert (await limiter.hit("user:a", 60)).allowed
    assert not (await limiter.hit("user:a", 60)).allowed
    assert (await limiter.hit("user:b", 60)).allowed


async def test_the_in_process_limiter_forgets_whole_budgets_when_full():
    wall = Wall(1_800_000_000)
    limiter = InProcessRateLimiter(now=wall, max_keys=10)
    for n in range(10):
        await limiter.hit(f"user:{n}", 60)
    wall.advance(2)
    await limiter.hit("user:new", 60)
    assert len(limiter._tats) == 1
