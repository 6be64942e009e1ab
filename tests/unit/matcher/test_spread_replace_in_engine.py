"""The live matcher swaps a replaced spread's terms in one step: a decision still running on
the old terms when the replace is admitted sends nothing and leaves the new terms working
(README "Orders", multi-leg replace). Fakes stand in for orders and market data."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

from services.common.trading import FillPreference
from services.matcher.clients import SessionCalendar
from services.matcher.multileg import SpreadLeg, WorkingSpread
from services.matcher.usecases.matching import Engine
from services.matcher.views import OpenSpread
from tests.support.matcher import BUY, GTC, LIMIT, MID_SESSION_NS, SELL, SESSION, a_tick

D = Decimal
SHORT, LONG = "XYZ250117P00100000", "XYZ250117P00095000"
# Natural -1.10: a limit of -1.00 fills at once (conservative), -1.50 waits.
QUOTES = {SHORT: a_tick("2.00", "2.10", symbol=SHORT, at_ns=MID_SESSION_NS, sequence=1)} | {
    LONG: a_tick("0.80", "0.90", symbol=LONG, at_ns=MID_SESSION_NS, sequence=2)
}


class Market:
    """Leg quotes behind a gate: a decision reads them only once the test opens it."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.asked = asyncio.Event()  # a decision is waiting on the gate

    async def latest_tick(self, symbol):
        self.asked.set()
        await self.gate.wait()
        return QUOTES[symbol]

    async def decision_waits(self) -> None:
        await self.asked.wait()
        self.asked.clear()

    async def quotes(self, symbol):
        await asyncio.Event().wait()  # no live ticks
        yield  # pragma: no cover

    async def sessions(self, first, last):
        return [SESSION]


class Orders:
    def __init__(self) -> None:
        self.fills = []

    async def record_spread_fill(self, spread, decision):
        self.fills.append((spread, decision))


def a_spread(order_id: str) -> WorkingSpread:
    """A credit spread at a limit of -1.00, marketable on QUOTES."""
    return WorkingSpread(
        order_id,
        (SpreadLeg(SHORT, SELL, 1), SpreadLeg(LONG, BUY, 1)),
        D(1),
        LIMIT,
        GTC,
        D("-1.00"),
        None,
        FillPreference.CONSERVATIVE,
        MID_SESSION_NS - 10**9,
        None,
    )


async def test_a_decision_on_the_old_terms_sends_nothing_once_the_replace_is_admitted():
    market, orders = Market(), Orders()
    engine = Engine(orders, market, SessionCalendar(market), 60 * 10**9)
    marketable = a_spread("ord_1")
    replaced = dataclasses.replace(marketable, limit_price=D("-1.50"), accepted_ns=MID_SESSION_NS)
    old = asyncio.create_task(engine.admit(OpenSpread(marketable)))
    await market.decision_waits()  # the old terms' decision waits on the leg quotes
    new = asyncio.create_task(engine.admit(OpenSpread(replaced)))
    await market.decision_waits()
    market.gate.set()
    await asyncio.gather(old, new)
    await engine.drain()
    assert orders.fills == []
    assert engine.spreads == {"ord_1": replaced}
    await engine.close()


async def test_without_a_replace_the_same_decision_fills_once():
    market, orders = Market(), Orders()
    engine = Engine(orders, market, SessionCalendar(market), 60 * 10**9)
    spread = a_spread("ord_2")
    market.gate.set()
    await engine.admit(OpenSpread(spread))
    await engine.drain()
    [(filled, decision)] = orders.fills
    assert (filled, decision.rule, decision.net_price) == (spread, "mleg_limit_at_natural", D("-1.10"))
    assert engine.spreads == {}
    await engine.close()
