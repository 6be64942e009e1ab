"""Backtests trade single-leg options: model quotes in the feed (the replay's model), the
orders service's option rules, the accounts domain's option buying power, fills at the
contract multiplier and expirations at each expiry's close. The weekly covered call runs
over two weeks of the bundled replay (2012-06-21 played again on every following session)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from services.accounts.domain.rules import contract_multiplier
from services.common.config import Settings
from services.common.errors import DomainError
from services.matcher.backtest.feed import Feed
from services.matcher.backtest.model import BacktestSpec
from services.matcher.backtest.runs import Outcome, build_strategy, execute, recorded
from services.matcher.backtest.strategy import Context, OptionQuotes, Strategy

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = Settings.from_env({})
TWO_WEEKS = (date(2012, 6, 21), date(2012, 6, 29))  # Thursday to the next week's Friday
EXPIRATION_KINDS = {"exercised", "assigned", "cash_settled", "expired_worthless"}


def covered_call(feed: Feed | None = None, mode: str = "jump", **params: str) -> Outcome:
    spec = BacktestSpec(
        first_day=TWO_WEEKS[0], last_day=TWO_WEEKS[1], strategy="covered_call", params=params, mode=mode
    )
    strategy = build_strategy(spec)
    return execute(spec, strategy, feed or recorded(spec, strategy, SETTINGS), SETTINGS)


@pytest.fixture(scope="module")
def in_the_money() -> Feed:
    spec = BacktestSpec(
        first_day=TWO_WEEKS[0], last_day=TWO_WEEKS[1], strategy="covered_call", params={"otm_pct": "-3"}
    )
    return recorded(spec, build_strategy(spec), SETTINGS)


@pytest.fixture(scope="module")
def assigned(in_the_money) -> Outcome:
    return covered_call(in_the_money, otm_pct="-3")  # in the money: the calls are assigned


def test_the_covered_call_runs_the_same_on_both_paths(in_the_money, assigned):
    every_tick = covered_call(in_the_money, mode="tick", otm_pct="-3")
    assert every_tick.result.fills == assigned.result.fills
    assert every_tick.result.ledger == assigned.result.ledger
    assert {k: v for k, v in every_tick.files.items() if k != "report.html"} == {
        k: v for k, v in assigned.files.items() if k != "report.html"
    }


def signed(side: str, amount: Decimal) -> Decimal:
    return amount if side == "sell" else -amount


def assert_cash_reconciles(outcome: Outcome) -> None:
    result = outcome.result
    fills = sum((signed(f.side, f.qty * f.price * contract_multiplier(f.symbol)) for f in result.fills), Decimal(0))
    legs = [e for e in result.ledger if e.kind in EXPIRATION_KINDS]
    delivered = sum((signed(e.side, e.qty * e.price * e.multiplier) for e in legs), Decimal(0))
    assert result.final.cash == result.config.starting_cash + fills + delivered
    running = Decimal(0)
    for entry in result.ledger:
        running += entry.cash_delta
        assert entry.cash_after == running
        if entry.kind == "fill":
            assert entry.cash_delta == signed(entry.side, entry.qty * entry.price * entry.multiplier)


def test_the_covered_call_collects_premiums_and_is_assigned_then_buys_the_shares_again(assigned):
    result = assigned.result
    calls = [f for f in result.fills if f.symbol.startswith("AMZN12")]
    # one call sold each week, each expiring that Friday, for a premium x 100
    assert [f.symbol for f in calls] == ["AMZN120622C00220000", "AMZN120629C00220000"]
    premiums = [e for e in result.ledger if e.kind == "fill" and e.symbol in {f.symbol for f in calls}]
    assert all(e.side == "sell" and e.multiplier == 100 and e.cash_delta == e.price * 100 > 0 for e in premiums)
    # assigned at each Friday's close: the call closes at 0 and 100 shares go at the strike
    assignments = [e for e in result.ledger if e.kind == "assigned"]
    assert [(e.symbol, e.side, e.qty, e.price) for e in assignments] == [
        ("AMZN120622C00220000", "buy", 1, 0),
        ("AMZN", "sell", 100, 220),
        ("AMZN120629C00220000", "buy", 1, 0),
        ("AMZN", "sell", 100, 220),
    ]
    assert assignments[1].occurred_at_ns == result.sessions[1][1].close_ns  # Friday 2012-06-22's close
    # the shares were bought again the next session, and nothing is left open at the end
    buys = [f for f in result.fills if f.symbol == "AMZN"]
    assert len(buys) == 2 and all(f.side == "buy" and f.qty == 100 for f in buys)
    assert result.final.positions == {} and result.final.held == 0
    assert_cash_reconciles(assigned)
    # each assignment's two legs close positions: trades in the statistics, premiums won
    assert assigned.statistics.trades == 4


def test_an_out_of_the_money_call_expires_worthless_and_the_shares_stay():
    outcome = covered_call()  # 2% above the market
    result = outcome.result
    sold = [f for f in result.fills if f.symbol.startswith("AMZN12")]
    assert sold and all(f.side == "sell" and f.price > 0 for f in sold)
    worthless = [e for e in result.ledger if e.kind == "expired_worthless"]
    assert [e.symbol for e in worthless] == [f.symbol for f in sold]
    assert all(e.cash_delta == 0 and e.price == 0 for e in worthless)
    assert set(result.final.positions) == {"AMZN"} and result.final.positions["AMZN"].qty == 100
    assert_cash_reconciles(outcome)


HASH_SCRIPT = """
import hashlib, json
from datetime import date
from services.accounts.domain.rules import contract_multiplier
from services.common.config import Settings
from services.matcher.backtest.feed import Feed
from services.matcher.backtest.model import BacktestSpec
from services.matcher.backtest.runs import build_strategy, execute, recorded
settings = Settings.from_env({})
spec = BacktestSpec(first_day=date(2012, 6, 21), last_day=date(2012, 6, 29), strategy="covered_call",
                    params={"otm_pct": "-3"})
strategy = build_strategy(spec)
outcome = execute(spec, strategy, recorded(spec, strategy, settings), settings)
print(json.dumps({name: hashlib.sha256(data).hexdigest() for name, data in sorted(outcome.files.items())}))
"""


def test_the_covered_call_results_are_byte_identical_across_runs_and_hash_seeds(assigned):
    env = {**os.environ, "PYTHONHASHSEED": "7"}
    done = subprocess.run(
        [sys.executable, "-c", HASH_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=True
    )
    other = done.stdout.strip().splitlines()[-1]
    mine = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(assigned.files.items())}
    assert json.loads(other) == mine
    assert {"ledger.csv", "fills.csv", "report.html"} <= set(mine)


class Refusals(Strategy):
    """Sends option orders the live API refuses, on Monday 2012-06-25 at 10:00 New York."""

    name = "refusals"
    symbols = ("AMZN",)
    options = (OptionQuotes("AMZN", "call", Decimal("-0.02"), Decimal("0.02"), days_after=7, days_before=4),)

    def __init__(self) -> None:
        super().__init__()
        self.refused: dict[str, DomainError] = {}
        self.accepted: list[str] = []

    def on_start(self, ctx: Context) -> None:
        ctx.schedule(1340632800 * 1_000_000_000, self.orders)  # 2012-06-25 14:00 UTC

    def orders(self, ctx: Context) -> None:
        this_week = "AMZN120629C00220000"
        quote = ctx.quote(this_week)
        assert quote is not None and quote.bid >= 3  # the $0.05 grid applies from $3.00
        cases = {
            "expired": {"symbol": "AMZN120622C00220000", "side": "buy", "qty": "1", "limit_price": "1.00"},
            "off_grid": {
                "symbol": this_week,
                "side": "buy",
                "qty": "1",
                "limit_price": str(quote.bid + Decimal("0.01")),
            },
            "fraction": {"symbol": this_week, "side": "buy", "qty": "0.5", "limit_price": str(quote.bid)},
            "naked": {"symbol": this_week, "side": "sell", "qty": "1", "limit_price": str(quote.bid)},
            "intent": {
                "symbol": this_week,
                "side": "sell",
                "qty": "1",
                "limit_price": str(quote.bid),
                "position_intent": "sell_to_close",
            },
            "bought": {"symbol": this_week, "side": "buy", "qty": "1", "limit_price": str(quote.ask)},
        }
        for name, fields in cases.items():
            try:
                order = ctx.submit(order_type="limit", time_in_force="day", **fields)
            except DomainError as refusal:
                self.refused[name] = refusal
            else:
                self.accepted.append(order.status)


def test_option_orders_are_refused_in_a_backtest_for_the_live_reasons():
    spec = BacktestSpec(first_day=date(2012, 6, 21), last_day=date(2012, 6, 25), strategy="refusals")
    strategy = Refusals()
    outcome = execute(spec, strategy, recorded(spec, strategy, SETTINGS), SETTINGS)
    refused = {name: (e.reason, e.metadata.get("field", "")) for name, e in strategy.refused.items()}
    assert refused == {
        "expired": ("CONTRACT_EXPIRED", "symbol"),
        "off_grid": ("INVALID_ARGUMENT", "limit_price"),
        "fraction": ("INVALID_ARGUMENT", "qty"),
        "naked": ("UNCOVERED_OPTION_NOT_ALLOWED", ""),  # a cash account sells calls its shares cover
        "intent": ("INVALID_ARGUMENT", ""),  # nothing held to close: the order is rejected, as live
    }
    assert "position_intent" in strategy.refused["intent"].message or "close" in strategy.refused["intent"].message
    assert "off the option price grid" in strategy.refused["off_grid"].message
    # a buy to open at the ask works (the model's latest quote may be older than the
    # staleness bound, as on the live stream), fills, and pays 100 shares a contract
    assert strategy.accepted == ["accepted"]
    (order,) = [o for o in outcome.result.orders if o.status != "rejected"]
    assert order.status == "filled"
    (fill,) = outcome.result.fills
    assert fill.symbol == "AMZN120629C00220000" and fill.side == "buy"
    bought = next(e for e in outcome.result.ledger if e.kind == "fill")
    assert bought.multiplier == 100 and bought.cash_delta == -fill.price * 100


def test_a_script_naming_a_contract_gets_its_model_quotes_and_trades_it():
    script = {
        "steps": [
            {
                "at": "2012-06-21T14:00:00Z",
                "submit": {
                    "client_order_id": "stock",
                    "symbol": "AMZN",
                    "side": "buy",
                    "qty": "100",
                    "order_type": "market",
                    "time_in_force": "day",
                },
            },
            {
                "after_fill": "stock",
                "submit": {
                    "client_order_id": "call",
                    "symbol": "AMZN120720C00230000",
                    "side": "sell",
                    "qty": "1",
                    "order_type": "market",
                    "time_in_force": "day",
                    "position_intent": "sell_to_open",
                },
            },
        ]
    }
    spec = BacktestSpec(first_day=date(2012, 6, 21), last_day=date(2012, 6, 21), script=script)
    strategy = build_strategy(spec)
    feed = recorded(spec, strategy, SETTINGS)
    assert set(feed.options) == {"AMZN120720C00230000"}
    outcome = execute(spec, strategy, feed, SETTINGS)
    call = next(f for f in outcome.result.fills if f.symbol == "AMZN120720C00230000")
    assert call.side == "sell" and call.price == call.bid_price > 0  # a market sell at the model's bid
    assert outcome.result.final.positions["AMZN120720C00230000"].qty == -1
    assert_cash_reconciles(outcome)


def test_a_gtc_order_on_a_contract_expires_at_its_last_close_in_a_backtest_as_live():
    """As the orders service (issue 11): the gtc put on the 2012-06-22 contract stops working
    at Friday's close (``contract_expired``, its hold released); the July one keeps working."""

    def resting_put(client_order_id: str, symbol: str) -> dict:
        return {
            "at": "2012-06-21T14:00:00Z",
            "submit": {"client_order_id": client_order_id, "symbol": symbol, "side": "sell", "qty": "1"}
            | {"order_type": "limit", "limit_price": "50.00", "time_in_force": "gtc"},
        }

    script = {"steps": [resting_put("friday", "AMZN120622P00180000"), resting_put("july", "AMZN120720P00180000")]}
    spec = BacktestSpec(first_day=date(2012, 6, 21), last_day=date(2012, 6, 25), script=script)
    strategy = build_strategy(spec)
    outcome = execute(spec, strategy, recorded(spec, strategy, SETTINGS), SETTINGS)
    orders = {o.client_order_id: o for o in outcome.result.orders}
    friday_close_ns = 1340395200 * 1_000_000_000  # 2012-06-22T20:00:00Z
    assert (orders["friday"].status, orders["friday"].cancel_reason) == ("expired", "contract_expired")
    assert orders["friday"].expired_ns == friday_close_ns
    assert (orders["july"].status, orders["july"].cancel_reason) == ("accepted", "")
    assert outcome.result.fills == []
    # Only the July put's strike stays held.
    assert outcome.result.final.held == Decimal(18000)
