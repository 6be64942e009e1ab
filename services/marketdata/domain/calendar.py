"""The market calendar: NYSE (XNYS) sessions from the ``exchange_calendars`` library —
holidays, early closes and daylight-saving changes come from it, never from our code.

Sessions are kept as sorted nanosecond arrays so every question is a binary search.
"""

from __future__ import annotations

import functools
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
CALENDAR_START = date(1990, 1, 1)


@dataclass(frozen=True)
class TradingSession:
    date: date
    open_ns: int
    close_ns: int
    early_close: bool


def new_york_date(t_ns: int) -> date:
    return datetime.fromtimestamp(t_ns // 1_000_000_000, NEW_YORK).date()


def new_york_midnight_ns(day: date) -> int:
    """Nanoseconds of 00:00 New York time on ``day`` (EST or EDT, as it was that day)."""
    return int(datetime.combine(day, time(0), NEW_YORK).timestamp()) * 1_000_000_000


class MarketCalendar:
    def __init__(self, exchange: str = "XNYS", start: date = CALENDAR_START) -> None:
        import exchange_calendars

        calendar = exchange_calendars.get_calendar(exchange, start=start.isoformat())
        schedule = calendar.schedule
        self.exchange = exchange
        self._dates: list[date] = [label.date() for label in schedule.index]
        self._opens: list[int] = schedule["open"].dt.tz_convert(None).to_numpy().astype("int64").tolist()
        self._closes: list[int] = schedule["close"].dt.tz_convert(None).to_numpy().astype("int64").tolist()
        early = {label.date() for label in calendar.early_closes}
        self._early = [day in early for day in self._dates]
        self._midnights = [new_york_midnight_ns(day) for day in self._dates]

    @property
    def first_date(self) -> date:
        return self._dates[0]

    @property
    def last_date(self) -> date:
        return self._dates[-1]

    def __len__(self) -> int:
        return len(self._dates)

    def session(self, index: int) -> TradingSession:
        return TradingSession(self._dates[index], self._opens[index], self._closes[index], self._early[index])

    def index_on_or_after(self, day: date) -> int | None:
        """Index of the first session on or after ``day``; None past the calendar's end."""
        index = bisect_right(self._dates, day) - 1
        if index >= 0 and self._dates[index] == day:
            return index
        return index + 1 if index + 1 < len(self._dates) else None

    def index_on_or_before(self, t_ns: int) -> int:
        """Index of the last session whose New York date is on or before the date of
        ``t_ns`` (-1 before the first session)."""
        return bisect_right(self._midnights, t_ns) - 1

    def session_on(self, day: date) -> TradingSession | None:
        index = self.index_on_or_after(day)
        return self.session(index) if index is not None and self._dates[index] == day else None

    def session_on_or_before(self, day: date) -> TradingSession | None:
        """The last session whose date is ``day`` or earlier (None before the first)."""
        index = bisect_right(self._dates, day) - 1
        return self.session(index) if index >= 0 else None

    def sessions_between(self, first: date, last: date) -> list[TradingSession]:
        start = self.index_on_or_after(first)
        if start is None:
            return []
        end = bisect_right(self._dates, last)
        return [self.session(i) for i in range(start, end)]

    def is_open(self, t_ns: int) -> bool:
        index = bisect_right(self._opens, t_ns) - 1
        return index >= 0 and t_ns < self._closes[index]

    def current_session(self, t_ns: int) -> TradingSession | None:
        """The session in progress at ``t_ns`` (open <= t < close), if any."""
        index = bisect_right(self._opens, t_ns) - 1
        return self.session(index) if index >= 0 and t_ns < self._closes[index] else None

    def next_open_ns(self, t_ns: int) -> int | None:
        """The first open strictly after ``t_ns``; None past the calendar's end."""
        index = bisect_right(self._opens, t_ns)
        return self._opens[index] if index < len(self._opens) else None

    def next_close_ns(self, t_ns: int) -> int | None:
        """The first close strictly after ``t_ns`` (today's when the market is open)."""
        index = bisect_right(self._closes, t_ns)
        return self._closes[index] if index < len(self._closes) else None


@functools.cache
def xnys() -> MarketCalendar:
    """The NYSE calendar, built once per process (loading it takes about a second)."""
    return MarketCalendar("XNYS")
