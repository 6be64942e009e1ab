"""When scheduled jobs fall due, on the market clock: pure rules, no I/O.

``SESSION_CLOSE``: at each XNYS session's close (early closes included), keyed by the
session's date, or a fixed time before or after it (the job's offset). ``WEEK_CLOSE``: at the close of each week's last session (the last one of
its ISO week: Friday's, or Thursday's before a Good Friday), keyed by that session's date.
``HOURLY``: at each whole hour of market time (UTC), keyed by the hour.
In replay that is simulated time: a step over three sessions passes three closes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from services.jobs.registry import HOURLY, SESSION_CLOSE, WEEK_CLOSE


@dataclass(frozen=True)
class Session:
    day: date
    close_at: datetime


@dataclass(frozen=True)
class Due:
    """A due point: the job's key for it and its market time."""

    key: str
    at: datetime


def next_due(cadence: str, after: datetime, sessions: Sequence[Session], offset: timedelta = timedelta()) -> Due | None:
    """The first due point of ``cadence`` strictly after ``after``. ``sessions``: the trading
    sessions known from ``after - offset`` on, in order; None when they do not reach the
    next close. ``offset`` (``SESSION_CLOSE`` only) moves each due point from the close: a
    job due an hour before each close has -1 h (an early close moves it too)."""
    if cadence == SESSION_CLOSE:
        return next(
            (Due(s.day.isoformat(), s.close_at + offset) for s in sessions if s.close_at + offset > after), None
        )
    if cadence == WEEK_CLOSE:
        # A session is its week's last when the next known session is in another ISO week.
        for session, following in itertools.pairwise(sessions):
            if session.close_at > after and following.day.isocalendar()[:2] != session.day.isocalendar()[:2]:
                return Due(session.day.isoformat(), session.close_at)
        return None
    if cadence == HOURLY:
        hour = after.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        return Due(hour.strftime("%Y-%m-%dT%H:00Z"), hour)
    raise ValueError(f"unknown cadence {cadence!r}")
