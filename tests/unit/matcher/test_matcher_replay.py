"""Replay (what ExplainFill runs), fill ids, and determinism of whole sessions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matcher.domain import (
    TERMINAL_ACTIONS,
    Action,
    OrderType,
    Side,
    TimeInForce,
    decide,
    evaluated_ticks,
    fill_id,
    replay,
)
from tests.support.matcher import (
    CLOSE_NS,
    MAX_AGE_NS,
    MID_SESSION_NS,
    SECOND,
    SESSION,
    a_tick,
    an_order,
    run_live,
    seeded_day,
    session_for,
)

T = MID_SESSION_NS
BUY_LIMIT = an_order(OrderType.LIMIT, Side.BUY, limit="100.10", accepted_ns=T)
STOP_LIMIT_BUY = an_order(OrderType.STOP_LIMIT, Side.BUY, stop="100.05", limit="100.08", accepted_ns=T)


def _regular_hours(at_ns: int):
    return SESSION if SESSION.open_ns <= at_ns < SESSION.close_ns else None


def _replay(order, feed):
    return replay(order, feed, session_for=_regular_hours, max_quote_age_ns=MAX_AGE_NS)


def _at(seconds: float, bid: str, ask: str, symbol: str = "XYZ", sequence: int = 0):
    return a_tick(bid, ask, at_ns=T + int(seconds * SECOND), symbol=symbol, sequence=sequence)


@pytest.mark.parametrize(
    "order, feed, action, rule, deciding, considered",
    [
        (
            BUY_LIMIT,
            [_at(1, "100.10", "100.20"), _at(2, "100.10", "100.15"), _at(3, "100.00", "100.05")],
            Action.FILL,
            "limit_buy_at_ask",
            2,
            3,
        ),
        # Only the quote standing at acceptance counts among earlier ones: the marketable one before it does not.
        (
            BUY_LIMIT,
            [_at(-3, "100.00", "100.05"), _at(-1, "100.10", "100.20"), _at(1, "100.00", "100.10")],
            Action.FILL,
            "limit_buy_at_ask",
            2,
            2,
        ),
        (BUY_LIMIT, [_at(-0.5, "100.00", "100.05"), _at(1, "100.00", "100.06")], Action.FILL, "limit_buy_at_ask", 0, 1),
        # The trigger carries over: the second tick alone would not reach the stop.
        (
            STOP_LIMIT_BUY,
            [_at(1, "100.00", "100.10"), _at(2, "99.98", "100.02")],
            Action.FILL,
            "stop_limit_buy_at_ask",
            1,
            2,
        ),
        (
            BUY_LIMIT,
            [
                _at(1, "100", "100.20", symbol="ABC"),
                _at(2, "100.10", "100.20"),
                _at(3, "100", "100.05", symbol="ABC"),
                _at(4, "100.00", "100.05"),
            ],
            Action.FILL,
            "limit_buy_at_ask",
            3,
            2,
        ),
        (
            BUY_LIMIT,
            [_at(1, "100.10", "100.20"), _at(2, "100.10", "100.30")],
            Action.WAIT,
            "limit_buy_not_marketable",
            1,
            2,
        ),
        (
            an_order(OrderType.MARKET, Side.BUY, tif=TimeInForce.IOC, accepted_ns=T),
            [_at(1, "100.10", "100.10"), _at(2, "100", "100.10")],
            Action.FILL,
            "market_buy_at_ask",
            1,
            2,
        ),
        (
            an_order(OrderType.LIMIT, Side.BUY, limit="99", tif=TimeInForce.DAY, expires_ns=CLOSE_NS, accepted_ns=T),
            [_at(1, "100", "100.10"), a_tick("98", "98.10", at_ns=CLOSE_NS + SECOND)],
            Action.EXPIRE,
            "day_order_expired",
            1,
            2,
        ),
    ],
    ids=[
        "fills on the first marketable tick",
        "standing quote only",
        "fills on the standing quote",
        "tracks the trigger",
        "other symbols ignored",
        "never decided",
        "ioc after an unusable quote",
        "expires after its close",
    ],
)
def test_replay_returns_the_deciding_tick_and_how_many_were_evaluated(order, feed, action, rule, deciding, considered):
    decision, count = _replay(order, feed)
    assert (decision.action, decision.rule, decision.tick, count) == (action, rule, feed[deciding], considered)


def test_the_trigger_is_what_lets_the_later_tick_fill():
    later = _at(2, "99.98", "100.02")
    alone = decide(STOP_LIMIT_BUY, later, session=SESSION, evaluated_ns=later.at_ns, max_quote_age_ns=MAX_AGE_NS)
    assert alone.rule == "stop_limit_buy_not_reached"


def test_the_ticks_evaluated_are_the_standing_quote_at_acceptance_then_every_later_one():
    feed = [
        _at(-3, "100", "100.05", sequence=1),
        _at(-1, "100", "100.06", sequence=2),
        _at(-0.5, "100", "100.07", symbol="ABC", sequence=3),
        _at(0, "100", "100.08", sequence=4),
        _at(2, "100", "100.09", sequence=5),
    ]
    assert list(evaluated_ticks(BUY_LIMIT, feed)) == [(feed[1], T), (feed[3], T), (feed[4], T + 2 * SECOND)]
    assert list(evaluated_ticks(BUY_LIMIT, feed[:2])) == [(feed[1], T)]


def test_replay_without_a_quote_of_the_symbol_says_so():
    decision, count = _replay(BUY_LIMIT, [_at(1, "100", "100.05", symbol="ABC")])
    assert (decision.action, decision.rule, decision.tick, count) == (Action.WAIT, "no_quote", None, 0)


def test_replay_refuses_ticks_out_of_feed_order():
    with pytest.raises(ValueError):
        _replay(BUY_LIMIT, [_at(2, "100.10", "100.20"), _at(1, "100.10", "100.20")])


def test_fill_ids_derive_from_the_order_and_the_tick():
    tick = _at(1, "100", "100.05", sequence=7)
    same = fill_id("ord_1", _at(1, "100", "100.05", sequence=7))
    assert fill_id("ord_1", tick) == same and same.startswith("fill_")
    others = {
        fill_id("ord_2", tick),
        fill_id("ord_1", _at(1, "100", "100.05", sequence=8)),
        fill_id("ord_1", _at(2, "100", "100.05", sequence=7)),
    }
    assert same not in others and len(others) == 3


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32))
def test_replay_explains_every_live_decision_exactly(seed):
    """ExplainFill's promise: replaying the feed for an order reproduces what the live book
    decided, on the same tick, and counts the ticks evaluated up to it."""
    orders, feed = seeded_day(seed)
    accepted = {order.order_id: order for order in orders}
    for outcome in run_live(orders, feed):
        if outcome.decision.action not in TERMINAL_ACTIONS:
            continue
        order = accepted[outcome.order.order_id]
        decision, considered = replay(order, feed, session_for=session_for, max_quote_age_ns=MAX_AGE_NS)
        assert decision == outcome.decision
        own = [tick for tick in feed if tick.symbol == order.symbol]
        evaluated = [tick for tick in own if tick.at_ns < order.accepted_ns][-1:] + [
            tick for tick in own if tick.at_ns >= order.accepted_ns
        ]
        assert decision.tick is evaluated[considered - 1]


def test_a_session_replayed_twice_gives_identical_results():
    first, second = run_live(*seeded_day(11)), run_live(*seeded_day(11))
    assert first == second
    assert repr(first) == repr(second)
    assert len(first) > 20


def test_results_do_not_depend_on_the_interpreter_hash_seed():
    script = "from tests.support.matcher import run_live, seeded_day; print(repr(run_live(*seeded_day(11))))"
    root = Path(__file__).resolve().parents[3]
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"PYTHONHASHSEED": hash_seed},
        ).stdout
        for hash_seed in ("1", "2")
    }
    assert outputs == {repr(run_live(*seeded_day(11))) + "\n"}
