"""The ledger's carried-forward balance (``services.accounts.domain.retention``): folding in
batches equals folding at once, and a replay from the carried-forward entries gives the same
cash and positions as a replay of the whole ledger (P&L and end-of-day holdings)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.accounts.domain.eod import LedgerEntry, holdings_at
from services.accounts.domain.retention import CARRIED_FORWARD, LedgerLine, fold
from services.accounts.domain.rules import apply_fill
from services.common.trading import Side

D = Decimal
T0 = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)


def ledger() -> list[LedgerLine]:
    """An opening deposit, then buys and sells of AMZN and GOOG (GOOG closed, AMZN open)."""
    lines = [LedgerLine("opening", "", "", D(0), D(0), D(1), D(100000), D(0), D(100000), T0)]
    cash = D(100000)
    held: dict = {}
    for minute, (symbol, side, qty, price) in enumerate(
        [
            ("AMZN", "buy", 3, "220.10"),
            ("GOOG", "buy", 1, "580.00"),
            ("AMZN", "sell", 1, "221.00"),
            ("GOOG", "sell", 1, "575.50"),
            ("AMZN", "buy", 2, "219.00"),
        ],
        start=1,
    ):
        effect = apply_fill(held.get(symbol), symbol, Side(side), D(qty), D(price), D(1))
        held[symbol] = effect.position
        cash += effect.cash_delta
        at = T0 + timedelta(minutes=minute)
        lines.append(
            LedgerLine("fill", symbol, side, D(qty), D(price), D(1), effect.cash_delta, effect.realized_pl, cash, at)
        )
    return lines


def carried_lines(lines: list[LedgerLine]) -> list[LedgerLine]:
    """The carried_forward entries of ``lines`` folded, as the store writes them."""
    balance = fold(lines)
    assert balance is not None
    out = [
        LedgerLine(
            CARRIED_FORWARD, "", "", D(0), D(0), D(1), balance.cash_delta, D(0), balance.cash_after, balance.through
        )
    ]
    for symbol, p in sorted(balance.positions.items()):
        side = "buy" if p.qty > 0 else "sell"
        out.append(
            LedgerLine(
                CARRIED_FORWARD,
                symbol,
                side,
                abs(p.qty),
                p.avg_entry_price,
                p.multiplier,
                D(0),
                p.realized_pl,
                balance.cash_after,
                balance.through,
            )
        )
    return out


def test_folding_in_batches_equals_folding_at_once():
    lines = ledger()
    whole = fold(lines)
    in_batches = fold([*carried_lines(lines[:2]), *lines[2:]])
    assert whole == in_batches
    assert whole is not None and whole.cash_delta == lines[-1].cash_after
    assert set(whole.positions) == {"AMZN"}  # GOOG closed: not carried
    assert fold([]) is None


def as_entry(line: LedgerLine) -> LedgerEntry:
    side = Side(line.side) if line.side else None
    return LedgerEntry(
        line.kind, line.symbol, side, line.qty, line.price, line.multiplier, line.cash_delta, line.occurred_at
    )


def test_end_of_day_holdings_replay_from_the_carried_forward_entries():
    lines = ledger()
    purged = [*carried_lines(lines[:4]), *lines[4:]]
    end = T0 + timedelta(hours=1)
    full, after_purge = holdings_at(map(as_entry, lines), end), holdings_at(map(as_entry, purged), end)
    assert after_purge.cash == full.cash == lines[-1].cash_after
    assert {s: (p.qty, p.avg_entry_price) for s, p in after_purge.positions.items()} == {
        s: (p.qty, p.avg_entry_price) for s, p in full.positions.items()
    }
