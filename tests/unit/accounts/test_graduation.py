"""The graduation gate's rules: cycles from the account's opening, judged by the change in
equity between the EOD snapshots at their boundaries (so an open losing position counts),
complete once over with the snapshot of their last session, N profitable in a row (the
latest ones), or an operator's override."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from services.accounts.domain.graduation import (
    BY_CYCLES,
    BY_OVERRIDE,
    Override,
    complete_cycles,
    cycle_spans,
    judge,
)

OPENED = date(2012, 6, 1)  # a Friday
START = Decimal("10000")
# XNYS sessions of June 2012: every weekday (no holiday that month).
SESSIONS = [OPENED + timedelta(days=n) for n in range(30) if (OPENED + timedelta(days=n)).weekday() < 5]


def test_cycles_are_counted_from_the_opening_and_only_those_over_count():
    assert cycle_spans(OPENED, date(2012, 6, 15), 7) == [
        (date(2012, 6, 1), date(2012, 6, 7)),
        (date(2012, 6, 8), date(2012, 6, 14)),
    ]
    assert cycle_spans(OPENED, date(2012, 6, 14), 7) == [(date(2012, 6, 1), date(2012, 6, 7))]


def test_a_cycle_runs_from_the_snapshot_before_it_to_its_last_session_s_and_starts_from_the_starting_cash():
    equity = {
        date(2012, 6, 1): Decimal("10010"),
        date(2012, 6, 7): Decimal("10050"),  # the first cycle's last session (a Thursday)
        date(2012, 6, 8): Decimal("10040"),
        date(2012, 6, 14): Decimal("10030.50"),
    }
    first, second = complete_cycles(OPENED, date(2012, 6, 15), SESSIONS, START, equity, 7)
    assert (first.start_equity, first.end_equity, first.profit_loss) == (START, Decimal("10050"), Decimal("50"))
    assert (second.start_equity, second.end_equity, second.profit_loss) == (
        Decimal("10050"),
        Decimal("10030.50"),
        Decimal("-19.50"),
    )


def test_a_cycle_without_the_snapshot_of_its_last_session_is_not_complete():
    # Over, but its last close (Thursday 7th) is not marked yet: an earlier snapshot in it
    # does not make it complete.
    early = {date(2012, 6, 5): Decimal("10100")}
    assert complete_cycles(OPENED, date(2012, 6, 9), SESSIONS, START, early, 7) == []
    marked = {**early, date(2012, 6, 7): Decimal("10090")}
    [only] = complete_cycles(OPENED, date(2012, 6, 15), SESSIONS, START, marked, 7)
    assert (only.first, only.profit_loss) == (OPENED, Decimal("90"))  # the second's 14th is not marked
    # A one-day cycle on a weekend has no session: not complete, and Monday's cycle starts
    # from Friday's snapshot.
    weekend = {date(2012, 6, 1): Decimal("10001"), date(2012, 6, 4): Decimal("10003")}
    cycles = complete_cycles(OPENED, date(2012, 6, 5), SESSIONS, START, weekend, 1)
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
    gate = judge(OPENED, date(2012, 6, 29), SESSIONS, START, equity, required=2, cycle_days=7, override=None)
    assert (gate.eligible, gate.basis, gate.consecutive_profitable) == (True, BY_CYCLES, 2)
    assert [c.profit_loss for c in gate.cycles] == [Decimal("0.01"), Decimal("4")]
    three = judge(OPENED, date(2012, 6, 29), SESSIONS, START, equity, required=3, cycle_days=7, override=None)
    assert (three.eligible, three.basis, three.consecutive_profitable) == (False, "", 2)
    assert [c.profitable for c in three.cycles] == [True, True, False]


def test_an_open_losing_position_makes_a_cycle_with_a_realized_gain_a_loss():
    # The cycle realized +0.10 but still holds shares marked 5.00 below their cost at its
    # close: its equity fell, and the cycle is not profitable.
    equity = {date(2012, 6, 1): START + Decimal("0.10") - Decimal("5.00")}
    gate = judge(OPENED, date(2012, 6, 2), SESSIONS, START, equity, required=1, cycle_days=1, override=None)
    assert (gate.eligible, gate.consecutive_profitable) == (False, 0)
    assert [(c.profit_loss, c.profitable) for c in gate.cycles] == [(Decimal("-4.90"), False)]


def test_an_unchanged_equity_is_not_a_profit():
    gate = judge(OPENED, date(2012, 6, 2), SESSIONS, START, {OPENED: START}, required=1, cycle_days=1, override=None)
    assert (gate.eligible, [c.profitable for c in gate.cycles]) == (False, [False])


def test_an_override_opens_the_gate_without_cycles():
    override = Override("passed the options course", "dave", datetime(2012, 6, 21, tzinfo=UTC))
    gate = judge(OPENED, date(2012, 6, 3), SESSIONS, START, {}, required=4, cycle_days=7, override=override)
    assert (gate.eligible, gate.basis, gate.consecutive_profitable, gate.cycles) == (True, BY_OVERRIDE, 0, ())
