"""The graduation gate's rules: complete cycles from the account's opening, N profitable in a
row (the latest ones), or an operator's override."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from services.accounts.domain.graduation import BY_CYCLES, BY_OVERRIDE, Override, complete_cycles, judge

OPENED = date(2012, 6, 1)


def test_cycles_are_counted_from_the_opening_and_only_complete_ones_count():
    assert complete_cycles(OPENED, date(2012, 6, 15), 7) == [
        (date(2012, 6, 1), date(2012, 6, 7)),
        (date(2012, 6, 8), date(2012, 6, 14)),
    ]
    assert complete_cycles(OPENED, date(2012, 6, 14), 7) == [(date(2012, 6, 1), date(2012, 6, 7))]


def test_n_profitable_cycles_in_a_row_graduate_and_a_losing_one_resets_the_run():
    pl = {
        date(2012, 6, 2): Decimal("50"),  # cycle 1: +50
        date(2012, 6, 9): Decimal("-10"),  # cycle 2: -10
        date(2012, 6, 16): Decimal("5"),  # cycle 3: +5 -1 = +4
        date(2012, 6, 17): Decimal("-1"),
        date(2012, 6, 23): Decimal("0.01"),  # cycle 4: +0.01
    }
    gate = judge(OPENED, date(2012, 6, 29), pl, required=2, cycle_days=7, override=None)
    assert (gate.eligible, gate.basis, gate.consecutive_profitable) == (True, BY_CYCLES, 2)
    assert [c.realized_pl for c in gate.cycles] == [Decimal("0.01"), Decimal("4")]
    three = judge(OPENED, date(2012, 6, 29), pl, required=3, cycle_days=7, override=None)
    assert (three.eligible, three.basis, three.consecutive_profitable) == (False, "", 2)
    assert [c.profitable for c in three.cycles] == [True, True, False]


def test_an_override_opens_the_gate_without_cycles():
    override = Override("passed the options course", "dave", datetime(2012, 6, 21, tzinfo=UTC))
    gate = judge(OPENED, date(2012, 6, 3), {}, required=4, cycle_days=7, override=override)
    assert (gate.eligible, gate.basis, gate.consecutive_profitable, gate.cycles) == (True, BY_OVERRIDE, 0, ())
