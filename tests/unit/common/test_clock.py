"""A follower clock never reads earlier than it already has, whatever its leader says."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.common.clock import FollowerClock, ManualClock

WALL_START = datetime(2030, 1, 1, tzinfo=UTC)
T = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)


def test_a_follower_holds_its_time_when_the_leader_comes_back_behind_it_until_the_leader_passes_it(caplog):
    wall = ManualClock(WALL_START)
    clock = FollowerClock(wall)
    clock.anchor(T, Decimal(1), WALL_START)
    wall.advance(timedelta(seconds=30))
    assert clock.now() == T + timedelta(seconds=30)

    clock.anchor(T + timedelta(seconds=10), Decimal(1), wall.now())  # a leader 20 s behind
    assert clock.now() == T + timedelta(seconds=30)
    assert "behind" in caplog.text
    wall.advance(timedelta(seconds=15))
    assert clock.now() == T + timedelta(seconds=30)
    wall.advance(timedelta(seconds=10))
    assert clock.now() == T + timedelta(seconds=35)


def test_a_follower_takes_every_forward_state():
    wall = ManualClock(WALL_START)
    clock = FollowerClock(wall)
    clock.anchor(T, Decimal(0), WALL_START)
    assert clock.now() == T
    clock.anchor(T + timedelta(hours=1), Decimal(0), WALL_START)
    assert clock.now() == T + timedelta(hours=1)
