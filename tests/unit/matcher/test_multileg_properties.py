"""Invariants of the multi-leg fill decision over generated structures, quotes, preferences
and limits: the net is the signed sum of the leg prices, conservative never fills better
than the natural, and no leg is priced outside its NBBO (on-touch fills included)."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.instruments import COMPLEX_TICK
from services.common.spreads import LegQuote, natural, net_bid, net_mid, net_price
from services.common.trading import FillPreference, OrderType, Side, TimeInForce
from services.matcher.domain import Action
from services.matcher.multileg import SpreadLeg, WorkingSpread, allocate, decide_spread
from tests.support.matcher import MAX_AGE_NS, MID_SESSION_NS, OPEN_NS, SESSION, a_tick

EXAMPLES = settings(max_examples=400, deadline=None)
CENT = COMPLEX_TICK


@st.composite
def structures(draw, ratios=st.integers(1, 3)):
    """2 to 4 legs with their NBBOs (bid 0.01 to 5.00, 1 to 40 cents wide)."""
    count = draw(st.integers(2, 4))
    legs, quotes = [], {}
    for n in range(count):
        symbol = f"XYZ250117C{(100 + 5 * n) * 1000:08d}"
        legs.append(SpreadLeg(symbol, draw(st.sampled_from(Side)), draw(ratios)))
        bid = Decimal(draw(st.integers(1, 500))) * CENT
        quotes[symbol] = (bid, bid + Decimal(draw(st.integers(1, 40))) * CENT)
    return tuple(legs), quotes


@st.composite
def scenarios(draw, ratios=st.integers(1, 3)):
    legs, table = draw(structures(ratios))
    priced = [LegQuote(leg.side, leg.ratio, *table[leg.symbol]) for leg in legs]
    preference = draw(st.sampled_from(FillPreference))
    market = draw(st.integers(0, 5)) == 0
    # Limits around the structure's market, so that they cross it often.
    low, high = net_bid(priced), natural(priced)
    limit = (
        None
        if market
        else draw(
            st.sampled_from(
                [
                    low,
                    high,
                    net_mid(priced).quantize(CENT, ROUND_CEILING),
                    net_mid(priced).quantize(CENT, ROUND_CEILING) - CENT,
                ]
            )
        )
        + Decimal(draw(st.integers(-3, 3))) * CENT
    )
    order = WorkingSpread(
        "ord_p",
        legs,
        Decimal(draw(st.integers(1, 5))),
        OrderType.MARKET if market else OrderType.LIMIT,
        TimeInForce.GTC,
        limit,
        None,
        preference,
        OPEN_NS,
        None,
    )
    ticks = {
        symbol: a_tick(str(bid), str(ask), symbol=symbol, sequence=n)
        for n, (symbol, (bid, ask)) in enumerate(table.items(), start=1)
    }
    return order, ticks, priced


def decide(order, ticks):
    return decide_spread(order, ticks, session=SESSION, evaluated_ns=MID_SESSION_NS, max_quote_age_ns=MAX_AGE_NS)


@EXAMPLES
@given(scenarios())
def test_a_fill_nets_the_signed_sum_of_its_leg_prices_each_inside_its_nbbo(scenario):
    order, ticks, _ = scenario
    decision = decide(order, ticks)
    if decision.action is not Action.FILL:
        return
    assert decision.net_price == net_price([(leg.side, leg.ratio, leg.price) for leg in decision.legs])
    for leg in decision.legs:
        assert leg.tick.bid <= leg.price <= leg.tick.ask
        assert leg.price % CENT == 0
        assert leg.qty == leg.ratio * order.qty


@EXAMPLES
@given(scenarios())
def test_no_fill_is_worse_than_the_natural_nor_the_limit_and_conservative_is_the_natural(scenario):
    order, ticks, priced = scenario
    decision = decide(order, ticks)
    if decision.action is not Action.FILL:
        return
    assert decision.net_price <= natural(priced)
    if order.limit_price is not None:
        assert decision.net_price <= order.limit_price
    if order.fill_preference is FillPreference.CONSERVATIVE:
        assert decision.net_price == natural(priced)


@EXAMPLES
@given(scenarios())
def test_when_a_limit_fills_is_set_by_the_preference(scenario):
    order, ticks, priced = scenario
    decision = decide(order, ticks)
    limit, mid = order.limit_price, net_mid(priced)
    if limit is None:
        assert decision.action is Action.FILL
        return
    reaches = {
        FillPreference.CONSERVATIVE: limit >= natural(priced),
        FillPreference.MID: limit >= mid,
        FillPreference.AGGRESSIVE: limit >= mid - CENT,
    }[order.fill_preference]
    if decision.rule == "mleg_not_allocatable":
        assert reaches and any(leg.ratio > 1 for leg in order.legs)
        return
    assert (decision.action is Action.FILL) == reaches
    if decision.rule == "mleg_limit_on_touch":
        assert decision.net_price == limit < mid


@EXAMPLES
@given(scenarios(ratios=st.just(1)))
def test_legs_of_ratio_one_always_fill_when_the_limit_reaches(scenario):
    order, ticks, priced = scenario
    decision = decide(order, ticks)
    assert decision.rule != "mleg_not_allocatable"
    low, high = net_bid(priced), natural(priced)
    for cents in range(int((high - low) / CENT) + 1):
        net = low + cents * CENT
        prices = allocate(net, priced)
        assert prices is not None
        assert net_price([(q.side, q.ratio, p) for q, p in zip(priced, prices, strict=True)]) == net


@EXAMPLES
@given(scenarios())
def test_the_same_inputs_give_the_same_decision(scenario):
    order, ticks, _ = scenario
    assert decide(order, ticks) == decide(order, dict(reversed(list(ticks.items()))))
