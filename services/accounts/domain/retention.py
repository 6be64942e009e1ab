"""The ledger's carried-forward balance (pure): what the retention purge folds ledger entries
into before deleting them, so that the ledger still reconciles afterwards.

An account's carried-forward balance is the sum of the cash movements folded (the opening
deposit among them, once it is old enough), the cash after the last of them, and each
position those entries left open (signed quantity, average entry price, multiplier,
realized P&L so far). It is kept in the ledger itself as ``carried_forward`` entries dated
at the last folded entry: one for the cash (no symbol) and one per open position. Then cash
is still the sum of every entry's ``cash_delta`` and a replay of the ledger (P&L) starts
from the carried positions. Folding is associative: folding a batch on top of a
carried-forward balance equals folding everything at once, so the purge can run in batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.accounts.domain.rules import Position, apply_fill
from services.common.trading import Side

CARRIED_FORWARD = "carried_forward"
# Entries that move a position (the rest only move cash).
POSITION_KINDS = frozenset({"fill", "expiration"})


@dataclass(frozen=True)
class LedgerLine:
    """One ledger entry's terms, as the fold reads them."""

    kind: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    multiplier: Decimal
    cash_delta: Decimal
    realized_pl: Decimal
    cash_after: Decimal
    occurred_at: datetime


@dataclass(frozen=True)
class CarriedForward:
    cash_delta: Decimal
    cash_after: Decimal
    # The last folded entry's time: the carried-forward entries are dated there.
    through: datetime
    # Open positions only, by symbol.
    positions: dict[str, Position] = field(default_factory=dict)


def carried_position(line: LedgerLine) -> Position:
    """The position a ``carried_forward`` entry with a symbol carries (its side gives the sign)."""
    signed = line.qty if line.side == Side.BUY.value else -line.qty
    return Position(line.symbol, signed, line.price, line.multiplier, line.realized_pl)


def fold(lines: Iterable[LedgerLine]) -> CarriedForward | None:
    """The carried-forward balance of ``lines`` in ledger order (previous ``carried_forward``
    entries first, then the entries to fold); None when there are none."""
    cash = Decimal(0)
    cash_after: Decimal | None = None
    through: datetime | None = None
    positions: dict[str, Position] = {}
    for line in lines:
        cash += line.cash_delta
        cash_after, through = line.cash_after, line.occurred_at
        if line.kind == CARRIED_FORWARD and line.symbol:
            positions[line.symbol] = carried_position(line)
        elif line.kind in POSITION_KINDS:
            effect = apply_fill(
                positions.get(line.symbol), line.symbol, Side(line.side), line.qty, line.price, line.multiplier
            )
            positions[line.symbol] = effect.position
    if cash_after is None or through is None:
        return None
    return CarriedForward(cash, cash_after, through, {s: p for s, p in positions.items() if p.is_open})
