"""Where a restarted replay clock goes on: the saved line when nothing changed, else a new
line that starts no earlier than the saved one has reached."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.marketdata.clockfeed import ClockLine, resume

WALL = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
START = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)
LATER = START + timedelta(minutes=45)
PACED_SINCE_A_MINUTE = ClockLine(LATER, WALL - timedelta(minutes=1), Decimal(2))


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    "saved, start, speed, expected",
    [
        (None, START, Decimal(1), ClockLine(START, WALL, Decimal(1))),
        # Same speed: the very line the followers hold, so they see no change.
        (PACED_SINCE_A_MINUTE, START, Decimal(2), PACED_SINCE_A_MINUTE),
        # Another speed, or stepped now: anchored anew where the saved line has got to (45 + 2 x 1 min).
        (PACED_SINCE_A_MINUTE, START, Decimal(1), ClockLine(at(47), WALL, Decimal(1))),
        (PACED_SINCE_A_MINUTE, START, Decimal(0), ClockLine(at(47), WALL, Decimal(0))),
        # A stepped clock stays where its last step put it.
        (
            ClockLine(LATER, WALL - timedelta(hours=5), Decimal(0)),
            START,
            Decimal(0),
            ClockLine(LATER, WALL - timedelta(hours=5), Decimal(0)),
        ),
        # A configured start later than the saved line wins: time only moves forward.
        (ClockLine(LATER, WALL, Decimal(0)), at(60), Decimal(0), ClockLine(at(60), WALL, Decimal(0))),
        # A wall clock set back does not run the saved line backwards.
        (
            ClockLine(LATER, WALL + timedelta(hours=1), Decimal(1)),
            START,
            Decimal(3),
            ClockLine(LATER, WALL, Decimal(3)),
        ),
    ],
)
def test_resume(saved, start, speed, expected):
    assert resume(saved, start, speed, WALL) == expected


def test_a_line_runs_at_its_speed():
    line = ClockLine(START, WALL, Decimal("2.5"))
    assert line.at(WALL + timedelta(seconds=4)) == START + timedelta(seconds=10)
