"""The event-jump path and the tick-by-tick path (the live matcher's book on every tick)
give identical backtests: same orders, fills, ledger, equity and refusals."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.matcher.backtest.engine import Backtest, BacktestConfig
from tests.support.backtest import CLOSE_NS, NEXT_OPEN_NS, OPEN_NS, SECOND, Scripted, cents, feed_of, quote

SYMBOLS = ("AAA", "BBB")
START_NS = OPEN_NS - 1800 * SECOND  # half an hour before the open
END_NS = NEXT_OPEN_NS + 3600 * SECOND  # an hour into the next session
KINDS = ("market", "limit", "stop", "stop_limit")
TIFS = ("day", "gtc", "ioc", "fok")


@st.composite
def quotes(draw):
    """A random walk per symbol in cents around $100, with crossed, locked and empty
    quotes, ties in time, quotes outside the session, and sizes that matter to fok."""
    count = draw(st.integers(5, 120))
    at_ns = START_NS + draw(st.integers(0, 3600)) * SECOND
    mids = dict.fromkeys(SYMBOLS, 10000)
    sequences = dict.fromkeys(SYMBOLS, 0)
    ticks = []
    for _ in range(count):
        at_ns += draw(st.sampled_from((0, 1, 1_000, SECOND, 7 * SECOND, 600 * SECOND, 4 * 3600 * SECOND)))
        if at_ns > END_NS:
            break
        symbol = draw(st.sampled_from(SYMBOLS))
        mids[symbol] += draw(st.integers(-6, 6))
        half = draw(st.sampled_from((1, 1, 1, 2, 3, 0, -1)))
        bid, ask = mids[symbol] - half, mids[symbol] + half
        if draw(st.integers(0, 30)) == 0:
            bid = 0
        sequences[symbol] += 1
        ticks.append(
            quote(
                symbol,
                at_ns,
                sequences[symbol],
                bid,
                ask,
                draw(st.sampled_from((50, 100, 500))),
                draw(st.sampled_from((50, 100, 500))),
            )
        )
    return ticks


@st.composite
def actions(draw):
    result = []
    for n in range(draw(st.integers(1, 25))):
        at_ns = START_NS + draw(st.integers(0, (END_NS - START_NS) // SECOND)) * SECOND
        verb = draw(st.sampled_from(("submit", "submit", "submit", "cancel", "replace")))
        client_order_id = f"c{draw(st.integers(0, n))}"
        if verb == "cancel":
            result.append((at_ns, verb, {"client_order_id": client_order_id}))
            continue
        kind = draw(st.sampled_from(KINDS))
        fields = {"client_order_id": client_order_id}
        if kind in ("limit", "stop_limit"):
            fields["limit_price"] = cents(10_000 + draw(st.integers(-15, 15)))
        if kind in ("stop", "stop_limit"):
            fields["stop_price"] = cents(10_000 + draw(st.integers(-15, 15)))
        if verb == "replace":
            fields["qty"] = str(draw(st.sampled_from((10, 100, 200))))
            fields.pop("stop_price", None) if draw(st.booleans()) else None
        else:
            fields.update(
                symbol=draw(st.sampled_from(SYMBOLS)),
                side=draw(st.sampled_from(("buy", "sell"))),
                qty=str(draw(st.sampled_from((10, 100, 200)))),
                order_type=kind,
                time_in_force=draw(st.sampled_from(TIFS)),
            )
            fields["client_order_id"] = f"c{n}"
        result.append((at_ns, verb, fields))
    return sorted(result, key=lambda a: a[0])


def backtest(ticks, script, mode: str, account_type: str, take_profit: bool, quotes: tuple[str, ...] = ()):
    strategy = Scripted(actions=script, take_profit=take_profit, quotes=quotes)
    config = BacktestConfig(
        start_ns=START_NS,
        end_ns=END_NS,
        account_type=account_type,
        starting_cash=Decimal("50000.00"),
        max_quote_age_ns=5 * SECOND,
        mode=mode,
    )
    return Backtest(feed_of(ticks), strategy, config).run(), strategy


def run(ticks, script, mode: str, account_type: str, take_profit: bool, quotes: tuple[str, ...] = ()):
    result, strategy = backtest(ticks, script, mode, account_type, take_profit, quotes)
    return (
        [dataclasses.astuple(o) for o in result.orders],
        [dataclasses.astuple(f) for f in result.fills],
        [dataclasses.astuple(e) for e in result.ledger],
        [dataclasses.astuple(p) for p in result.equity],
        result.exposure,
        strategy.refusals,
        strategy.seen,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ticks=quotes(),
    script=actions(),
    account_type=st.sampled_from(("cash", "margin")),
    take_profit=st.booleans(),
    watched=st.sampled_from(((), ("AAA",), SYMBOLS)),
)
def test_jumping_from_event_to_event_gives_what_every_tick_gives(ticks, script, account_type, take_profit, watched):
    jumping = run(ticks, script, "jump", account_type, take_profit, watched)
    every_tick = run(ticks, script, "tick", account_type, take_profit, watched)
    assert jumping == every_tick


def test_the_scenarios_do_fill_trigger_cancel_and_expire():
    """The generators reach the rules that matter (a guard against a vacuous property)."""
    at = OPEN_NS + 60 * SECOND
    ticks = [quote("AAA", at + k * SECOND, k + 1, 9_990 + k, 9_992 + k) for k in range(30)]
    ticks.append(quote("AAA", CLOSE_NS + SECOND, 31, 10_000, 10_002))
    script = [
        (
            at,
            "submit",
            {
                "client_order_id": "limit",
                "symbol": "AAA",
                "side": "buy",
                "qty": "10",
                "order_type": "limit",
                "limit_price": "99.95",
                "time_in_force": "day",
            },
        ),
        (
            at,
            "submit",
            {
                "client_order_id": "stop",
                "symbol": "AAA",
                "side": "buy",
                "qty": "10",
                "order_type": "stop_limit",
                "stop_price": "100.05",
                "limit_price": "100.00",
                "time_in_force": "day",
            },
        ),
        (
            at + 2 * SECOND,
            "submit",
            {
                "client_order_id": "ioc",
                "symbol": "AAA",
                "side": "buy",
                "qty": "10",
                "order_type": "limit",
                "limit_price": "99.00",
                "time_in_force": "ioc",
            },
        ),
        (
            at + 3 * SECOND,
            "submit",
            {
                "client_order_id": "rest",
                "symbol": "AAA",
                "side": "buy",
                "qty": "10",
                "order_type": "limit",
                "limit_price": "90.00",
                "time_in_force": "day",
            },
        ),
    ]
    result, _ = backtest(ticks, script, "jump", "cash", False)
    by_client = {o.client_order_id: o for o in result.orders}
    assert by_client["limit"].status == "filled"
    assert by_client["stop"].status == "expired" and by_client["stop"].triggered_ns > 0  # triggered, then the close
    assert by_client["ioc"].status == "canceled" and by_client["ioc"].cancel_reason == "ioc_not_marketable"
    assert by_client["rest"].status == "expired"
    assert [f.order_id for f in result.fills] == [by_client["limit"].order_id]
    assert run(ticks, script, "tick", "cash", False) == run(ticks, script, "jump", "cash", False)
