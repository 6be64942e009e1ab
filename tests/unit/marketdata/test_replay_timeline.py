"""Where the bundled recording's ticks fall in simulated time: day 0 is the recorded day
itself, later days replay it on the next trading sessions (New York time of day kept,
early closes cut), and sequence numbers are the same every time."""

import itertools
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.common.wire.conv import datetime_to_ns
from services.marketdata.domain.calendar import xnys
from services.marketdata.recording import BUNDLED_QUOTES, load_recording
from services.marketdata.timeline import ReplayTimeline
from tests.support import recording as recorded

AMZN_TICKS, GOOG_TICKS = 55071, 45569


def ns(text: str) -> int:
    return datetime_to_ns(datetime.fromisoformat(text).astimezone(UTC))


@pytest.fixture(scope="module")
def timeline():
    return ReplayTimeline(load_recording(BUNDLED_QUOTES), xnys(), loop=True)


def test_the_recording_is_the_real_sample(timeline):
    recording = timeline.recording
    assert (recording.count("AMZN"), recording.count("GOOG")) == (AMZN_TICKS, GOOG_TICKS)
    assert [(t.symbol, t.quote_at_ns, t.sequence, t.bid, t.bid_size, t.ask, t.ask_size) for t in recording.ticks] == [
        (q.symbol, q.at_ns, q.sequence, q.bid, q.bid_size, q.ask, q.ask_size) for q in recorded.all_quotes()
    ]
    first = recording.ticks[0]
    assert (first.symbol, first.quote_at_ns, first.bid, first.ask) == (
        "GOOG",
        1340285400015105074,
        Decimal("579.40"),
        Decimal("580.23"),
    )


def test_day_zero_plays_the_recorded_day_and_then_the_next_sessions(timeline):
    assert timeline.day(0).session.date == date(2012, 6, 21) and timeline.day(0).shift_ns == 0
    assert [timeline.day(n).session.date for n in (1, 2, 8, 9)] == [
        date(2012, 6, 22),
        date(2012, 6, 25),
        date(2012, 7, 3),
        date(2012, 7, 5),
    ]
    friday = list(timeline.between(ns("2012-06-22T00:00:00-04:00"), ns("2012-06-22T23:59:59-04:00")))
    assert len(friday) == AMZN_TICKS + GOOG_TICKS
    assert friday[0].quote_at_ns == 1340285400015105074 + 24 * 3600 * 10**9


def test_sequences_continue_loop_after_loop_and_strictly_increase_per_symbol(timeline):
    monday = list(timeline.between(ns("2012-06-25T09:00:00-04:00"), ns("2012-06-25T16:00:00-04:00"), {"AMZN"}))
    assert [t.sequence for t in monday] == list(range(2 * AMZN_TICKS + 1, 3 * AMZN_TICKS + 1))
    two_days = list(timeline.between(ns("2012-06-21T00:00:00-04:00"), ns("2012-06-22T23:00:00-04:00"), {"GOOG"}))
    assert [t.sequence for t in two_days] == list(range(1, 2 * GOOG_TICKS + 1))
    assert all(a.quote_at_ns <= b.quote_at_ns for a, b in itertools.pairwise(two_days))


def test_an_early_close_day_plays_only_the_ticks_before_its_close(timeline):
    july_3 = list(timeline.between(ns("2012-07-03T00:00:00-04:00"), ns("2012-07-03T23:59:59-04:00")))
    assert july_3 and max(t.quote_at_ns for t in july_3) < ns("2012-07-03T13:00:00-04:00")
    one_pm = ns("2012-06-21T13:00:00-04:00")
    assert len(july_3) == sum(1 for q in recorded.all_quotes() if q.at_ns < one_pm)


def test_daylight_saving_keeps_the_new_york_time_of_day(timeline):
    # November 5 2012 is in EST: the first tick plays at 09:30:00.015 New York, 14:30Z.
    day = timeline.day_index_at(ns("2012-11-05T12:00:00-05:00"))
    first = next(timeline.between(timeline.day(day).starts_ns, ns("2012-11-05T23:00:00-05:00")))
    assert datetime.fromtimestamp(first.quote_at_ns // 10**9, UTC).strftime("%H:%M:%S") == "14:30:00"


def test_two_replays_of_the_same_span_are_identical(timeline):
    again = ReplayTimeline(load_recording(BUNDLED_QUOTES), xnys(), loop=True)
    span = (ns("2012-06-21T15:00:00-04:00"), ns("2012-06-22T10:00:00-04:00"))  # across the loop
    first = [t.key() for t in timeline.between(*span)]
    assert first == [t.key() for t in again.between(*span)]
    assert {t[0] for t in first} == {"AMZN", "GOOG"} and len(first) > 20_000


def test_latest_reaches_back_over_nights_and_weekends(timeline):
    saturday = ns("2012-06-23T12:00:00-04:00")
    latest = timeline.latest("AMZN", saturday)
    assert latest.sequence == 2 * AMZN_TICKS
    assert timeline.latest("AMZN", ns("2012-06-21T09:29:00-04:00")) is None
    assert timeline.latest("MSFT", saturday) is None


def test_history_pages_by_sequence(timeline):
    start, end = ns("2012-06-21T10:00:00-04:00"), ns("2012-06-21T10:01:00-04:00")
    everything = timeline.history("AMZN", start, end, 0, 10_000)
    first_page = timeline.history("AMZN", start, end, 0, 10)
    second_page = timeline.history("AMZN", start, end, first_page[-1].sequence, 10)
    assert first_page + second_page == everything[:20]
    assert all(start <= t.quote_at_ns <= end for t in everything)


def test_without_looping_the_replay_runs_out(timeline):
    once = ReplayTimeline(timeline.recording, xnys(), loop=False)
    assert once.day(1) is None
    assert list(once.between(ns("2012-06-22T00:00:00-04:00"), ns("2012-06-23T00:00:00-04:00"))) == []
    assert once.next_time_after(ns("2012-06-21T16:00:00-04:00")) is None
    assert timeline.next_time_after(ns("2012-06-21T16:00:00-04:00")) == 1340285400015105074 + 24 * 3600 * 10**9
