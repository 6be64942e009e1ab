"""The graduation gate (seed §2, paper first): a user may leave paper trading after N
complete cycles in a row each with a positive realized P&L, or when an operator opened the
gate (audited). Pure rules: the cycles' P&L comes from the account ledger's realized P&L of
the fills in each cycle (``SOURCE``). It is an answer only; nothing goes to a live broker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

SOURCE = "ledger_realized_pl"
BY_CYCLES = "profitable_cycles"
BY_OVERRIDE = "ops_override"


@dataclass(frozen=True)
class Cycle:
    """Days ``first`` to ``last`` (inclusive) and the P&L realized in them."""

    first: date
    last: date
    realized_pl: Decimal

    @property
    def profitable(self) -> bool:
        return self.realized_pl > 0


@dataclass(frozen=True)
class Override:
    reason: str
    operator: str
    granted_at: datetime


@dataclass(frozen=True)
class Graduation:
    eligible: bool
    # BY_CYCLES, BY_OVERRIDE, or "" when not eligible.
    basis: str
    consecutive_profitable: int
    required: int
    cycle_days: int
    # The latest complete cycles, newest first (at most ``required``).
    cycles: tuple[Cycle, ...]
    override: Override | None


def complete_cycles(opened: date, today: date, cycle_days: int) -> list[tuple[date, date]]:
    """(first, last) day of each complete cycle, oldest first: cycle k covers
    ``opened + k × cycle_days`` for ``cycle_days`` days, complete once its last day is
    before ``today``."""
    cycles = []
    first = opened
    while first + timedelta(days=cycle_days - 1) < today:
        cycles.append((first, first + timedelta(days=cycle_days - 1)))
        first += timedelta(days=cycle_days)
    return cycles


def judge(
    opened: date,
    today: date,
    realized_by_day: Mapping[date, Decimal],
    *,
    required: int,
    cycle_days: int,
    override: Override | None,
) -> Graduation:
    """The gate for an account opened on ``opened``, on ``today``, from the P&L realized on
    each day (``realized_by_day``): eligible by ``required`` profitable complete cycles in a
    row (the latest ones), or by ``override``."""
    cycles = [
        Cycle(
            first,
            last,
            sum((pl for day, pl in realized_by_day.items() if first <= day <= last), Decimal(0)),
        )
        for first, last in complete_cycles(opened, today, cycle_days)
    ]
    streak = 0
    for cycle in reversed(cycles):
        if not cycle.profitable:
            break
        streak += 1
    basis = BY_CYCLES if streak >= required else BY_OVERRIDE if override is not None else ""
    return Graduation(bool(basis), basis, streak, required, cycle_days, tuple(reversed(cycles[-required:])), override)
