"""Backtest statistics against values computed by hand on a tiny equity curve."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from services.matcher.backtest.stats import exposure, statistics

D = Decimal
# Start 100, then closes 110, 99, 105.6, 121.44: returns +10%, -10%, +6.666...%, +15%.
CURVE = [
    (date(2024, 1, 1), D("100")),
    (date(2024, 1, 2), D("110")),
    (date(2024, 1, 3), D("99")),
    (date(2024, 1, 4), D("105.6")),
    (date(2024, 1, 5), D("121.44")),
]


def test_statistics_of_a_tiny_curve_match_the_hand_computation():
    stats = statistics(
        CURVE, realized=[None, D("30"), D("-10"), None, D("5"), D("0")], fills=6, exposure_share=D("0.25")
    )
    # total return: 121.44 / 100 - 1
    assert stats.total_return == D("0.214400")
    # CAGR over 4 daily returns: 1.2144 ** (252 / 4) - 1 = 1.2144 ** 63 - 1 = 206437.5446586…
    assert stats.cagr == D("206437.544659")
    # peak 110 on 01-02, trough 99 on 01-03: (110 - 99) / 110 = 0.1; back above 110 on 01-05
    dd = stats.max_drawdown
    assert (dd.depth, dd.peak, dd.trough, dd.recovered) == (
        D("0.100000"),
        date(2024, 1, 2),
        date(2024, 1, 3),
        date(2024, 1, 5),
    )
    # mean = (0.1 - 0.1 + 0.0666666… + 0.15) / 4 = 0.0541666…; sample variance
    # = ((0.0458333…)² + (-0.1541666…)² + (0.0125)² + (0.0958333…)²) / 3 = 0.0117361…;
    # Sharpe = 0.0541666… / sqrt(0.0117361…) * sqrt(252) = 7.9372539…
    assert stats.sharpe == D("7.937254")
    # downside deviation = sqrt((-0.1)² / 4) = 0.05; Sortino = 0.0541666… / 0.05 * sqrt(252) = 17.1973835…
    assert stats.sortino == D("17.197384")
    # trades: the fills that realized P&L (30, -10, 5, 0): 2 wins of 4; profit factor 35 / 10
    assert (stats.trades, stats.win_rate, stats.profit_factor) == (4, D("0.500000"), D("3.500000"))
    assert (stats.fills, stats.days, stats.exposure, stats.fees) == (6, 4, D("0.25"), D("0.00"))


def test_a_flat_curve_has_no_drawdown_and_undefined_ratios():
    stats = statistics([(date(2024, 1, 1), D("100")), (date(2024, 1, 2), D("100"))], [], 0, D(0))
    assert stats.total_return == 0 and stats.max_drawdown.depth == 0 and stats.max_drawdown.peak is None
    assert stats.sharpe is None and stats.sortino is None and stats.win_rate is None and stats.profit_factor is None


def test_exposure_is_the_share_of_session_time_with_a_position():
    sessions = [(0, 100), (200, 300)]
    # opened at 50, closed at 250 (held overnight): 50 of the first session, 50 of the second
    assert exposure([(50, True), (250, False)], sessions) == D("0.500000")
    # opened before the first session and never closed: all of it
    assert exposure([(-10, True)], sessions) == D("1.000000")
    assert exposure([], sessions) == D("0.000000")
