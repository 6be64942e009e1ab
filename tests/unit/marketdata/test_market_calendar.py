"""The XNYS calendar answers from exchange_calendars: holidays, weekends, early closes
and daylight-saving changes (times are UTC; New York is UTC-4 in summer, UTC-5 in winter)."""

from datetime import UTC, date, datetime

import pytest

from services.common.wire.conv import datetime_to_ns
from services.marketdata.domain.calendar import xnys


def ns(text: str) -> int:
    return datetime_to_ns(datetime.fromisoformat(text).astimezone(UTC))


def at(ns_value: int) -> str:
    return datetime.fromtimestamp(ns_value // 10**9, UTC).isoformat()


@pytest.fixture(scope="module")
def calendar():
    return xnys()


def test_a_regular_summer_day(calendar):
    session = calendar.session_on(date(2012, 6, 21))
    assert (at(session.open_ns), at(session.close_ns), session.early_close) == (
        "2012-06-21T13:30:00+00:00",
        "2012-06-21T20:00:00+00:00",
        False,
    )
    assert calendar.is_open(ns("2012-06-21T13:30:00+00:00"))
    assert not calendar.is_open(ns("2012-06-21T13:29:59+00:00"))
    assert not calendar.is_open(ns("2012-06-21T20:00:00+00:00"))


def test_independence_day_is_a_holiday_after_an_early_close(calendar):
    assert calendar.session_on(date(2012, 7, 4)) is None
    eve = calendar.session_on(date(2012, 7, 3))
    assert eve.early_close and at(eve.close_ns) == "2012-07-03T17:00:00+00:00"
    assert not calendar.is_open(ns("2012-07-03T17:30:00+00:00"))
    assert at(calendar.next_open_ns(ns("2012-07-03T18:00:00+00:00"))) == "2012-07-05T13:30:00+00:00"


def test_hurricane_sandy_closed_the_market_two_days(calendar):
    assert [s.date for s in calendar.sessions_between(date(2012, 10, 26), date(2012, 11, 1))] == [
        date(2012, 10, 26),
        date(2012, 10, 31),
        date(2012, 11, 1),
    ]


def test_a_weekend_has_no_session_and_friday_close_leads_to_monday_open(calendar):
    assert calendar.session_on(date(2012, 6, 23)) is None
    assert calendar.session_on(date(2012, 6, 24)) is None
    saturday = ns("2012-06-23T15:00:00+00:00")
    assert not calendar.is_open(saturday)
    assert at(calendar.next_open_ns(saturday)) == "2012-06-25T13:30:00+00:00"
    assert at(calendar.next_close_ns(saturday)) == "2012-06-25T20:00:00+00:00"


def test_day_after_thanksgiving_closes_at_one_pm_new_york(calendar):
    session = calendar.session_on(date(2012, 11, 23))
    assert session.early_close and at(session.close_ns) == "2012-11-23T18:00:00+00:00"


def test_daylight_saving_moves_the_open_in_utc(calendar):
    # DST ended Sunday 2012-11-04: the 09:30 New York open moves from 13:30Z to 14:30Z.
    assert at(calendar.session_on(date(2012, 11, 2)).open_ns) == "2012-11-02T13:30:00+00:00"
    assert at(calendar.session_on(date(2012, 11, 5)).open_ns) == "2012-11-05T14:30:00+00:00"
    # DST began Sunday 2012-03-11: back to 13:30Z.
    assert at(calendar.session_on(date(2012, 3, 9)).open_ns) == "2012-03-09T14:30:00+00:00"
    assert at(calendar.session_on(date(2012, 3, 12)).open_ns) == "2012-03-12T13:30:00+00:00"


def test_while_open_the_next_close_is_today_and_the_next_open_tomorrow(calendar):
    noon = ns("2012-06-21T16:00:00+00:00")
    assert at(calendar.next_close_ns(noon)) == "2012-06-21T20:00:00+00:00"
    assert at(calendar.next_open_ns(noon)) == "2012-06-22T13:30:00+00:00"
    assert calendar.current_session(noon).date == date(2012, 6, 21)
