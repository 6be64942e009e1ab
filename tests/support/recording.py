"""The bundled recording, read independently of the market-data service, so tests can
compute what a fill must be from the data itself."""

from __future__ import annotations

import csv
import functools
import gzip
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

QUOTES = Path(__file__).resolve().parents[2] / "data" / "lobster_l1_quotes_AMZN_GOOG_2012-06-21.csv.gz"


@dataclass(frozen=True)
class RecordedQuote:
    at_ns: int
    symbol: str
    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal


@functools.cache
def quotes(symbol: str) -> tuple[RecordedQuote, ...]:
    with gzip.open(QUOTES, "rt", newline="") as handle:
        return tuple(RecordedQuote(int(row["ts_ns"]), row["symbol"], Decimal(row["bid_px"]), Decimal(row["bid_sz"]),
                                   Decimal(row["ask_px"]), Decimal(row["ask_sz"]))
                     for row in csv.DictReader(handle) if row["symbol"] == symbol)


def standing(symbol: str, at_ns: int) -> RecordedQuote:
    """The last quote at or before ``at_ns``."""
    return [q for q in quotes(symbol) if q.at_ns <= at_ns][-1]


def first_after(symbol: str, after_ns: int, predicate) -> RecordedQuote:
    return next(q for q in quotes(symbol) if q.at_ns > after_ns and predicate(q))
