"""The option quote model's calibration (pure): an implied-volatility smile and bid/ask
half-spreads, by moneyness and days to expiry, fitted from a recorded option chain (the
bundled Cboe SPY chain).

Each usable contract of the chain is a point: moneyness ``x = ln(K / S) / sqrt(T)`` (strike
over the underlying's mid, per square root of years to expiry, so expiries compare),
Cboe's implied volatility, and its relative half-spread ``(ask - bid) / 2 / mid``. Points
are the out-of-the-money side (puts below the underlying, calls at or above it: the
liquid side, as VIX-style smiles are built), two-sided (bid > 0, ask > bid), with an implied
volatility and at least a day to expiry. They are grouped by days-to-expiry bucket
(``DTE_BUCKETS``) and moneyness bin (``MONEYNESS_EDGES``); each group's knot is the median
moneyness, volatility and half-spread. The model reads a bucket's knots linearly
interpolated in moneyness, flat beyond the outer knots; an expiry beyond every bucket with
knots uses the nearest one.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from services.common.instruments import CALL, PUT

DTE_BUCKETS = ((1, 7), (8, 30), (31, 90), (91, 365), (366, 100_000))
MONEYNESS_EDGES = (-1.5, -1.0, -0.6, -0.3, -0.1, 0.1, 0.3, 0.6, 1.0, 1.5)
DAYS_PER_YEAR = 365
PLACES = 4


@dataclass(frozen=True)
class ChainPoint:
    """One recorded contract: what the fit reads of it (prices in dollars per share)."""

    option_type: str
    strike: float
    expiration: date
    bid: float
    ask: float
    implied_volatility: float
    underlying_mid: float
    quote_date: date


@dataclass(frozen=True)
class SmileKnot:
    dte_min: int
    dte_max: int
    moneyness: float
    volatility: float
    half_spread_fraction: float
    contracts: int


def _bucket(dte: int) -> tuple[int, int] | None:
    for low, high in DTE_BUCKETS:
        if low <= dte <= high:
            return low, high
    return None


def _bin(moneyness: float) -> int:
    return sum(1 for edge in MONEYNESS_EDGES if moneyness >= edge)


def fit(points: Iterable[ChainPoint]) -> list[SmileKnot]:
    """The knots of a chain, by bucket then moneyness (see the module docstring)."""
    groups: dict[tuple[tuple[int, int], int], list[tuple[float, float, float]]] = {}
    for p in points:
        dte = (p.expiration - p.quote_date).days
        bucket = _bucket(dte)
        out_of_the_money = (p.option_type == PUT and p.strike < p.underlying_mid) or (
            p.option_type == CALL and p.strike >= p.underlying_mid
        )
        if bucket is None or not out_of_the_money or p.bid <= 0 or p.ask <= p.bid or p.implied_volatility <= 0:
            continue
        moneyness = math.log(p.strike / p.underlying_mid) / math.sqrt(dte / DAYS_PER_YEAR)
        mid = (p.bid + p.ask) / 2
        groups.setdefault((bucket, _bin(moneyness)), []).append(
            (moneyness, p.implied_volatility, (p.ask - p.bid) / 2 / mid)
        )
    knots = []
    for (bucket, _), rows in sorted(groups.items()):
        knots.append(
            SmileKnot(
                bucket[0],
                bucket[1],
                round(statistics.median(r[0] for r in rows), PLACES),
                round(statistics.median(r[1] for r in rows), PLACES),
                round(statistics.median(r[2] for r in rows), PLACES),
                len(rows),
            )
        )
    return knots


class Calibration:
    """The fitted knots, read as (volatility, half-spread fraction) at a moneyness and DTE."""

    def __init__(self, knots: Iterable[SmileKnot]) -> None:
        self.knots = list(knots)
        self._buckets: dict[tuple[int, int], list[SmileKnot]] = {}
        for knot in sorted(self.knots, key=lambda k: (k.dte_min, k.moneyness)):
            self._buckets.setdefault((knot.dte_min, knot.dte_max), []).append(knot)
        if not self._buckets:
            raise ValueError("the calibration has no knots")

    def _knots(self, dte: int) -> list[SmileKnot]:
        exact = _bucket(max(dte, DTE_BUCKETS[0][0]))
        if exact in self._buckets:
            return self._buckets[exact]
        nearest = min(self._buckets, key=lambda b: min(abs(dte - b[0]), abs(dte - b[1])))
        return self._buckets[nearest]

    def at(self, moneyness: float, dte: int) -> tuple[float, float]:
        """(volatility, half-spread fraction) at ``moneyness`` = ln(K/S)/sqrt(T) and ``dte`` days."""
        knots = self._knots(dte)
        if moneyness <= knots[0].moneyness:
            return knots[0].volatility, knots[0].half_spread_fraction
        for left, right in itertools.pairwise(knots):
            if moneyness <= right.moneyness:
                weight = (moneyness - left.moneyness) / (right.moneyness - left.moneyness)
                return (
                    left.volatility + weight * (right.volatility - left.volatility),
                    left.half_spread_fraction + weight * (right.half_spread_fraction - left.half_spread_fraction),
                )
        return knots[-1].volatility, knots[-1].half_spread_fraction
