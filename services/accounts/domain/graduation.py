"""The graduation gate (seed §2, paper first): a user may leave paper trading after N
complete cycles in a row each with a positive P&L, or when an operator opened the gate
(audited). Pure rules: a cycle's P&L is the change in the account's equity between the EOD
snapshots at its boundaries (``SOURCE``, ``domain.eod.Snapshot``), realized and unrealized
alike, so a position still open at a loss counts. It is an answer only; nothing goes to a
live broker."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

SOURCE = "eod_snapshots"
BY_CYCLES = "profitable_cycles"
BY_OVERRIDE = "ops_override"


@dataclass(frozen=True)
class Cycle:
    """Days ``first`` to ``last`` (inclusive) and the account's equity (USD) at the snapshot
    before it began and at its last snapshot."""

    first: date
    last: date
    start_equity: Decimal
    end_equity: Decimal

    @property
    def profit_loss(self) -> Decimal:
        return self.end_equity - self.start_equity

    @property
    def profitable(self) -> bool:
        return self.profit_loss > 0


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


def cycle_spans(opened: date, today: date, cycle_days: int) -> list[tuple[date, date]]:
    """(first, last) day of each cycle over by ``today``, oldest first: cycle k covers
    ``opened + k × cycle_days`` for ``cycle_days`` days, over once its last day is before
    ``today``."""
    cycles = []
    first = opened
    while first + timedelta(days=cycle_days - 1) < today:
        cycles.append((first, first + timedelta(days=cycle_days - 1)))
        first += timedelta(days=cycle_days)
    return cycles


def complete_cycles(
    opened: date,
    today: date,
    sessions: Sequence[date],
    starting_equity: Decimal,
    equity_by_day: Mapping[date, Decimal],
    cycle_days: int,
) -> list[Cycle]:
    """The complete cycles, oldest first: over by ``today`` (``cycle_spans``) and with the
    EOD snapshot of their last session (``sessions``: the XNYS session dates, in order), whose
    equity is their end equity. Their start equity is the last snapshot's before their first
    day, ``starting_equity`` (the account's starting cash) before the first snapshot.
    ``equity_by_day``: each EOD snapshot's equity by session date. A cycle whose last close is
    not marked yet, or with no session, is not complete and not listed; whatever equity it
    may have moved by falls in the next complete cycle."""
    days = sorted(equity_by_day)
    cycles = []
    for first, last in cycle_spans(opened, today, cycle_days):
        through = bisect_right(sessions, last)
        if not through or sessions[through - 1] < first or sessions[through - 1] not in equity_by_day:
            continue
        before = bisect_left(days, first)
        start = equity_by_day[days[before - 1]] if before else starting_equity
        cycles.append(Cycle(first, last, start, equity_by_day[sessions[through - 1]]))
    return cycles


def judge(
    opened: date,
    today: date,
    sessions: Sequence[date],
    starting_equity: Decimal,
    equity_by_day: Mapping[date, Decimal],
    *,
    required: int,
    cycle_days: int,
    override: Override | None,
) -> Graduation:
    """The gate for an account opened on ``opened`` with ``starting_equity`` (USD), on
    ``today``, from its EOD snapshots' equity by session date (``equity_by_day``) and the
    session dates from ``opened`` to ``today`` (``sessions``): eligible by
    ``required`` profitable complete cycles in a row (the latest ones, ``complete_cycles``),
    or by ``override``."""
    cycles = complete_cycles(opened, today, sessions, starting_equity, equity_by_day, cycle_days)
    streak = 0
    for cycle in reversed(cycles):
        if not cycle.profitable:
            break
        streak += 1
    basis = BY_CYCLES if streak >= required else BY_OVERRIDE if override is not None else ""
    return Graduation(bool(basis), basis, streak, required, cycle_days, tuple(reversed(cycles[-required:])), override)
