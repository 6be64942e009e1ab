"""The multi-leg fill decision, table-driven: a bull put credit spread and an iron condor
under each fill preference, then the gates (quotes, session, age, expiry) and leg prices."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from services.common.spreads import net_price
from services.common.trading import FillPreference, OrderType, TimeInForce
from services.matcher.domain import Action
from services.matcher.multileg import (
    RULES,
    SpreadLeg,
    WorkingSpread,
    allocate,
    decide_spread,
    reproduces,
    spread_fill_id,
)
from tests.support.matcher import (
    BUY,
    DAY,
    GTC,
    LIMIT,
    MARKET,
    MAX_AGE_NS,
    MID_SESSION_NS,
    OPEN_NS,
    SECOND,
    SELL,
    SESSION,
    a_tick,
)
from tests.support.options import quote

D = Decimal
CONSERVATIVE, MID, AGGRESSIVE = FillPreference.CONSERVATIVE, FillPreference.MID, FillPreference.AGGRESSIVE

# Bull put credit spread: sell the 100 put 2.00 x 2.10, buy the 95 put 0.80 x 0.90.
# natural -1.10, net bid -1.30, mid -1.20.
BULL_PUT = (SpreadLeg("XYZ250117P00100000", SELL, 1), SpreadLeg("XYZ250117P00095000", BUY, 1))
BULL_PUT_QUOTES = {"XYZ250117P00100000": ("2.00", "2.10"), "XYZ250117P00095000": ("0.80", "0.90")}
# Iron condor: buy 90P 0.40 x 0.50, sell 95P 1.00 x 1.10, sell 105C 1.10 x 1.20, buy 110C 0.45 x 0.55.
# natural -1.05, net bid -1.45, mid -1.25.
CONDOR = (
    SpreadLeg("XYZ250117P00090000", BUY, 1),
    SpreadLeg("XYZ250117P00095000", SELL, 1),
    SpreadLeg("XYZ250117C00105000", SELL, 1),
    SpreadLeg("XYZ250117C00110000", BUY, 1),
)
CONDOR_QUOTES = {
    "XYZ250117P00090000": ("0.40", "0.50"),
    "XYZ250117P00095000": ("1.00", "1.10"),
    "XYZ250117C00105000": ("1.10", "1.20"),
    "XYZ250117C00110000": ("0.45", "0.55"),
}


def spread(
    legs=BULL_PUT,
    *,
    limit: str | None = "-1.20",
    preference=MID,
    kind=None,
    tif=GTC,
    collar=None,
    qty="2",
    accepted_ns=OPEN_NS,
    expires_ns=None,
) -> WorkingSpread:
    return WorkingSpread(
        "ord_spread",
        tuple(legs),
        D(qty),
        kind or (LIMIT if limit is not None else MARKET),
        tif,
        None if limit is None else D(limit),
        None if collar is None else D(collar),
        preference,
        accepted_ns,
        expires_ns,
    )


def quotes(table, *, at_ns=MID_SESSION_NS, **overrides):
    merged = {**table, **overrides}
    return {
        symbol: a_tick(bid, ask, symbol=symbol, at_ns=at_ns, sequence=n)
        for n, (symbol, (bid, ask)) in enumerate(merged.items(), start=1)
    }


def decide(order, table=BULL_PUT_QUOTES, *, evaluated_ns=MID_SESSION_NS, session=SESSION, **overrides):
    return decide_spread(
        order, quotes(table, **overrides), session=session, evaluated_ns=evaluated_ns, max_quote_age_ns=MAX_AGE_NS
    )


PRICED = [
    # (structure, preference, limit, action, rule, net, leg prices)
    ("credit spread", CONSERVATIVE, "-1.10", Action.FILL, "mleg_limit_at_natural", "-1.10", ("2.00", "0.90")),
    ("credit spread", CONSERVATIVE, "-1.00", Action.FILL, "mleg_limit_at_natural", "-1.10", ("2.00", "0.90")),
    ("credit spread", CONSERVATIVE, "-1.11", Action.WAIT, "mleg_limit_not_marketable", None, ()),
    ("credit spread", CONSERVATIVE, "-1.20", Action.WAIT, "mleg_limit_not_marketable", None, ()),
    ("credit spread", MID, "-1.20", Action.FILL, "mleg_limit_at_mid", "-1.20", ("2.05", "0.85")),
    ("credit spread", MID, "-1.10", Action.FILL, "mleg_limit_at_mid", "-1.20", ("2.05", "0.85")),
    ("credit spread", MID, "-1.21", Action.WAIT, "mleg_limit_below_mid", None, ()),
    ("credit spread", AGGRESSIVE, "-1.20", Action.FILL, "mleg_limit_at_mid", "-1.20", ("2.05", "0.85")),
    ("credit spread", AGGRESSIVE, "-1.21", Action.FILL, "mleg_limit_on_touch", "-1.21", ("2.06", "0.85")),
    ("credit spread", AGGRESSIVE, "-1.22", Action.WAIT, "mleg_limit_below_touch", None, ()),
    (
        "iron condor",
        CONSERVATIVE,
        "-1.05",
        Action.FILL,
        "mleg_limit_at_natural",
        "-1.05",
        ("0.50", "1.00", "1.10", "0.55"),
    ),
    ("iron condor", CONSERVATIVE, "-1.25", Action.WAIT, "mleg_limit_not_marketable", None, ()),
    ("iron condor", MID, "-1.25", Action.FILL, "mleg_limit_at_mid", "-1.25", ("0.45", "1.05", "1.15", "0.50")),
    ("iron condor", MID, "-1.26", Action.WAIT, "mleg_limit_below_mid", None, ()),
    ("iron condor", AGGRESSIVE, "-1.26", Action.FILL, "mleg_limit_on_touch", "-1.26", ("0.44", "1.05", "1.15", "0.50")),
    ("iron condor", AGGRESSIVE, "-1.27", Action.WAIT, "mleg_limit_below_touch", None, ()),
]


@pytest.mark.parametrize(("structure", "preference", "limit", "action", "rule", "net", "legs"), PRICED)
def test_each_preference_prices_the_structure(structure, preference, limit, action, rule, net, legs):
    legs_, table = (BULL_PUT, BULL_PUT_QUOTES) if structure == "credit spread" else (CONDOR, CONDOR_QUOTES)
    decision = decide(spread(legs_, limit=limit, preference=preference), table)
    assert (decision.action, decision.rule) == (action, rule)
    assert decision.net_price == (None if net is None else D(net))
    assert tuple(str(fill.price) for fill in decision.legs) == legs
    if action is Action.FILL:
        assert decision.net_price == net_price([(f.side, f.ratio, f.price) for f in decision.legs])
        assert [f.qty for f in decision.legs] == [D(2)] * len(legs_)
        assert decision.natural is not None and decision.mid is not None


def test_the_explanation_shows_the_natural_the_mid_the_preference_and_the_leg_quotes():
    decision = decide(spread(limit="-1.21", preference=AGGRESSIVE))
    assert decision.explanation == (
        "aggressive limit spread limit -1.21: natural -1.10, mid -1.2, limit within 0.01 of the mid, filled on touch "
        "at the limit: -1.21 (sell 1 XYZ250117P00100000 at 2.06 (bid 2.00 ask 2.10); "
        "buy 1 XYZ250117P00095000 at 0.85 (bid 0.80 ask 0.90))"
    )


@pytest.mark.parametrize(
    ("preference", "rule", "net"),
    [
        (CONSERVATIVE, "mleg_market_at_natural", "-1.10"),
        (MID, "mleg_market_at_mid", "-1.20"),
        (AGGRESSIVE, "mleg_market_at_mid", "-1.20"),
    ],
)
def test_market_spreads_fill_at_once_at_the_natural_or_the_mid(preference, rule, net):
    decision = decide(spread(limit=None, preference=preference))
    assert (decision.action, decision.rule, decision.net_price) == (Action.FILL, rule, D(net))


def test_a_market_spread_waits_beyond_its_collar():
    decision = decide(spread(limit=None, preference=CONSERVATIVE, collar="-1.15"))
    assert (decision.action, decision.rule) == (Action.WAIT, "collar_breached")
    assert decide(spread(limit=None, preference=CONSERVATIVE, collar="-1.10")).net_price == D("-1.10")


def test_a_half_cent_mid_is_rounded_up_toward_the_limit():
    # Buy leg 0.80 x 0.85: natural -1.15, net bid -1.30, mid -1.225.
    table = {**BULL_PUT_QUOTES, "XYZ250117P00095000": ("0.80", "0.85")}
    at_mid = decide(spread(limit="-1.22", preference=MID), table)
    assert (at_mid.rule, at_mid.net_price, at_mid.mid) == ("mleg_limit_at_mid", D("-1.22"), D("-1.225"))
    assert [str(f.price) for f in at_mid.legs] == ["2.05", "0.83"]
    assert decide(spread(limit="-1.23", preference=MID), table).rule == "mleg_limit_below_mid"
    on_touch = decide(spread(limit="-1.23", preference=AGGRESSIVE), table)
    assert (on_touch.rule, on_touch.net_price) == ("mleg_limit_on_touch", D("-1.23"))


def test_ratio_legs_share_the_improvement_and_the_leftover_cent():
    legs = (SpreadLeg("XYZ250117C00100000", BUY, 1), SpreadLeg("XYZ250117C00105000", SELL, 2))
    table = {"XYZ250117C00100000": ("1.00", "1.05"), "XYZ250117C00105000": ("0.40", "0.45")}
    decision = decide(spread(legs, limit="0.25", preference=MID), table)  # natural 0.25, mid 0.175
    assert (decision.net_price, [str(f.price) for f in decision.legs]) == (D("0.18"), ["1.02", "0.42"])
    assert [f.qty for f in decision.legs] == [D(2), D(4)]


def test_a_net_no_whole_cent_leg_prices_make_moves_toward_the_limit_or_waits():
    # 2 x A (1.00 x 1.01) against 3 x B (0.50 x 0.52): natural 0.52, net bid 0.44, mid 0.48;
    # 2a + 3b cents of improvement can make 0, 2, 3, 5, 6 or 8, never the mid's 4.
    legs = (SpreadLeg("XYZ250117C00100000", BUY, 2), SpreadLeg("XYZ250117C00105000", SELL, 3))
    table = {"XYZ250117C00100000": ("1.00", "1.01"), "XYZ250117C00105000": ("0.50", "0.52")}
    moved = decide(spread(legs, limit="0.50", preference=MID), table)
    assert (moved.rule, moved.net_price, [str(f.price) for f in moved.legs]) == (
        "mleg_limit_at_mid",
        D("0.49"),
        ["1.01", "0.51"],
    )
    assert "0.48 moved to 0.49" in moved.explanation
    stuck = decide(spread(legs, limit="0.48", preference=MID), table)
    assert (stuck.action, stuck.rule) == (Action.WAIT, "mleg_not_allocatable")


GATES = [
    ("a leg without a quote", {"drop": "XYZ250117P00095000"}, "no_quote"),
    ("a leg with a zero bid", {"XYZ250117P00095000": ("0", "0.90")}, "unusable_quote"),
    ("a locked leg", {"XYZ250117P00095000": ("0.90", "0.90")}, "unusable_quote"),
    ("a crossed leg", {"XYZ250117P00095000": ("0.95", "0.90")}, "unusable_quote"),
    ("a sub-penny leg", {"XYZ250117P00095000": ("0.805", "0.90")}, "unusable_quote"),
]


@pytest.mark.parametrize(("name", "change", "rule"), GATES, ids=[g[0] for g in GATES])
def test_one_unusable_leg_holds_every_leg(name, change, rule):
    table = dict(BULL_PUT_QUOTES)
    table.pop(change.pop("drop", None), None)
    decision = decide(spread(limit="-1.00", preference=CONSERVATIVE), table, **change)
    assert (decision.action, decision.rule, decision.legs) == (Action.WAIT, rule, ())


def test_a_stale_leg_holds_the_spread():
    order = spread(limit="-1.00", preference=CONSERVATIVE)
    ticks = quotes(BULL_PUT_QUOTES)
    ticks["XYZ250117P00095000"] = dataclasses.replace(ticks["XYZ250117P00095000"], at_ns=MID_SESSION_NS - 3 * SECOND)
    decision = decide_spread(order, ticks, session=SESSION, evaluated_ns=MID_SESSION_NS, max_quote_age_ns=MAX_AGE_NS)
    assert (decision.rule, decision.explanation) == (
        "stale_quote",
        "leg quote too old at evaluation (XYZ250117P00095000 3 s; the maximum is 2 s)",
    )


def test_session_acceptance_and_expiry_gates():
    order = spread(limit="-1.00", preference=CONSERVATIVE)
    assert decide(order, session=None).rule == "market_closed"
    before_open = decide(order, at_ns=OPEN_NS - SECOND, evaluated_ns=OPEN_NS)
    assert before_open.rule == "market_closed"
    late = spread(limit="-1.00", accepted_ns=MID_SESSION_NS + SECOND)
    assert decide(late).rule == "before_acceptance"
    expiring = spread(limit="-1.00", tif=DAY, expires_ns=MID_SESSION_NS)
    assert (decide(expiring).action, decide(expiring).rule) == (Action.EXPIRE, "day_order_expired")


def test_a_quote_after_the_evaluation_is_a_caller_bug():
    with pytest.raises(ValueError):
        decide(spread(), evaluated_ns=MID_SESSION_NS - 1)


INVALID = [
    ("one leg", {"legs": BULL_PUT[:1]}),
    ("a repeated leg", {"legs": (BULL_PUT[0], BULL_PUT[0])}),
    ("a limit without a price", {"kind": LIMIT, "limit": None}),
    ("a stop order", {"kind": OrderType.STOP}),
    ("ioc", {"tif": TimeInForce.IOC}),
    ("half a spread", {"qty": "0.5"}),
    ("a collar on a limit", {"collar": "-1.00"}),
]


@pytest.mark.parametrize(("name", "changes"), INVALID, ids=[i[0] for i in INVALID])
def test_a_malformed_working_spread_is_a_caller_bug(name, changes):
    with pytest.raises(ValueError):
        spread(**changes)


def test_every_rule_returned_is_listed_and_fill_ids_are_deterministic():
    decisions = [
        decide(spread(legs, limit=limit, preference=preference), table)
        for legs, table in ((BULL_PUT, BULL_PUT_QUOTES), (CONDOR, CONDOR_QUOTES))
        for preference in FillPreference
        for limit in ("-1.00", "-1.20", "-1.21", "-1.40", None)
    ]
    assert {d.rule for d in decisions} <= RULES
    ticks = list(quotes(BULL_PUT_QUOTES).values())
    assert spread_fill_id("ord_1", ticks) == spread_fill_id("ord_1", ticks) != spread_fill_id("ord_2", ticks)


def test_allocate_refuses_a_net_outside_the_structures_market():
    legs = [quote(SELL, "2.00", "2.10"), quote(BUY, "0.80", "0.90")]
    assert allocate(D("-1.10"), legs) == (D("2.00"), D("0.90"))
    assert allocate(D("-1.30"), legs) == (D("2.10"), D("0.80"))
    assert allocate(D("-1.09"), legs) is None and allocate(D("-1.31"), legs) is None


def test_a_replay_reproduces_a_spread_fill_only_with_the_same_quotes_rule_net_and_leg_prices():
    order = spread(limit="-1.21", preference=AGGRESSIVE)
    recorded = decide(order)
    fill_id = spread_fill_id(order.order_id, recorded.ticks)
    assert reproduces(decide(order), order.order_id, fill_id, recorded.net_price, recorded.rule, recorded.legs)
    # Other leg quotes (later ones), another rule, net or leg price: not the fill.
    later = decide(order, at_ns=MID_SESSION_NS + SECOND, evaluated_ns=MID_SESSION_NS + SECOND)
    assert later.action is Action.FILL
    assert not reproduces(
        later, order.order_id, fill_id, recorded.net_price, recorded.rule, recorded.legs
    )  # the same prices on other quotes
    assert not reproduces(recorded, order.order_id, fill_id, recorded.net_price, "mleg_limit_at_mid", recorded.legs)
    assert not reproduces(recorded, order.order_id, fill_id, D("-1.20"), recorded.rule, recorded.legs)
    moved = (dataclasses.replace(recorded.legs[0], price=D("2.05")), recorded.legs[1])
    assert not reproduces(recorded, order.order_id, fill_id, recorded.net_price, recorded.rule, moved)
    waiting = decide(spread(limit="-1.22", preference=AGGRESSIVE))
    assert not reproduces(waiting, order.order_id, fill_id, recorded.net_price, recorded.rule, recorded.legs)
