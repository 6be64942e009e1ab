"""The option benchmarks measure what they say, at a tiny size: the matcher bench's orders
really fill through the live engine, single-leg and multi-leg, each order accounted for once;
the expiration bench's ExpireOptions settles every seeded position exactly once, in full,
and a second run finds nothing left. No timing is asserted (the figures are printed by
``python -m bench``)."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from decimal import Decimal

from sqlalchemy import create_engine, func, select

from bench import expiration, matcher_options
from services.accounts.store import SERVICE, PositionRow
from services.common.persistence import migrate
from services.common.persistence.db import normalize_url
from services.common.trading import AssetClass


async def test_the_option_matcher_bench_fills_single_and_multi_leg_orders_once_each():
    scenario = await asyncio.to_thread(matcher_options.build_scenario, 3, 90, matcher_options.SEED)
    assert (len(scenario.singles), len(scenario.spreads)) == (60, 30)
    assert {len(s.legs) for s in scenario.spreads} == {2, 4}  # verticals and iron condors
    assert scenario.option_ticks > 0 and len(scenario.ticks) > scenario.option_ticks  # AMZN ticks too

    outcome = await matcher_options.replay(scenario)

    assert outcome.single_fills > 0 and outcome.spread_fills > 0
    # Every order either filled once or still works: none lost, none filled twice.
    assert outcome.single_fills + outcome.spread_fills + outcome.resting == 90
    assert outcome.resting > 0  # priced away: most rest
    again = await matcher_options.replay(scenario)
    assert (again.single_fills, again.spread_fills, again.spread_legs, again.resting) == (
        outcome.single_fills,
        outcome.spread_fills,
        outcome.spread_legs,
        outcome.resting,
    )


async def test_the_expiration_bench_settles_every_position_exactly_once(databases):
    url = databases.new("accounts")
    await asyncio.to_thread(migrate.upgrade, SERVICE, url)
    seeded = await asyncio.to_thread(expiration.seed_positions, url, 45, random.Random(7))
    assert len(seeded) == 45

    _, report = await expiration.expire(url)

    settled: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for each in report.settled:
        settled[each.account_id, each.effect.contract.symbol] += each.effect.qty
    # A long a cash account cannot carry in full splits into an exercised and an expired
    # part; together they are the whole position, once.
    assert dict(settled) == seeded
    assert {e.effect.outcome.value for e in report.settled} >= {"exercised", "assigned", "expired_worthless"}
    assert report.shortfalls == () and report.unpriced == ()
    assert await asyncio.to_thread(_open_option_positions, url) == 0
    _, repeat = await expiration.expire(url)
    assert repeat.settled == ()


def _open_option_positions(url: str) -> int:
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as connection:
            query = select(func.count()).where(
                PositionRow.closed_at.is_(None), PositionRow.asset_class == AssetClass.US_OPTION.value
            )
            return connection.execute(query).scalar_one()
    finally:
        engine.dispose()
