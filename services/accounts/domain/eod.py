"""End-of-day rules: an account's state at a moment replayed from its ledger, its snapshot at
a session's close, portfolio history over a period, dividends and margin interest. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from services.accounts.domain.rules import Mark, Position, apply_fill, mark_price, market_value
from services.common.errors import invalid_argument
from services.common.trading import Side

CENT = Decimal("0.01")
BPS = Decimal(10_000)
# Actual/360: interest per calendar day is 1/360 of the annual rate (the US money-market and
# broker convention, e.g. FINRA/SEC margin disclosures).
DAY_COUNT_BASIS = Decimal(360)
PERIODS = {"1W": timedelta(weeks=1), "1M": None, "3M": None, "1A": None, "all": None}
TIMEFRAMES = ("1D",)


@dataclass(frozen=True)
class LedgerEntry:
    """One cash movement as the ledger recorded it; ``side``/``qty``/``price`` are set for fills."""

    kind: str
    symbol: str
    side: Side | None
    qty: Decimal
    price: Decimal
    multiplier: Decimal
    cash_delta: Decimal
    occurred_at: datetime


@dataclass(frozen=True)
class Holdings:
    cash: Decimal
    positions: dict[str, Position]


def holdings_at(entries: Iterable[LedgerEntry], moment: datetime, *, inclusive: bool = True) -> Holdings:
    """Cash and open positions after the entries at or before ``moment`` (strictly before
    when not ``inclusive``), replayed in ledger order."""
    cash = Decimal(0)
    held: dict[str, Position] = {}
    for entry in entries:
        if entry.occurred_at > moment or (not inclusive and entry.occurred_at == moment):
            continue
        cash += entry.cash_delta
        if entry.kind == "fill" and entry.side is not None:
            held[entry.symbol] = apply_fill(
                held.get(entry.symbol), entry.symbol, entry.side, entry.qty, entry.price, entry.multiplier
            ).position
    return Holdings(cash, {symbol: p for symbol, p in held.items() if p.is_open})


@dataclass(frozen=True)
class MarkedPosition:
    symbol: str
    qty: Decimal
    multiplier: Decimal
    avg_entry_price: Decimal
    mark: Decimal
    market_value: Decimal


@dataclass(frozen=True)
class Snapshot:
    """An account at a session's close: equity = cash + long_market_value + short_market_value."""

    cash: Decimal
    long_market_value: Decimal
    short_market_value: Decimal
    positions: tuple[MarkedPosition, ...]

    @property
    def equity(self) -> Decimal:
        return self.cash + self.long_market_value + self.short_market_value


def snapshot(holdings: Holdings, marks: Mapping[str, Mark]) -> Snapshot:
    """``holdings`` marked at ``marks``: what closing would get (the bid for a long, the ask for
    a short; the entry price without a usable quote, as ``mark_price``)."""
    long_value = short_value = Decimal(0)
    marked = []
    for symbol in sorted(holdings.positions):
        position = holdings.positions[symbol]
        quote = marks.get(symbol)
        price = mark_price(position, quote.bid if quote else None, quote.ask if quote else None)
        value = market_value(position, price)
        if value >= 0:
            long_value += value
        else:
            short_value += value
        marked.append(MarkedPosition(symbol, position.qty, position.multiplier, position.avg_entry_price, price, value))
    return Snapshot(holdings.cash, long_value, short_value, tuple(marked))


# -- portfolio history ------------------------------------------------------------------


def period_start(period: str, today: date) -> date | None:
    """The first day of ``period`` ending ``today`` (None: ``all``); invalid_argument otherwise.
    1W is 7 days, 1M/3M calendar months, 1A a calendar year (Alpaca's periods)."""
    period = period or "1M"
    if period not in PERIODS:
        raise invalid_argument(f"period is one of {', '.join(PERIODS)}; got {period!r}", "period")
    if period == "all":
        return None
    if period == "1W":
        return today - timedelta(weeks=1)
    months = {"1M": 1, "3M": 3, "1A": 12}[period]
    month = today.month - months
    year = today.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    day = min(today.day, 28 if month == 2 else 30 if month in (4, 6, 9, 11) else 31)
    return date(year, month, day)


def check_timeframe(timeframe: str) -> str:
    timeframe = timeframe or "1D"
    if timeframe not in TIMEFRAMES:
        raise invalid_argument(f"timeframe is one of {', '.join(TIMEFRAMES)}; got {timeframe!r}", "timeframe")
    return timeframe


@dataclass(frozen=True)
class HistoryPoint:
    at: datetime
    equity: Decimal
    profit_loss: Decimal
    profit_loss_pct: Decimal


def history(base_value: Decimal, closes: Sequence[tuple[datetime, Decimal]]) -> list[HistoryPoint]:
    """Each close's equity, its P&L against ``base_value`` and that as a fraction of it (0 when
    the base is 0)."""
    points = []
    for at, equity in closes:
        profit = equity - base_value
        points.append(HistoryPoint(at, equity, profit, profit / base_value if base_value else Decimal(0)))
    return points


# -- dividends and interest ----------------------------------------------------------------


def dividend_amount(qty: Decimal, cash_amount: Decimal) -> Decimal:
    """What a holding of ``qty`` (signed) gets for a dividend of ``cash_amount`` per share: a
    long is credited, a short charged (it owes the lender the dividend); to the cent, half up."""
    return (qty * cash_amount).quantize(CENT, ROUND_HALF_UP)


def margin_interest(debit_balance: Decimal, rate_bps: int, days: int) -> Decimal:
    """Interest on a debit balance for ``days`` calendar days at ``rate_bps`` a year,
    actual/360: debit × rate / 10,000 × days / 360, to the cent, half up."""
    if debit_balance <= 0 or days <= 0 or rate_bps <= 0:
        return Decimal(0)
    return (debit_balance * Decimal(rate_bps) / BPS * Decimal(days) / DAY_COUNT_BASIS).quantize(CENT, ROUND_HALF_UP)
