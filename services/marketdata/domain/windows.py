"""Time and date windows of history requests: validated, defaulted, never in the future.

A window the service could not sensibly answer is refused with ``invalid_argument``
naming the field: an end before its start, a start before any feed we serve (1990), or
a span longer than one request may cover.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.common.errors import invalid_argument
from services.common.wire.conv import datetime_to_ns
from services.marketdata.domain.gating import DAY_NS

EARLIEST_NS = datetime_to_ns(datetime(1990, 1, 1, tzinfo=UTC))
EARLIEST_DATE = date(1990, 1, 1)
MAX_QUOTE_SPAN_NS = 366 * DAY_NS
DEFAULT_QUOTE_SPAN_NS = DAY_NS


def quote_window(
    from_ns: int | None, to_ns: int | None, now_ns: int, *, default_span_ns: int = DEFAULT_QUOTE_SPAN_NS
) -> tuple[int, int]:
    """[from, to] in nanoseconds. ``to`` defaults to now and is cut at now (there is no
    future to show); ``from`` defaults to ``default_span_ns`` (a day) before ``to``."""
    if from_ns is not None and to_ns is not None and from_ns > to_ns:
        raise invalid_argument("from must not be after to", "from")
    if from_ns is not None and from_ns < EARLIEST_NS:
        raise invalid_argument("from is before 1990-01-01; no feed goes back that far", "from")
    if to_ns is not None and to_ns < EARLIEST_NS:
        raise invalid_argument("to is before 1990-01-01; no feed goes back that far", "to")
    end = now_ns if to_ns is None else min(to_ns, now_ns)
    start = end - default_span_ns if from_ns is None else from_ns
    if start > end:
        raise invalid_argument("from is in the future: there are no quotes after now", "from")
    if end - start > MAX_QUOTE_SPAN_NS:
        raise invalid_argument(
            f"the window spans more than {MAX_QUOTE_SPAN_NS // DAY_NS} days; ask for a shorter one and page through it",
            "from",
        )
    return start, end


def date_window(
    from_date: date | None, to_date: date | None, *, default_from: date, default_to: date, max_days: int, latest: date
) -> tuple[date, date]:
    """[from, to] dates, inclusive, within [1990-01-01, latest]."""
    start = from_date or default_from
    end = to_date or default_to
    if start > end:
        raise invalid_argument("from must not be after to", "from")
    if start < EARLIEST_DATE:
        raise invalid_argument("from is before 1990-01-01", "from")
    if end > latest:
        raise invalid_argument(f"to is after {latest.isoformat()}, beyond what is known", "to")
    if (end - start).days > max_days:
        raise invalid_argument(f"the window spans more than {max_days} days", "from")
    return start, end
