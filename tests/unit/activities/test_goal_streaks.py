"""Each profile's weekly goal and the streak it makes (pure rules)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.activities.domain import Activity, judge_week, next_streak, nudge_text, summarize_week
from services.common.trading import Side

AT = datetime(2012, 6, 21, 15, tzinfo=UTC)


def fill(symbol: str, side: Side, net: str) -> Activity:
    """A single-leg fill's activity (each its own fill)."""
    fill_id = f"fill_{symbol}_{side.value}"
    return Activity(
        "act_x", "u", "acc", "fill", symbol, "ord", fill_id, side, Decimal(1), Decimal(1), Decimal(net), "", AT, AT
    )


def test_income_builder_counts_only_the_premium_its_option_sells_collected():
    fills = [
        fill("AMZN120720C00230000", Side.SELL, "60.00"),
        fill("AMZN120720P00200000", Side.SELL, "45.00"),
        fill("AMZN120720P00190000", Side.BUY, "-20.00"),  # bought back: not premium collected
        fill("AMZN", Side.SELL, "2200.00"),  # a stock sale is not premium
    ]
    week = summarize_week(fills, [])
    assert week.premium_collected == Decimal("105.00")
    verdict = judge_week("income_builder", week)
    assert verdict.met and verdict.progress == "$105.00 of option premium collected (goal: at least $100.00)"
    assert not judge_week("income_builder", summarize_week(fills[:1], [])).met


def test_diversifier_counts_underlyings_and_trial_counts_trades():
    symbols = ["AMZN", "AMZN120720C00230000", "GOOG", "SPY", "QQQ"]
    assert not judge_week("diversifier", summarize_week([], symbols)).met  # four underlyings
    assert judge_week("diversifier", summarize_week([], [*symbols, "IWM"])).met
    assert not judge_week("trial", summarize_week([], symbols)).met
    assert judge_week("trial", summarize_week([fill("AMZN", Side.BUY, "-1")], [])).met
    with pytest.raises(ValueError):
        judge_week("day_trader", summarize_week([], []))


def test_a_streak_grows_while_met_and_ends_when_not():
    assert [next_streak(0, True), next_streak(3, True), next_streak(3, False)] == [1, 4, 0]
    met = judge_week("trial", summarize_week([fill("AMZN", Side.BUY, "-1")], []))
    missed = judge_week("trial", summarize_week([], []))
    assert nudge_text(met, 4, 3).endswith("Your streak continues: 4 weeks in a row.")
    assert nudge_text(missed, 0, 3).endswith("Your 3-week streak ends; next week's goal starts a new one.")
    assert nudge_text(missed, 0, 0).endswith("Next week's goal starts a streak.")
