"""Regular sessions for the matcher, from the market-data calendar, cached so the fill
function can ask "which session is in force at t" without I/O."""

from __future__ import annotations

import bisect
from datetime import timedelta

from mbt.marketdata.v1 import marketdata_pb2
from services.common.conv import datetime_from_ns, timestamp_ns, to_date
from services.common.remote import call
from services.matcher.domain import MarketSession

WINDOW_DAYS = 14
DAY_NS = 86_400 * 10**9


class SessionCalendar:
    def __init__(self, stub, timeout: float) -> None:
        self.stub = stub
        self.timeout = timeout
        self._opens: list[int] = []
        self._sessions: list[MarketSession] = []
        # Loaded spans of time (epoch ns); the calendar is complete inside each.
        self._loaded: list[tuple[int, int]] = []

    async def ensure(self, at_ns: int) -> None:
        """Make sure the sessions around ``at_ns`` are loaded."""
        if any(low <= at_ns < high for low, high in self._loaded):
            return
        day = datetime_from_ns(at_ns).date()
        start, end = day - timedelta(days=WINDOW_DAYS), day + timedelta(days=WINDOW_DAYS)
        reply = await call(self.stub.ListCalendar, marketdata_pb2.ListCalendarRequest(
            from_date=to_date(start), to_date=to_date(end)), timeout=self.timeout, what="market data")
        loaded = {s.open_ns: s for s in self._sessions}
        loaded.update({timestamp_ns(d.open_at): MarketSession(timestamp_ns(d.open_at), timestamp_ns(d.close_at))
                       for d in reply.days})
        self._sessions = [loaded[k] for k in sorted(loaded)]
        self._opens = sorted(loaded)
        margin = DAY_NS  # the first and last loaded days may straddle time zones
        self._loaded.append((at_ns - (WINDOW_DAYS - 1) * DAY_NS + margin, at_ns + (WINDOW_DAYS - 1) * DAY_NS))

    def session_at(self, at_ns: int) -> MarketSession | None:
        """The session in force at ``at_ns``, None when the market is closed."""
        index = bisect.bisect_right(self._opens, at_ns) - 1
        if index < 0:
            return None
        session = self._sessions[index]
        return session if at_ns < session.close_ns else None
