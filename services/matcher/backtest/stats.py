"""The statistics strategies are compared by, from a daily equity curve and the fills.

Pure and exact: Decimal arithmetic at 28 significant digits, results rounded to 6 decimal
places (ratios) or cents (money). Conventions, stated in every report:

* daily returns r_i = E_i / E_{i-1} - 1 over the curve's points (the start, then each close);
* total return E_n / E_0 - 1; CAGR (E_n / E_0)^(252 / n) - 1 over n daily returns
  (252 trading days a year);
* max drawdown: the largest (peak - E) / peak, with the peak's, the trough's and the
  recovery's dates (recovery: the first later point back at the peak; None if never);
* Sharpe: mean(r) / stdev(r) * sqrt(252), sample standard deviation (n - 1), risk-free
  rate 0; Sortino: mean(r) / sqrt(sum(min(r, 0)^2) / n) * sqrt(252), target 0;
  None when the denominator is 0 or there are fewer than 2 returns;
* a trade is a fill (or an option expiration's leg) that reduces or closes a position
  (it realizes P&L); win rate is the share of trades with a positive realized P&L;
  profit factor gross profit / gross loss (None without losses);
* exposure: the share of regular-session time with a position open;
* fees: none (MBT charges no commissions or fees).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext

TRADING_DAYS = 252
RATIO = Decimal("0.000001")
CENT = Decimal("0.01")
PRECISION = 28


@dataclass(frozen=True)
class Drawdown:
    depth: Decimal  # a fraction, 0 when the curve never fell
    peak: date | None
    trough: date | None
    recovered: date | None


@dataclass(frozen=True)
class Statistics:
    start_equity: Decimal
    end_equity: Decimal
    total_return: Decimal
    cagr: Decimal | None
    max_drawdown: Drawdown
    sharpe: Decimal | None
    sortino: Decimal | None
    trades: int
    win_rate: Decimal | None
    profit_factor: Decimal | None
    exposure: Decimal
    fills: int
    days: int
    fees: Decimal = Decimal("0.00")

    def rows(self) -> list[tuple[str, str]]:
        """(name, value) in report order; "n/a" where a figure is undefined."""
        dd = self.max_drawdown
        return [
            ("start equity", _money(self.start_equity)),
            ("end equity", _money(self.end_equity)),
            ("total return", _pct(self.total_return)),
            ("CAGR", _pct(self.cagr)),
            ("max drawdown", _pct(dd.depth)),
            ("drawdown peak", _day(dd.peak)),
            ("drawdown trough", _day(dd.trough)),
            ("drawdown recovered", _day(dd.recovered)),
            ("Sharpe (daily, annualized)", _plain(self.sharpe)),
            ("Sortino (daily, annualized)", _plain(self.sortino)),
            ("trades (closing fills)", str(self.trades)),
            ("win rate", _pct(self.win_rate)),
            ("profit factor", _plain(self.profit_factor)),
            ("exposure", _pct(self.exposure)),
            ("fills", str(self.fills)),
            ("trading days", str(self.days)),
            ("fees", _money(self.fees)),
        ]


def daily_returns(equity: Sequence[Decimal]) -> list[Decimal]:
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return [equity[i] / equity[i - 1] - 1 for i in range(1, len(equity))]


def max_drawdown(curve: Sequence[tuple[date, Decimal]]) -> Drawdown:
    depth, peak_at, trough_at, running_peak = Decimal(0), None, None, 0
    with localcontext() as ctx:
        ctx.prec = PRECISION
        for index, (_, value) in enumerate(curve):
            peak = curve[running_peak][1]
            if value > peak:
                running_peak = index
                continue
            fall = (peak - value) / peak
            if fall > depth:
                depth, peak_at, trough_at = fall, running_peak, index
    if trough_at is None or peak_at is None:  # a trough is always found with its peak
        return Drawdown(Decimal(0), None, None, None)
    peak_value = curve[peak_at][1]
    recovered = next((day for day, value in curve[trough_at + 1 :] if value >= peak_value), None)
    return Drawdown(depth.quantize(RATIO), curve[peak_at][0], curve[trough_at][0], recovered)


def sharpe(returns: Sequence[Decimal]) -> Decimal | None:
    return _annualized(returns, lambda mean: sum(((r - mean) ** 2 for r in returns), Decimal(0)) / (len(returns) - 1))


def sortino(returns: Sequence[Decimal]) -> Decimal | None:
    return _annualized(returns, lambda _: sum((min(r, Decimal(0)) ** 2 for r in returns), Decimal(0)) / len(returns))


def _annualized(returns: Sequence[Decimal], variance) -> Decimal | None:
    """mean / sqrt(variance(mean)) * sqrt(252); None when undefined."""
    if len(returns) < 2:
        return None
    with localcontext() as ctx:
        ctx.prec = PRECISION
        mean = sum(returns, Decimal(0)) / len(returns)
        spread = variance(mean)
        if spread == 0:
            return None
        return (mean / spread.sqrt() * Decimal(TRADING_DAYS).sqrt()).quantize(RATIO)


def cagr(start: Decimal, end: Decimal, periods: int) -> Decimal | None:
    if periods < 1 or start <= 0 or end <= 0:
        return None
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return ((end / start) ** (Decimal(TRADING_DAYS) / periods) - 1).quantize(RATIO)


def exposure(changes: Sequence[tuple[int, bool]], sessions: Sequence[tuple[int, int]]) -> Decimal:
    """Share of the sessions' time ([open, close) in ns) with a position open, from the
    moments the account went from flat to holding and back."""
    total = sum(close - open_ for open_, close in sessions)
    if total == 0:
        return Decimal(0)
    held = 0
    for open_, close in sessions:
        state, cursor = False, open_
        for at_ns, holding in changes:
            if at_ns <= open_:
                state = holding
                continue
            if at_ns >= close:
                break
            if state:
                held += at_ns - cursor
            state, cursor = holding, at_ns
        if state:
            held += close - cursor
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return (Decimal(held) / Decimal(total)).quantize(RATIO)


def statistics(
    curve: Sequence[tuple[date, Decimal]], realized: Sequence[Decimal | None], fills: int, exposure_share: Decimal
) -> Statistics:
    """``curve``: (day, equity) from the start through each close. ``realized``: per fill,
    the P&L it realized (None for a fill that only opened or added)."""
    equity = [value for _, value in curve]
    returns = daily_returns(equity)
    with localcontext() as ctx:
        ctx.prec = PRECISION
        total = (equity[-1] / equity[0] - 1).quantize(RATIO)
        trades = [r for r in realized if r is not None]
        wins = [r for r in trades if r > 0]
        losses = [r for r in trades if r < 0]
        gross_loss = -sum(losses, Decimal(0))
        factor = (sum(wins, Decimal(0)) / gross_loss).quantize(RATIO) if losses else None
        rate = (Decimal(len(wins)) / len(trades)).quantize(RATIO) if trades else None
    return Statistics(
        equity[0],
        equity[-1],
        total,
        cagr(equity[0], equity[-1], len(returns)),
        max_drawdown(curve),
        sharpe(returns),
        sortino(returns),
        len(trades),
        rate,
        factor,
        exposure_share,
        fills,
        len(returns),
    )


def _money(value: Decimal) -> str:
    return f"${value.quantize(CENT):,}"


def _pct(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{(value * 100).quantize(Decimal('0.01'))}%"


def _plain(value: Decimal | None) -> str:
    return "n/a" if value is None else str(value.quantize(Decimal("0.0001")))


def _day(value: date | None) -> str:
    return "n/a" if value is None else value.isoformat()
