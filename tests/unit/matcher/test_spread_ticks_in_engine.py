"""A leg's tick decides exactly the working spreads with a leg on that contract, and a spread
that left the book (filled, canceled, replaced) is decided no more. Fakes stand in for
orders and market data; market data records whose latest quotes each decision asks."""

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
XYZ_SHORT, XYZ_LONG = "XYZ250117P00100000", "XYZ250117P00095000"
ABC_SHORT, ABC_LONG = "ABC250117P00050000", "ABC250117P00045000"
QUOTES = {
    symbol: a_tick(bid, ask, symbol=symbol, sequence=n)
    for n, (symbol, bid, ask) in enumerate(
        (
            (XYZ_SHORT, "2.00", "2.10"),
            (XYZ_LONG, "0.80", "0.90"),
            (ABC_SHORT, "1.00", "1.10"),
            (ABC_LONG, "0.30", "0.40"),
        ),
        start=1,
    )
}


class Market:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def latest_tick(self, symbol):
        self.asked.append(symbol)
        return QUOTES[symbol]

    async def quotes(self, symbol):
        await asyncio.Event().wait()  # no live ticks: the test hands them to on_tick
        yield  # pragma: no cover

    async def sessions(self, first, last):
        return [SESSION]


class Orders:
    async def record_spread_fill(self, spread, decision):
        raise AssertionError(f"{spread.order_id}: a credit spread asking 3.00 never fills here")


def a_resting_credit_spread(order_id: str, short: str, long: str) -> WorkingSpread:
    """A credit of 3.00 asked: far beyond either spread's natural, so it keeps working."""
    legs = (SpreadLeg(short, SELL, 1), SpreadLeg(long, BUY, 1))
    return WorkingSpread(
        order_id, legs, D(1), LIMIT, GTC, D("-3.00"), None, FillPreference.MID, MID_SESSION_NS - 10**9, None
    )


async def ticks_ask(engine: Engine, market: Market, symbol: str, sequence: int) -> list[str]:
    """The leg quotes asked by the decisions one tick of ``symbol`` set off."""
    market.asked.clear()
    await engine.on_tick(dataclasses.replace(QUOTES[symbol], sequence=sequence))
    await engine.drain()
    return sorted(market.asked)


async def test_a_tick_decides_only_the_spreads_on_its_contract_and_never_one_that_left():
    market = Market()
    engine = Engine(Orders(), market, SessionCalendar(market), 60 * 10**9)
    xyz = a_resting_credit_spread("ord_xyz", XYZ_SHORT, XYZ_LONG)
    abc = a_resting_credit_spread("ord_abc", ABC_SHORT, ABC_LONG)
    await engine.admit(OpenSpread(xyz))
    await engine.admit(OpenSpread(abc))
    await engine.drain()

    assert await ticks_ask(engine, market, XYZ_LONG, 10) == sorted([XYZ_SHORT, XYZ_LONG])
    assert await ticks_ask(engine, market, ABC_SHORT, 11) == sorted([ABC_SHORT, ABC_LONG])

    replaced = dataclasses.replace(xyz, limit_price=D("-2.90"), accepted_ns=MID_SESSION_NS)
    await engine.admit(OpenSpread(replaced))
    await engine.drain()
    assert await ticks_ask(engine, market, XYZ_SHORT, 12) == sorted([XYZ_SHORT, XYZ_LONG])  # once, not twice

    engine.remove("ord_xyz")
    assert await ticks_ask(engine, market, XYZ_SHORT, 13) == []
    assert await ticks_ask(engine, market, ABC_LONG, 14) == sorted([ABC_SHORT, ABC_LONG])
    assert engine.spreads == {"ord_abc": abc}
    await engine.close()
