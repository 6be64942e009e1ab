"""The feed a backtest runs over: every tick in feed order, and per symbol the numpy
columns the event-jump search reads.

Prices are exact: each is held as an integer count of 1/scale dollars, where scale is the
power of ten that represents every price of the feed (10^2 for cents, 10^4 for sub-penny
quotes); a quote is turned back into the matcher's Decimal tick only when something
decides on it. A tick is *tradable* when the fill function could act on it while it is
streamed: usable (bid > 0, ask > bid) and inside a regular session. The search indexes
give, for a symbol, the first tradable tick at or after a position whose ask or bid is at
or beyond a price (blocked running minima and maxima: O(log n) numpy slices per query).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import numpy as np

from services.common.instruments import SymbolSpec
from services.marketdata.domain.calendar import MarketCalendar
from services.marketdata.domain.ticks import Tick as FeedTick
from services.matcher.domain import MarketSession, Tick

ZERO = Decimal(0)
BLOCK = 64
HIGHEST = np.iinfo(np.int64).max
LOWEST = np.iinfo(np.int64).min
MAX_PLACES = 9


class FeedError(ValueError):
    """Ticks that cannot be backtested (out of time order, prices beyond the exact range)."""


class FirstAtOrBeyond:
    """First index at or after ``start`` whose value is <= x (``below=True``) or >= x.

    Level 0 is the column; each level above holds the minimum (or maximum) of BLOCK
    entries of the level below, so a query scans at most one block per level up, then
    one block per level down."""

    def __init__(self, values: np.ndarray, below: bool) -> None:
        self._below = below
        reduce, pad = (np.minimum, HIGHEST) if below else (np.maximum, LOWEST)
        self._levels = [values]
        while len(self._levels[-1]) > BLOCK:
            level = self._levels[-1]
            missing = -len(level) % BLOCK
            if missing:
                level = np.concatenate([level, np.full(missing, pad, dtype=np.int64)])
            self._levels.append(reduce.reduce(level.reshape(-1, BLOCK), axis=1))

    def _hit(self, segment: np.ndarray, x: int) -> int:
        if not len(segment):
            return -1
        mask = segment <= x if self._below else segment >= x
        first = int(mask.argmax())
        return first if mask[first] else -1

    def first(self, start: int, x: int) -> int | None:
        levels, top = self._levels, len(self._levels) - 1
        level, index = 0, start
        while True:
            column = levels[level]
            if index >= len(column):
                return None
            end = len(column) if level == top else min(len(column), (index // BLOCK + 1) * BLOCK)
            hit = self._hit(column[index:end], x)
            if hit >= 0:
                index += hit
                break
            if level == top:
                return None
            index, level = index // BLOCK + 1, level + 1
        while level > 0:
            level -= 1
            base = index * BLOCK
            index = base + self._hit(levels[level][base : base + BLOCK], x)
        return index


@dataclass
class SymbolColumns:
    """One symbol's ticks: global positions, times, scaled prices, and the search indexes."""

    symbol: str
    positions: np.ndarray
    times: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    tradable: np.ndarray
    scale: int

    def __post_init__(self) -> None:
        ask_or_high = np.where(self.tradable, self.ask, HIGHEST)
        self.ask_at_most = FirstAtOrBeyond(ask_or_high, below=True)
        self.ask_at_least = FirstAtOrBeyond(np.where(self.tradable, self.ask, LOWEST), below=False)
        self.bid_at_most = FirstAtOrBeyond(np.where(self.tradable, self.bid, HIGHEST), below=True)
        self.bid_at_least = FirstAtOrBeyond(np.where(self.tradable, self.bid, LOWEST), below=False)

    def __len__(self) -> int:
        return len(self.times)

    def position(self, index: int) -> int:
        return int(self.positions[index])

    def first_tradable(self, start: int) -> int | None:
        return self.ask_at_most.first(start, HIGHEST - 1)

    def floor(self, price: Decimal) -> int:
        return int((price * self.scale).to_integral_value(ROUND_FLOOR))

    def ceiling(self, price: Decimal) -> int:
        return int((price * self.scale).to_integral_value(ROUND_CEILING))

    def delivered_before(self, global_position: int) -> int:
        """How many of this symbol's ticks come before that global position."""
        return int(np.searchsorted(self.positions, global_position, "left"))

    def first_at_or_after(self, at_ns: int) -> int:
        return int(np.searchsorted(self.times, at_ns, "left"))

    def last_at_or_before(self, at_ns: int) -> int:
        return int(np.searchsorted(self.times, at_ns, "right")) - 1


class Sessions:
    """Regular sessions from the XNYS calendar (the replay's), as the fill function and
    the orders service ask for them."""

    def __init__(self, calendar: MarketCalendar) -> None:
        count = len(calendar)
        sessions = [calendar.session(i) for i in range(count)]
        self._opens = [s.open_ns for s in sessions]
        self._closes = [s.close_ns for s in sessions]
        self._dates = [s.date for s in sessions]
        self.opens = np.asarray(self._opens, dtype=np.int64)
        self.closes = np.asarray(self._closes, dtype=np.int64)

    def at(self, at_ns: int) -> MarketSession | None:
        """The session in force at ``at_ns``, None when the market is closed."""
        index = bisect_right(self._opens, at_ns) - 1
        if index < 0 or at_ns >= self._closes[index]:
            return None
        return MarketSession(self._opens[index], self._closes[index])

    def closing_after(self, at_ns: int) -> MarketSession:
        """The first session that closes after ``at_ns`` (today's, or the next one)."""
        index = bisect_right(self._closes, at_ns)
        if index >= len(self._closes):
            raise FeedError("the market calendar has no session ahead")
        return MarketSession(self._opens[index], self._closes[index])

    def between(self, start_ns: int, end_ns: int) -> list[tuple[date, MarketSession]]:
        """(date, session) of every session whose close lies in [start, end]."""
        first = bisect_right(self._closes, start_ns - 1)
        last = bisect_right(self._closes, end_ns)
        return [(self._dates[i], MarketSession(self._opens[i], self._closes[i])) for i in range(first, last)]

    def in_session(self, times: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.opens, times, "right") - 1
        return (index >= 0) & (times < self.closes[np.maximum(index, 0)])


class Feed:
    """Ticks in feed order (global positions 0..n-1) and each symbol's columns."""

    def __init__(
        self,
        times: np.ndarray,
        columns: dict[str, SymbolColumns],
        tick_at: Callable[[int], Tick],
        sessions: Sessions,
        scale: int,
        description: str,
    ) -> None:
        self.times = times
        self.columns = columns
        self.tick_at = tick_at
        self.sessions = sessions
        self.scale = scale
        self.description = description
        # Option contracts with model quotes in the feed, by OCC symbol.
        self.options: dict[str, SymbolSpec] = {}

    def __len__(self) -> int:
        return len(self.times)

    @property
    def symbols(self) -> list[str]:
        return sorted(self.columns)

    def delivered_by(self, at_ns: int) -> int:
        """How many ticks have time <= at_ns (a clock at at_ns has handed them all over)."""
        return int(np.searchsorted(self.times, at_ns, "right"))

    @classmethod
    def from_ticks(cls, ticks: Sequence[FeedTick], sessions: Sessions, description: str) -> Feed:
        """From market-data ticks (a replayed recording, archived or historical quotes)."""
        if not ticks:
            raise FeedError("no quotes in the backtest window")
        scale = _scale(ticks)
        converted: dict[Decimal | None, int] = {None: 0}
        symbols: dict[str, list[int]] = {}
        times = np.fromiter((t.quote_at_ns for t in ticks), dtype=np.int64, count=len(ticks))
        if len(times) > 1 and bool((np.diff(times) < 0).any()):
            raise FeedError("quotes are not in time order")

        def scaled(value: Decimal | None) -> int:
            found = converted.get(value)
            if found is None:
                found = converted[value] = 0 if value is None else int(value * scale)
            return found

        bids = np.fromiter((scaled(t.bid) for t in ticks), dtype=np.int64, count=len(ticks))
        asks = np.fromiter((scaled(t.ask) for t in ticks), dtype=np.int64, count=len(ticks))
        for position, tick in enumerate(ticks):
            symbols.setdefault(tick.symbol, []).append(position)

        def tick_at(position: int) -> Tick:
            t = ticks[position]
            return Tick(
                t.symbol,
                t.bid or ZERO,
                t.bid_size or ZERO,
                t.ask or ZERO,
                t.ask_size or ZERO,
                t.quote_at_ns,
                t.sequence,
            )

        return cls._assemble(times, bids, asks, symbols, tick_at, sessions, scale, description)

    @classmethod
    def from_columns(
        cls,
        symbol_names: Sequence[str],
        codes: np.ndarray,
        times: np.ndarray,
        bids: np.ndarray,
        asks: np.ndarray,
        bid_sizes: np.ndarray,
        ask_sizes: np.ndarray,
        sequences: np.ndarray,
        places: int,
        sessions: Sessions,
        description: str,
    ) -> Feed:
        """From integer columns (prices in units of 10^-places dollars): generated feeds."""
        scale = 10**places
        symbols = {name: np.flatnonzero(codes == code) for code, name in enumerate(symbol_names)}
        unit = Decimal(1).scaleb(-places)
        prices: dict[int, Decimal] = {}

        def price(value: int) -> Decimal:
            found = prices.get(value)
            if found is None:
                found = prices[value] = Decimal(value) * unit
            return found

        def tick_at(position: int) -> Tick:
            return Tick(
                symbol_names[int(codes[position])],
                price(int(bids[position])),
                Decimal(int(bid_sizes[position])),
                price(int(asks[position])),
                Decimal(int(ask_sizes[position])),
                int(times[position]),
                int(sequences[position]),
            )

        return cls._assemble(times, bids, asks, symbols, tick_at, sessions, scale, description)

    @classmethod
    def _assemble(
        cls,
        times: np.ndarray,
        bids: np.ndarray,
        asks: np.ndarray,
        symbols: Mapping[str, Sequence[int] | np.ndarray],
        tick_at: Callable[[int], Tick],
        sessions: Sessions,
        scale: int,
        description: str,
    ) -> Feed:
        tradable = (bids > 0) & (asks > bids) & sessions.in_session(times)
        columns = {}
        for symbol, positions in symbols.items():
            where = np.asarray(positions, dtype=np.int64)
            columns[symbol] = SymbolColumns(
                symbol, where, times[where], bids[where], asks[where], tradable[where], scale
            )
        return cls(times, columns, tick_at, sessions, scale, description)


def _scale(ticks: Iterable[FeedTick]) -> int:
    """The smallest power of ten that makes every price of the feed an integer."""
    places = 0
    seen: set[Decimal] = set()
    for tick in ticks:
        for value in (tick.bid, tick.ask):
            if value is None or value in seen:
                continue
            seen.add(value)
            exponent = value.normalize().as_tuple().exponent
            if isinstance(exponent, int) and -exponent > places:
                places = -exponent
                if places > MAX_PLACES:
                    raise FeedError(f"price {value} has more than {MAX_PLACES} decimals")
    return 10**places
