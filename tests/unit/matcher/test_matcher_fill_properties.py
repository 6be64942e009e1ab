"""Invariants of the fill function over generated orders, quotes, sessions and ages."""

from __future__ import annotations

import copy

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from services.matcher.domain import (
    RULES,
    Action,
    OrderType,
    Side,
    TimeInForce,
    decide,
    in_session,
    is_expired,
    is_stale,
    is_usable,
    stop_reached,
)
from tests.support.matcher import SECOND, SHORT_SESSION, TICK_TIMES, ticks, working_orders

EXAMPLES = settings(max_examples=250, deadline=None)
SESSIONS = st.sampled_from([SHORT_SESSION] * 5 + [None])
AGES = st.sampled_from([0, 0, 0, SECOND // 2, 3 * SECOND])
MAX_AGES = st.sampled_from([0, SECOND, 2 * SECOND])
ORDERS = working_orders()


@st.composite
def scenarios(draw):
    at_ns = draw(TICK_TIMES)
    return {
        "order": draw(ORDERS),
        "tick": draw(ticks(at_ns)),
        "session": draw(SESSIONS),
        "evaluated_ns": at_ns + draw(AGES),
        "max_quote_age_ns": draw(MAX_AGES),
    }


def _decide(scenario):
    return decide(
        scenario["order"],
        scenario["tick"],
        session=scenario["session"],
        evaluated_ns=scenario["evaluated_ns"],
        max_quote_age_ns=scenario["max_quote_age_ns"],
    )


def _gates_open(scenario) -> bool:
    order, tick, evaluated_ns = scenario["order"], scenario["tick"], scenario["evaluated_ns"]
    return (
        not is_expired(order, evaluated_ns)
        and evaluated_ns >= order.accepted_ns
        and in_session(scenario["session"], tick, evaluated_ns)
        and is_usable(tick)
        and not is_stale(tick, evaluated_ns, scenario["max_quote_age_ns"])
    )


def _not_beyond(order, price, bound) -> bool:
    """A buy pays at most `bound`, a sell receives at least it."""
    return price <= bound if order.side is Side.BUY else price >= bound


@EXAMPLES
@given(scenarios())
def test_a_buy_never_fills_above_its_limit_nor_a_sell_below(scenario):
    decision, order = _decide(scenario), scenario["order"]
    if decision.action is Action.FILL and order.limit_price is not None:
        assert _not_beyond(order, decision.price, order.limit_price)


@EXAMPLES
@given(scenarios())
def test_a_fill_is_at_the_touch_of_the_tick_it_names(scenario):
    decision, order, tick = _decide(scenario), scenario["order"], scenario["tick"]
    if decision.action is Action.FILL:
        assert decision.tick is tick
        assert decision.price == (tick.ask if order.side is Side.BUY else tick.bid)
        assert decision.price in (tick.bid, tick.ask)


@EXAMPLES
@given(scenarios())
def test_the_collar_is_never_breached(scenario):
    decision, order = _decide(scenario), scenario["order"]
    if decision.action is Action.FILL and order.collar_price is not None:
        assert _not_beyond(order, decision.price, order.collar_price)


@EXAMPLES
@given(scenarios())
def test_fills_and_triggers_need_a_usable_fresh_in_session_quote_before_expiry(scenario):
    decision = _decide(scenario)
    if decision.action in (Action.FILL, Action.TRIGGER, Action.CANCEL):
        assert _gates_open(scenario)


@EXAMPLES
@given(scenarios())
def test_ioc_and_fok_are_decided_on_their_first_usable_tick(scenario):
    decision, order = _decide(scenario), scenario["order"]
    if order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK) and _gates_open(scenario):
        assert decision.action in (Action.FILL, Action.CANCEL)


@EXAMPLES
@given(scenarios())
def test_a_stop_fills_only_once_reached(scenario):
    decision, order, tick = _decide(scenario), scenario["order"], scenario["tick"]
    if decision.action is Action.FILL and order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        assert order.triggered or stop_reached(order.side, order.stop_price, tick)


@EXAMPLES
@given(scenarios())
def test_a_fok_fill_had_its_size_displayed(scenario):
    decision, order, tick = _decide(scenario), scenario["order"], scenario["tick"]
    if decision.action is Action.FILL and order.time_in_force is TimeInForce.FOK:
        assert (tick.ask_size if order.side is Side.BUY else tick.bid_size) >= order.qty


@EXAMPLES
@given(scenarios())
def test_decisions_are_well_formed(scenario):
    decision = _decide(scenario)
    assert decision.rule in RULES
    assert (decision.price is not None) == (decision.action is Action.FILL)
    assert decision.tick is scenario["tick"]
    assert decision.explanation and "\n" not in decision.explanation


@EXAMPLES
@given(scenarios())
def test_same_inputs_give_the_same_decision_byte_for_byte(scenario):
    first, again, rebuilt = _decide(scenario), _decide(scenario), _decide(copy.deepcopy(scenario))
    assert first == again == rebuilt
    assert repr(first) == repr(again) == repr(rebuilt)


def test_the_scenarios_reach_every_action_and_the_limit_and_collar_boundaries():
    """Guards the properties above against a generator that never fills, nor at a boundary."""
    seen = set()

    @settings(max_examples=600, deadline=None, database=None, derandomize=True, phases=[Phase.generate])
    @given(scenarios())
    def record(scenario):
        decision, order = _decide(scenario), scenario["order"]
        seen.add(decision.action)
        seen.add(decision.rule)
        if decision.action is Action.FILL:
            seen.add(("fill at", decision.price == order.limit_price, decision.price == order.collar_price))

    record()
    assert set(Action) <= seen
    assert {("fill at", True, False), ("fill at", False, True), "fok_size_not_displayed"} <= seen
