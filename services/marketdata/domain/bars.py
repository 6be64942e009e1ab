"""OHLCV bars: trades (or, for a feed without trades, quote mids) aggregated into the time
buckets of the exchange's regular sessions. Pure: no clock, no I/O; sessions come in as
arguments (``services.marketdata.domain.calendar`` gives XNYS ones).

The rules, which every provider and the backtest share:

* **Timeframes** are Alpaca's names: ``1Min``, ``5Min``, ``15Min``, ``30Min``, ``1Hour``,
  ``1Day``.
* **Buckets follow the session.** An intraday bar covers ``[open + k x step, min(open +
  (k + 1) x step, close))`` of one session, so bars are aligned to the open (09:30 New
  York): a regular day has 1Hour bars 09:30-10:30 ... 14:30-15:30 and a last one
  15:30-16:00, and on an early-close day the last bar ends at that close. A ``1Day`` bar is
  the whole session ``[open, close)``. Nothing outside a regular session is in any bar.
  (Alpaca aligns hourly bars to the clock and its daily bars to midnight; MBT's follow the
  session so that a bar never mixes the pre-market with the open.)
* **Start inclusive, end exclusive**: an event exactly at a bar's end belongs to the next one.
* **From trades** (``Basis.TRADES``): open, high, low and close of the trade prices in feed
  order, ``volume`` the shares traded, ``trade_count``, and ``vwap`` = sum(price x size) /
  volume, rounded half-even to 4 decimal places (exact rational arithmetic before that one
  rounding).
* **From quote mids** (``Basis.QUOTE_MID``), for a symbol the feed has no trades of: the mid
  (bid + ask) / 2 of every usable quote (bid > 0, ask > bid), and an index's recorded level
  (``Condition.INDEX``: bid = ask = the level), so that an index's day bar gives its opening
  and closing values that its options settle on; ``volume`` 0, ``trade_count`` 0, no
  ``vwap``. Such bars say where the market was quoted, not where anything traded.
* **No activity, no bar**, as Alpaca does: a bucket without a trade (or usable quote) is
  omitted, so consecutive bars may leave gaps.

Prices and sizes are ``Decimal`` throughout; a mid of two decimals is exact.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from enum import Enum
from fractions import Fraction
from typing import TYPE_CHECKING

from services.common.errors import invalid_argument

if TYPE_CHECKING:
    from services.marketdata.domain.calendar import TradingSession
    from services.marketdata.domain.ticks import Tick

MINUTE_NS = 60 * 1_000_000_000
DAY_NS = 24 * 60 * MINUTE_NS
VWAP_PLACES = 4
# Digits kept by the sums: enough that adding up a session's price x size never rounds.
SUM_PRECISION = 60
ZERO = Decimal(0)


class Timeframe(Enum):
    """A bar length, by Alpaca's name."""

    MINUTE = "1Min"
    FIVE_MINUTES = "5Min"
    FIFTEEN_MINUTES = "15Min"
    THIRTY_MINUTES = "30Min"
    HOUR = "1Hour"
    DAY = "1Day"

    @property
    def step_ns(self) -> int | None:
        """Length of an intraday bucket; None for 1Day (the session is the bucket)."""
        return _STEPS[self]

    @property
    def longest_ns(self) -> int:
        """An upper bound of how long one bar lasts."""
        return _STEPS[self] or DAY_NS


_STEPS = {
    Timeframe.MINUTE: MINUTE_NS,
    Timeframe.FIVE_MINUTES: 5 * MINUTE_NS,
    Timeframe.FIFTEEN_MINUTES: 15 * MINUTE_NS,
    Timeframe.THIRTY_MINUTES: 30 * MINUTE_NS,
    Timeframe.HOUR: 60 * MINUTE_NS,
    Timeframe.DAY: None,
}
_BY_NAME = {t.value.lower(): t for t in Timeframe}


class Basis(Enum):
    """What a bar was aggregated from."""

    TRADES = "trades"
    QUOTE_MID = "quote_mid"


@dataclass(frozen=True, slots=True)
class Trade:
    """One execution: ``at_ns`` nanoseconds since the epoch, ``size`` in shares."""

    symbol: str
    at_ns: int
    price: Decimal
    size: Decimal


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of one symbol over ``[start_ns, end_ns)``. ``vwap`` is None for quote-mid bars."""

    symbol: str
    timeframe: Timeframe
    start_ns: int
    end_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trade_count: int
    vwap: Decimal | None
    basis: Basis


def parse_timeframe(raw: str, field: str = "timeframe") -> Timeframe:
    """A timeframe from its name, case-insensitive; ``invalid_argument`` naming the choices."""
    timeframe = _BY_NAME.get(raw.strip().lower()) if raw else None
    if timeframe is None:
        names = ", ".join(t.value for t in Timeframe)
        got = f"; got {raw[:32]!r}" if raw else ""
        raise invalid_argument(f"{field} must be one of {names}{got}", field)
    return timeframe


class _Sessions:
    """Binary search over sorted, non-overlapping sessions."""

    def __init__(self, sessions: Sequence[TradingSession]) -> None:
        self.sessions = sessions
        self.opens = [s.open_ns for s in sessions]

    def holding(self, t_ns: int) -> TradingSession | None:
        index = bisect_right(self.opens, t_ns) - 1
        if index < 0:
            return None
        session = self.sessions[index]
        return session if t_ns < session.close_ns else None


def bar_window(t_ns: int, timeframe: Timeframe, session: TradingSession) -> tuple[int, int]:
    """``(start_ns, end_ns)`` of the bar of ``session`` holding ``t_ns`` (open <= t < close)."""
    step = timeframe.step_ns
    if step is None:
        return session.open_ns, session.close_ns
    start = session.open_ns + (t_ns - session.open_ns) // step * step
    return start, min(start + step, session.close_ns)


def bar_windows(
    after_ns: int, until_ns: int, timeframe: Timeframe, sessions: Sequence[TradingSession]
) -> list[tuple[int, int]]:
    """Every bar window of ``sessions`` that ends in ``(after_ns, until_ns]``, in time order:
    the bars that close when a clock moves from ``after_ns`` to ``until_ns``."""
    windows = []
    for session in sessions:
        if session.close_ns <= after_ns or session.open_ns >= until_ns:
            continue
        step = timeframe.step_ns or session.close_ns - session.open_ns
        start = session.open_ns
        if after_ns > start:  # from the window holding after_ns: those before it closed already
            start += (after_ns - start) // step * step
        while start < session.close_ns:
            end = min(start + step, session.close_ns)
            if end > until_ns:
                break
            windows.append((start, end))
            start = end
    return windows


class _Bucket:
    """A bar being built: prices in feed order, volume, sum of price x size (None once a
    finer bar without a vwap was merged), trade count."""

    __slots__ = ("basis", "close", "count", "end", "high", "low", "notional", "open", "start", "symbol", "volume")

    def __init__(self, symbol: str, start: int, end: int, open_: Decimal, basis: Basis) -> None:
        self.symbol = symbol
        self.start = start
        self.end = end
        self.open = self.high = self.low = self.close = open_
        self.volume = ZERO
        self.notional: Decimal | None = ZERO
        self.count = 0
        self.basis = basis

    def add(self, high: Decimal, low: Decimal, close: Decimal) -> None:
        if high > self.high:
            self.high = high
        if low < self.low:
            self.low = low
        self.close = close

    def bar(self, timeframe: Timeframe) -> Bar:
        vwap = None
        if self.basis is Basis.TRADES and self.volume > 0 and self.notional is not None:
            # One exact rounding: Fraction division, then round half-even to VWAP_PLACES.
            units = round(Fraction(self.notional) / Fraction(self.volume) * 10**VWAP_PLACES)
            vwap = Decimal(units).scaleb(-VWAP_PLACES)
        return Bar(
            self.symbol,
            timeframe,
            self.start,
            self.end,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.count,
            vwap,
            self.basis,
        )


class _Aggregator:
    """Buckets events of several symbols, each symbol's in time order."""

    def __init__(self, timeframe: Timeframe, sessions: Sequence[TradingSession]) -> None:
        self.timeframe = timeframe
        self.sessions = _Sessions(sessions)
        self.open: dict[str, _Bucket] = {}
        self.last_ns: dict[str, int] = {}
        self.done: list[Bar] = []
        self._session: TradingSession | None = None

    def bucket(self, symbol: str, t_ns: int, open_: Decimal, basis: Basis) -> _Bucket | None:
        """The bucket ``t_ns`` falls in, opened at ``open_`` if new; None outside the sessions."""
        last = self.last_ns.get(symbol)
        if last is not None and t_ns < last:
            raise ValueError(f"{symbol} events are not in time order ({t_ns} after {last})")
        self.last_ns[symbol] = t_ns
        current = self.open.get(symbol)
        if current is not None and current.start <= t_ns < current.end:
            return current
        session = self._session
        if session is None or not session.open_ns <= t_ns < session.close_ns:
            session = self._session = self.sessions.holding(t_ns)
            if session is None:
                return None
        if current is not None:
            self.done.append(current.bar(self.timeframe))
        start, end = bar_window(t_ns, self.timeframe, session)
        current = self.open[symbol] = _Bucket(symbol, start, end, open_, basis)
        return current

    def bars(self) -> list[Bar]:
        self.done.extend(bucket.bar(self.timeframe) for bucket in self.open.values())
        self.open.clear()
        self.done.sort(key=lambda bar: (bar.start_ns, bar.symbol))
        return self.done


def trade_bars(trades: Iterable[Trade], timeframe: Timeframe, sessions: Sequence[TradingSession]) -> list[Bar]:
    """Bars (``Basis.TRADES``) of every symbol in ``trades``, ordered by (start, symbol).

    ``trades``: each symbol's in time order (ties keep their order: the later one closes the
    bar); trades outside ``sessions`` are ignored. ``sessions``: sorted, non-overlapping.
    Raises ValueError when a symbol's trades go back in time."""
    aggregator = _Aggregator(timeframe, sessions)
    with localcontext(prec=SUM_PRECISION):
        for trade in trades:
            price = trade.price
            bucket = aggregator.bucket(trade.symbol, trade.at_ns, price, Basis.TRADES)
            if bucket is not None:
                bucket.add(price, price, price)
                bucket.volume += trade.size
                if bucket.notional is None:
                    raise ValueError("a bar aggregated from trades has a notional (only merging unsets it)")
                bucket.notional += price * trade.size
                bucket.count += 1
        return aggregator.bars()


def quote_mid_bars(ticks: Iterable[Tick], timeframe: Timeframe, sessions: Sequence[TradingSession]) -> list[Bar]:
    """Bars (``Basis.QUOTE_MID``) of the mids of the usable ticks and the levels of an
    index's ticks (``Tick.mid``), ordered by (start, symbol).

    ``ticks``: each symbol's in time order; unusable ticks (crossed, locked, empty) and ticks
    outside ``sessions`` are ignored. Raises ValueError when a symbol's ticks go back in time."""
    aggregator = _Aggregator(timeframe, sessions)
    with localcontext(prec=SUM_PRECISION):
        for tick in ticks:
            mid = tick.mid
            if mid is not None:
                bucket = aggregator.bucket(tick.symbol, tick.quote_at_ns, mid, Basis.QUOTE_MID)
                if bucket is not None:
                    bucket.add(mid, mid, mid)
        return aggregator.bars()


def roll_up(bars: Iterable[Bar], timeframe: Timeframe, sessions: Sequence[TradingSession]) -> list[Bar]:
    """Finer bars merged into ``timeframe`` bars of ``sessions``, ordered by (start, symbol):
    each finer bar goes to the bucket holding its start (bars starting outside the sessions
    are dropped, e.g. a feed's extended-hours bars). Open of the first, close of the last,
    extremes of all; volumes and trade counts add up and the vwap is the volume-weighted mean
    of the finer vwaps (rounded as above). The finer bars must nest in the buckets (a
    30Min bar in a 1Hour one, not the reverse) and be in time order per symbol."""
    aggregator = _Aggregator(timeframe, sessions)
    with localcontext(prec=SUM_PRECISION):
        for bar in bars:
            bucket = aggregator.bucket(bar.symbol, bar.start_ns, bar.open, bar.basis)
            if bucket is None:
                continue
            bucket.add(bar.high, bar.low, bar.close)
            bucket.volume += bar.volume
            bucket.count += bar.trade_count
            if bar.vwap is None:
                if bar.volume:
                    bucket.notional = None  # traded shares at unknown prices: no vwap for the merged bar
            elif bucket.notional is not None:
                bucket.notional += bar.vwap * bar.volume
        return aggregator.bars()
