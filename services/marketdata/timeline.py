"""Where a recording's ticks fall in simulated time (pure: no clock, no I/O).

A recording covers one or more consecutive trading sessions. Replay day 0 plays the
recorded sessions on their own dates; when the recording runs out and looping is on,
the same recording plays again on the next trading sessions of the calendar, so the
market never goes dead. Each recorded tick keeps its New York time of day; on a day
that closes early, ticks recorded after that close are not played.

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

from services.marketdata.market_calendar import MarketCalendar, TradingSession, new_york_date, new_york_midnight_ns
from services.marketdata.recording import Recording
from services.marketdata.domain.ticks import Tick

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


@dataclass(frozen=True)
class _RecordedDay:
    midnight_ns: int
    first: int
    end: int


class ReplayTimeline:
    def __init__(self, recording: Recording, calendar: MarketCalendar, *, loop: bool) -> None:
        self.recording = recording
        self.calendar = calendar
        self.loop = loop
        self._days: list[_RecordedDay] = []
        times = recording.times
        index = 0
        while index < len(times):
            day = new_york_date(times[index])
            end = bisect_left(times, new_york_midnight_ns(day + timedelta(days=1)), index)
            self._days.append(_RecordedDay(new_york_midnight_ns(day), index, end))
            index = end
        first_session = calendar.index_on_or_after(new_york_date(times[0]))
        if first_session is None:
            raise ValueError(f"{recording.path}: recorded after the end of the market calendar")
        self._first_session = first_session

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
        return ReplayDay(index, cycle, session, starts - recorded.midnight_ns, recorded.first, recorded.end,
                         session.close_ns if session.early_close else END_OF_TIME, starts)

    def day_index_at(self, t_ns: int) -> int:
        """The replay day whose span holds ``t_ns`` (negative before the first)."""
        return self.calendar.index_on_or_before(t_ns) - self._first_session

    def default_start_ns(self) -> int:
        """Half an hour into the first replayed session: quotes exist and the market is open."""
        return self.day(0).session.open_ns + 30 * MINUTE_NS

    def _played(self, day: ReplayDay, after_ns: int, until_ns: int) -> tuple[int, int]:
        """Global index range of the day's ticks with after < time <= until (and before the cutoff)."""
        times = self.recording.times
        last = min(until_ns, day.cutoff_ns - 1)
        return (bisect_right(times, after_ns - day.shift_ns, day.first, day.end),
                bisect_right(times, last - day.shift_ns, day.first, day.end))

    def _place(self, day: ReplayDay, index: int) -> Tick:
        tick = self.recording.ticks[index]
        return tick.moved(tick.quote_at_ns + day.shift_ns,
                          day.cycle * self.recording.count(tick.symbol) + tick.sequence)

    def between(self, after_ns: int, until_ns: int, symbols: Iterable[str] | None = None) -> Iterator[Tick]:
        """Played ticks with after < time <= until, in feed order (all symbols when None)."""
        wanted = None if symbols is None else frozenset(symbols)
        if wanted is not None and not wanted:
            return
        ticks = self.recording.ticks
        for index in range(max(0, self.day_index_at(after_ns)), self.day_index_at(until_ns) + 1):
            day = self.day(index)
            if day is None:
                return
            first, end = self._played(day, after_ns, until_ns)
            for position in range(first, end):
                if wanted is None or ticks[position].symbol in wanted:
                    yield self._place(day, position)

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
        return (bisect_right(times, after_ns - day.shift_ns, lo, hi),
                bisect_right(times, last - day.shift_ns, lo, hi))

    def latest(self, symbol: str, at_ns: int) -> Tick | None:
        """The symbol's last played tick at or before ``at_ns``."""
        if symbol not in self.recording.times_by_symbol:
            return None
        index = self.day_index_at(at_ns)
        for back in range(index, max(-1, index - len(self._days) - 1), -1):
            day = self.day(back)
            if day is None:
                continue
            first, end = self._symbol_range(symbol, day, -END_OF_TIME, at_ns)
            if first < end:
                return self._place(day, self.recording.indices_by_symbol[symbol][end - 1])
        return None

    def history(self, symbol: str, from_ns: int, to_ns: int, after_sequence: int, limit: int) -> list[Tick]:
        """Up to ``limit`` played ticks with from <= time <= to and sequence > after_sequence."""
        if symbol not in self.recording.times_by_symbol:
            return []
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
