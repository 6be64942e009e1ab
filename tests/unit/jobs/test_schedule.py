"""Due points on the market clock: each session's close (early closes included, none on
weekends or holidays), each whole hour; and the keys operators give for them."""

from datetime import UTC, date, datetime, timedelta

import pytest

from services.common.config import Settings
from services.common.wire.conv import datetime_from_ns
from services.jobs.registry import (
    BACKTEST_ID,
    HOUR,
    HOURLY,
    REGISTRY,
    SESSION_CLOSE,
    SESSION_DATE,
    WEEK_CLOSE,
    key_for_date,
)
from services.jobs.schedule import Due, Session, next_due
from services.marketdata.domain.calendar import xnys

UTC = UTC


def sessions(first: date, last: date) -> list[Session]:
    return [Session(s.date, datetime_from_ns(s.close_ns)) for s in xnys().sessions_between(first, last)]


def walk(cadence: str, start: datetime, end: datetime, known: list[Session]) -> list[Due]:
    due, after = [], start
    while (point := next_due(cadence, after, known)) is not None and point.at <= end:
        due.append(point)
        after = point.at
    return due


def test_session_closes_from_a_friday_morning_over_a_weekend_and_a_holiday_and_an_early_close():
    known = sessions(date(2012, 6, 29), date(2012, 7, 10))
    due = walk(SESSION_CLOSE, datetime(2012, 6, 29, 14, tzinfo=UTC), datetime(2012, 7, 6, 23, tzinfo=UTC), known)
    assert due == [
        Due("2012-06-29", datetime(2012, 6, 29, 20, tzinfo=UTC)),
        Due("2012-07-02", datetime(2012, 7, 2, 20, tzinfo=UTC)),
        Due("2012-07-03", datetime(2012, 7, 3, 17, tzinfo=UTC)),  # 13:00 New York, the day before July 4th
        Due("2012-07-05", datetime(2012, 7, 5, 20, tzinfo=UTC)),  # July 4th: closed
        Due("2012-07-06", datetime(2012, 7, 6, 20, tzinfo=UTC)),
    ]


def test_a_close_is_due_once_strictly_after_the_cursor():
    known = sessions(date(2012, 6, 21), date(2012, 6, 30))
    close = datetime(2012, 6, 21, 20, tzinfo=UTC)
    assert next_due(SESSION_CLOSE, close - timedelta(microseconds=1), known).key == "2012-06-21"
    assert next_due(SESSION_CLOSE, close, known).key == "2012-06-22"
    assert next_due(SESSION_CLOSE, datetime(2012, 6, 30, tzinfo=UTC), known) is None  # not loaded yet


def test_a_job_due_before_or_after_each_close_moves_with_an_early_close():
    known = sessions(date(2012, 7, 2), date(2012, 7, 10))
    hour, cutoff = timedelta(hours=-1), timedelta(minutes=90)
    start, end = datetime(2012, 7, 2, 14, tzinfo=UTC), datetime(2012, 7, 5, 23, tzinfo=UTC)
    walk_before = []
    after = start
    while (point := next_due(SESSION_CLOSE, after, known, hour)) is not None and point.at <= end:
        walk_before.append(point)
        after = point.at
    assert walk_before == [
        Due("2012-07-02", datetime(2012, 7, 2, 19, tzinfo=UTC)),
        Due("2012-07-03", datetime(2012, 7, 3, 16, tzinfo=UTC)),  # an hour before the 13:00 early close
        Due("2012-07-05", datetime(2012, 7, 5, 19, tzinfo=UTC)),
    ]
    # Due after its close: from the close itself, the cutoff of that same session is next.
    assert next_due(SESSION_CLOSE, datetime(2012, 7, 3, 17, tzinfo=UTC), known, cutoff) == Due(
        "2012-07-03", datetime(2012, 7, 3, 18, 30, tzinfo=UTC)
    )
    assert next_due(SESSION_CLOSE, datetime(2012, 7, 3, 18, 30, tzinfo=UTC), known, cutoff).key == "2012-07-05"


def test_the_expiration_run_waits_for_the_cutoff_and_the_sale_comes_before_the_close():
    settings = Settings.from_env({})
    assert REGISTRY["mbt.expire_options"].offset_in(settings) == timedelta(minutes=90)
    assert REGISTRY["mbt.sell_uncarriable_options"].offset_in(settings) == timedelta(minutes=-60)
    assert REGISTRY["mbt.eod_mark_all"].offset_in(settings) == timedelta()


def test_hours_are_whole_hours_of_market_time():
    due = walk(HOURLY, datetime(2012, 6, 21, 13, 59, 59, tzinfo=UTC), datetime(2012, 6, 21, 16, tzinfo=UTC), [])
    assert due == [
        Due("2012-06-21T14:00Z", datetime(2012, 6, 21, 14, tzinfo=UTC)),
        Due("2012-06-21T15:00Z", datetime(2012, 6, 21, 15, tzinfo=UTC)),
        Due("2012-06-21T16:00Z", datetime(2012, 6, 21, 16, tzinfo=UTC)),
    ]


@pytest.mark.parametrize(
    "kind, good, bad",
    [
        (SESSION_DATE, "2012-06-21", ["2012-6-21", "2012-02-30", "yesterday", ""]),
        (HOUR, "2012-06-21T15:00Z", ["2012-06-21T15:30Z", "2012-06-21T25:00Z", "2012-06-21 15:00"]),
        (BACKTEST_ID, "bt_" + "a" * 24, ["bt_", "ord_" + "a" * 24, "bt_" + "A" * 24, "bt_../../etc"]),
    ],
)
def test_keys_are_checked_by_kind(kind, good, bad):
    assert kind.check(good) == good
    for key in bad:
        with pytest.raises(ValueError, match=kind.name):
            kind.check(key)


def test_dates_key_only_jobs_keyed_by_date():
    assert key_for_date(REGISTRY["mbt.verify_audit_chain"], date(2012, 6, 21)) == "2012-06-21"
    with pytest.raises(ValueError, match="--key"):
        key_for_date(REGISTRY["mbt.run_backtest"], date(2012, 6, 21))


def test_a_week_closes_at_its_last_session_good_friday_and_a_holiday_friday_included():
    # Week of 2012-04-02: Good Friday (Apr 6) closed, so Thursday ends it; a normal Friday next.
    known = sessions(date(2012, 4, 2), date(2012, 4, 20))
    due = walk(WEEK_CLOSE, datetime(2012, 4, 2, 13, tzinfo=UTC), datetime(2012, 4, 14, tzinfo=UTC), known)
    assert due == [
        Due("2012-04-05", datetime(2012, 4, 5, 20, tzinfo=UTC)),
        Due("2012-04-13", datetime(2012, 4, 13, 20, tzinfo=UTC)),
    ]
    # Not knowing the next session yet, the week's end is not known either.
    assert (
        next_due(WEEK_CLOSE, datetime(2012, 4, 14, tzinfo=UTC), sessions(date(2012, 4, 16), date(2012, 4, 20))) is None
    )
