"""The graduation gate's rules: cycles from the account's opening, judged by the change in
equity between the EOD snapshots at their boundaries (so an open losing position counts),
complete once over with a snapshot at their end, N profitable in a row (the latest ones), or
an operator's override."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from services.accounts.domain.graduation import (
    BY_CYCLES,
    BY_OVERRIDE,
    Override,
    complete_cycles,
    cycle_days_from,
    judge,
)

OPENED = date(2012, 6, 1)  # a Friday
START = Decimal("10000")


def test_cycles_are_counted_from_the_opening_and_only_those_over_count():
    assert cycle_days_from(OPENED, date(2012, 6, 15), 7) == [
        (date(2012, 6, 1), date(2012, 6, 7)),
        (date(2012, 6, 8), date(2012, 6, 14)),
    ]
    assert cycle_days_from(OPENED, date(2012, 6, 14), 7) == [(date(2012, 6, 1), date(2012, 6, 7))]


def test_a_cycle_runs_from_the_snapshot_before_it_to_its_last_one_and_starts_from_the_starting_cash():
    equity = {
        date(2012, 6, 1): Decimal("10010"),
        date(2012, 6, 6): Decimal("10050"),  # the first cycle's last snapshot (7th: no EOD yet)
        date(2012, 6, 8): Decimal("10040"),
        date(2012, 6, 13): Decimal("10030.50"),
    }
    first, second = complete_cycles(OPENED, date(2012, 6, 15), START, equity, 7)
    assert (first.start_equity, first.end_equity, first.profit_loss) == (START, Decimal("10050"), Decimal("50"))
    assert (second.start_equity, second.end_equity, second.profit_loss) == (
        Decimal("10050"),
        Decimal("10030.50"),
        Decimal("-19.50"),
    )


def test_a_cycle_without_a_snapshot_at_its_end_is_not_complete():
    equity = {date(2012, 6, 5): Decimal("10100")}
    # The second cycle is over but its EOD has not been written: only the first is complete.
    [only] = complete_cycles(OPENED, date(2012, 6, 15), START, equity, 7)
    assert (only.first, only.profit_loss) == (OPENED, Decimal("100"))
    # No snapshot at all: nothing is complete, whatever the days.
    assert complete_cycles(OPENED, date(2012, 7, 1), START, {}, 7) == []
    # A one-day cycle on a weekend has no session: not complete, and Monday's cycle starts
    # from Friday's snapshot.
    weekend = {date(2012, 6, 1): Decimal("10001"), date(2012, 6, 4): Decimal("10003")}
    cycles = complete_cycles(OPENED, date(2012, 6, 5), START, weekend, 1)
    assert [(c.first, c.start_equity, c.profit_loss) for c in cycles] == [
        (date(2012, 6, 1), START, Decimal("1")),
        (date(2012, 6, 4), Decimal("10001"), Decimal("2")),
    ]


def test_n_profitable_cycles_in_a_row_graduate_and_a_losing_one_resets_the_run():
    equity = {
        date(2012, 6, 7): Decimal("10050"),  # cycle 1: +50
        date(2012, 6, 14): Decimal("10040"),  # cycle 2: -10
        date(2012, 6, 21): Decimal("10044"),  # cycle 3: +4
        date(2012, 6, 28): Decimal("10044.01"),  # cycle 4: +0.01
    }
    gate = judge(OPENED, date(2012, 6, 29), START, equity, required=2, cycle_days=7, override=None)
    assert (gate.eligible, gate.basis, gate.consecutive_profitable) == (True, BY_CYCLES, 2)
    assert [c.profit_loss for c in gate.cycles] == [Decimal("0.01"), Decimal("4")]
    three = judge(OPENED, date(2012, 6, 29), START, equity, required=3, cycle_days=7, override=None)
    assert (three.eligible, three.basis, three.consecutive_profitable) == (False, "", 2)
    assert [c.profitable for c in three.cycles] == [True, True, False]


def test_an_open_losing_position_makes_a_cycle_with_a_realized_gain_a_loss():
    # The cycle realized +0.10 but still holds shares marked 5.00 below their cost at its
    # close: its equity fell, and the cycle is not profitable.
    equity = {date(2012, 6, 1): START + Decimal("0.10") - Decimal("5.00")}
    gate = judge(OPENED, date(2012, 6, 2), START, equity, required=1, cycle_days=1, override=None)
    assert (gate.eligible, gate.consecutive_profitable) == (False, 0)
    assert [(c.profit_loss, c.profitable) for c in gate.cycles] == [(Decimal("-4.90"), False)]


def test_an_unchanged_equity_is_not_a_profit():
    gate = judge(OPENED, date(2012, 6, 2), START, {OPENED: START}, required=1, cycle_days=1, override=None)
    assert (gate.eligible, [c.profitable for c in gate.cycles]) == (False, [False])


def test_an_override_opens_the_gate_without_cycles():
    override = Override("passed the options course", "dave", datetime(2012, 6, 21, tzinfo=UTC))
    gate = judge(OPENED, date(2012, 6, 3), START, {}, required=4, cycle_days=7, override=override)
    assert (gate.eligible, gate.basis, gate.consecutive_profitable, gate.cycles) == (True, BY_OVERRIDE, 0, ())
