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
    sequence: int  # the quote's 1-based rank among its symbol's, as the replay numbers day 0


@functools.cache
def all_quotes() -> tuple[RecordedQuote, ...]:
    """Every quote in file (and so feed) order."""
    ranks: dict[str, int] = {}
    recorded = []
    with gzip.open(QUOTES, "rt", newline="") as handle:
        for row in csv.DictReader(handle):
            ranks[row["symbol"]] = ranks.get(row["symbol"], 0) + 1
            recorded.append(
                RecordedQuote(
                    int(row["ts_ns"]),
                    row["symbol"],
                    Decimal(row["bid_px"]),
                    Decimal(row["bid_sz"]),
                    Decimal(row["ask_px"]),
                    Decimal(row["ask_sz"]),
                    ranks[row["symbol"]],
                )
            )
    return tuple(recorded)


@functools.cache
def quotes(symbol: str) -> tuple[RecordedQuote, ...]:
    return tuple(q for q in all_quotes() if q.symbol == symbol)


def standing(symbol: str, at_ns: int) -> RecordedQuote:
    """The last quote at or before ``at_ns``."""
    return [q for q in quotes(symbol) if q.at_ns <= at_ns][-1]


def first_after(symbol: str, after_ns: int, predicate) -> RecordedQuote:
    return next(q for q in quotes(symbol) if q.at_ns > after_ns and predicate(q))


# MBT_MAX_QUOTE_AGE_SECONDS's default: no fill on an older quote.
MAX_QUOTE_AGE_NS = 5 * 10**9


def deciding(symbol: str, accepted_ns: int) -> RecordedQuote:
    """The quote an order that is marketable on any usable quote fills on when accepted at
    ``accepted_ns``: the standing one if fresh enough, else the next."""
    quote = standing(symbol, accepted_ns)
    if accepted_ns - quote.at_ns <= MAX_QUOTE_AGE_NS:
        return quote
    return first_after(symbol, accepted_ns, lambda q: True)
