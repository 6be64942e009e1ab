"""Where a recording's ticks fall in simulated time (pure: no clock, no I/O).

A recording covers one or more consecutive trading sessions. Replay day 0 plays the
recorded sessions on their own dates; when the recording runs out and looping is on,
the same recording plays again on the next trading sessions of the calendar, so the
market never goes dead. Each recorded tick keeps its New York time of day; on a day
that closes early, ticks recorded after that close are not played.

Recorded trades, when there are any, are played on the same days with the same shift and
cut, and are what bars are aggregated from; a symbol without trades gets bars of its quote
mids instead.

A recorded option is played only until its last trading day closes (a looped recording
never plays an expired contract's quotes again).

Sequence numbers are deterministic: a tick's sequence is ``cycle x N + k`` where ``N``
is the number of the symbol's ticks in the recording, ``k`` the tick's 1-based rank
among them and ``cycle`` how many times the recording has been played before. The
same recording therefore gives the same sequences, loop after loop, run after run.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from services.common.instruments import parse_symbol
from services.marketdata.domain.bars import Bar, Timeframe, Trade, quote_mid_bars, trade_bars
from services.marketdata.domain.calendar import MarketCalendar, TradingSession, new_york_date, new_york_midnight_ns
from services.marketdata.domain.options import last_trade_ns
from services.marketdata.domain.ticks import Tick
from services.marketdata.recording import Recording, TradeRecording

MINUTE_NS = 60 * 1_000_000_000
END_OF_TIME = 2**63 - 1


@dataclass(frozen=True)
class ReplayDay:
    index: int
    cycle: int
    session: TradingSession
    # Added to recorded times to place them on this day.
    shift_ns: int
    # Global index range of the recorded day's ticks.
    first: int
    end: int
    # Ticks at or after this time are not played (an early close); END_OF_TIME otherwise.
    cutoff_ns: int
    # This day owns simulated time from its midnight until the next replay day's midnight.
    starts_ns: int
    # The recorded day it plays: recorded times in [recorded_from_ns, recorded_until_ns).
    recorded_from_ns: int
    recorded_until_ns: int


@dataclass(frozen=True)
class _RecordedDay:
    midnight_ns: int
    next_midnight_ns: int
    first: int
    end: int


class ReplayTimeline:
    def __init__(
        self, recording: Recording, calendar: MarketCalendar, *, loop: bool, trades: TradeRecording | None = None
    ) -> None:
        self.recording = recording
        self.calendar = calendar
        self.loop = loop
        self.trades = trades
        self._days: list[_RecordedDay] = []
        times = recording.times
        index = 0
        while index < len(times):
            day = new_york_date(times[index])
            next_midnight = new_york_midnight_ns(day + timedelta(days=1))
            end = bisect_left(times, next_midnight, index)
            self._days.append(_RecordedDay(new_york_midnight_ns(day), next_midnight, index, end))
            index = end
        first_session = calendar.index_on_or_after(new_york_date(times[0]))
        if first_session is None:
            raise ValueError(f"{recording.path}: recorded after the end of the market calendar")
        self._first_session = first_session
        # Recorded options: the close that ends each one's trading.
        self.last_trade_ns: dict[str, int] = {}
        for symbol in recording.symbols:
            spec = parse_symbol(symbol)
            if spec.is_option:
                self.last_trade_ns[symbol] = last_trade_ns(spec, calendar) or 0

    @property
    def recorded_days(self) -> int:
        return len(self._days)

    def day(self, index: int) -> ReplayDay | None:
        if index < 0 or (not self.loop and index >= len(self._days)):
            return None
        session_index = self._first_session + index
        if session_index >= len(self.calendar):
            return None
        cycle, recorded_index = divmod(index, len(self._days))
        recorded = self._days[recorded_index]
        session = self.calendar.session(session_index)
        starts = new_york_midnight_ns(session.date)
        return ReplayDay(
            index,
            cycle,
            session,
            starts - recorded.midnight_ns,
            recorded.first,
            recorded.end,
            session.close_ns if session.early_close else END_OF_TIME,
            starts,
            recorded.midnight_ns,
            recorded.next_midnight_ns,
        )

    def day_index_at(self, t_ns: int) -> int:
        """The replay day whose span holds ``t_ns`` (negative before the first)."""
        return self.calendar.index_on_or_before(t_ns) - self._first_session

    def default_start_ns(self) -> int:
        """Half an hour into the first replayed session: quotes exist and the market is open."""
        first = self.day(0)
        if first is None:
            raise ValueError("the replay has no first day")
        return first.session.open_ns + 30 * MINUTE_NS

    def _played(self, day: ReplayDay, after_ns: int, until_ns: int) -> tuple[int, int]:
        """Global index range of the day's ticks with after < time <= until (and before the cutoff)."""
        times = self.recording.times
        last = min(until_ns, day.cutoff_ns - 1)
        return (
            bisect_right(times, after_ns - day.shift_ns, day.first, day.end),
            bisect_right(times, last - day.shift_ns, day.first, day.end),
        )

    def _place(self, day: ReplayDay, index: int) -> Tick:
        tick = self.recording.ticks[index]
        return tick.moved(
            tick.quote_at_ns + day.shift_ns, day.cycle * self.recording.count(tick.symbol) + tick.sequence
        )

    def between(self, after_ns: int, until_ns: int, symbols: Iterable[str] | None = None) -> Iterator[Tick]:
        """Played ticks with after < time <= until, in feed order (all symbols when None)."""
        wanted = None if symbols is None else frozenset(symbols)
        if wanted is not None and not wanted:
            return
        ticks = self.recording.ticks
        expiring = self.last_trade_ns
        for index in range(max(0, self.day_index_at(after_ns)), self.day_index_at(until_ns) + 1):
            day = self.day(index)
            if day is None:
                return
            first, end = self._played(day, after_ns, until_ns)
            for position in range(first, end):
                symbol = ticks[position].symbol
                if wanted is None or symbol in wanted:
                    if expiring and symbol in expiring and self.times_out(symbol, ticks[position], day):
                        continue
                    yield self._place(day, position)

    def times_out(self, symbol: str, tick: Tick, day: ReplayDay) -> bool:
        """Whether a recorded option's tick would play at or after its last trading close."""
        last = self.last_trade_ns.get(symbol)
        return last is not None and tick.quote_at_ns + day.shift_ns >= last

    def next_time_after(self, after_ns: int) -> int | None:
        """When the next tick of any symbol plays (None when the replay has run out)."""
        index = max(0, self.day_index_at(after_ns))
        while (day := self.day(index)) is not None:
            first, end = self._played(day, after_ns, END_OF_TIME)
            if first < end:
                return self.recording.times[first] + day.shift_ns
            index += 1
        return None

    def _symbol_range(self, symbol: str, day: ReplayDay, after_ns: int, until_ns: int) -> tuple[int, int]:
        """Positions in the symbol's own arrays of its played ticks with after < time <= until."""
        times = self.recording.times_by_symbol[symbol]
        lo = bisect_right(times, self.recording.times[day.first] - 1)
        hi = bisect_right(times, self.recording.times[day.end - 1])
        last = min(until_ns, day.cutoff_ns - 1)
        return (bisect_right(times, after_ns - day.shift_ns, lo, hi), bisect_right(times, last - day.shift_ns, lo, hi))

    def latest(self, symbol: str, at_ns: int, *, usable: bool = False) -> Tick | None:
        """The symbol's last played tick at or before ``at_ns`` (``usable``: the last usable one,
        looking back at most one loop of the recording)."""
        if symbol not in self.recording.times_by_symbol:
            return None
        at_ns = min(at_ns, self.last_trade_ns.get(symbol, END_OF_TIME) - 1)
        indices = self.recording.indices_by_symbol[symbol]
        ticks = self.recording.ticks
        index = self.day_index_at(at_ns)
        for back in range(index, max(-1, index - len(self._days) - 1), -1):
            day = self.day(back)
            if day is None:
                continue
            first, end = self._symbol_range(symbol, day, -END_OF_TIME, at_ns)
            for position in range(end - 1, first - 1, -1):
                if not usable or ticks[indices[position]].usable:
                    return self._place(day, indices[position])
        return None

    def history(self, symbol: str, from_ns: int, to_ns: int, after_sequence: int, limit: int) -> list[Tick]:
        """Up to ``limit`` played ticks with from <= time <= to and sequence > after_sequence."""
        if symbol not in self.recording.times_by_symbol:
            return []
        to_ns = min(to_ns, self.last_trade_ns.get(symbol, END_OF_TIME) - 1)
        indices = self.recording.indices_by_symbol[symbol]
        found: list[Tick] = []
        for index in range(max(0, self.day_index_at(from_ns)), self.day_index_at(to_ns) + 1):
            day = self.day(index)
            if day is None:
                break
            first, end = self._symbol_range(symbol, day, from_ns - 1, to_ns)
            for position in range(first, end):
                tick = self._place(day, indices[position])
                if tick.sequence > after_sequence:
                    found.append(tick)
                    if len(found) == limit:
                        return found
        return found

    # -- trades and bars -------------------------------------------------------------

    def has_trades(self, symbol: str) -> bool:
        return self.trades is not None and symbol in self.trades.times_by_symbol

    def _day_trades(self, symbol: str, day: ReplayDay, from_ns: int, until_ns: int) -> list[Trade]:
        """The symbol's trades played on ``day`` with from <= time < until (and before the cutoff)."""
        if self.trades is None:
            raise ValueError(f"no trade recording to play {symbol}'s trades from")
        times = self.trades.times_by_symbol[symbol]
        shift = day.shift_ns
        lo = max(from_ns - shift, day.recorded_from_ns)
        hi = min(min(until_ns, day.cutoff_ns) - shift, day.recorded_until_ns)
        recorded = self.trades.by_symbol[symbol][bisect_left(times, lo) : bisect_left(times, hi)]
        if not shift:
            return recorded
        return [Trade(symbol, t.at_ns + shift, t.price, t.size) for t in recorded]

    def bars(
        self, symbol: str, timeframe: Timeframe, from_ns: int, to_ns: int, closed_by_ns: int, limit: int
    ) -> list[Bar]:
        """Up to ``limit`` played bars of ``symbol`` starting in [from, to] and ended by
        ``closed_by_ns``, in time order: from its trades when the recording has any, from
        its quote mids otherwise (domain.bars). Only the events of the bars asked for are
        read, a replay day at a time."""
        trades = self.has_trades(symbol)
        if not trades and symbol not in self.recording.times_by_symbol:
            return []
        found: list[Bar] = []
        # Events from `from` on: a bar starting at or after it holds no earlier one.
        until = min(closed_by_ns, to_ns + timeframe.longest_ns)
        for index in range(max(0, self.day_index_at(from_ns)), self.day_index_at(min(to_ns, closed_by_ns)) + 1):
            day = self.day(index)
            if day is None:
                break
            session = day.session
            lo, hi = max(from_ns, session.open_ns), min(until, session.close_ns)
            if lo >= hi:
                continue
            if trades:
                day_bars = trade_bars(self._day_trades(symbol, day, lo, hi), timeframe, [session])
            else:
                day_bars = quote_mid_bars(self.history(symbol, lo, hi - 1, 0, END_OF_TIME), timeframe, [session])
            for bar in day_bars:
                if from_ns <= bar.start_ns <= to_ns and bar.end_ns <= closed_by_ns:
                    found.append(bar)
                    if len(found) == limit:
                        return found
        return found
