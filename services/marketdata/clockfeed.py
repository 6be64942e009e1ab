"""The market clock this service owns and publishes to every follower.

``ClockState`` is what a ``FollowerClock`` needs: simulated = simulated_at + (wall -
wall_at) x speed, speed 0 when stepped. Every re-anchoring (a step, a jump over a closed
market) publishes a new state to every ``WatchClock`` stream; a burst of re-anchorings
reaches a slow watcher as its latest state, each state being complete.

Simulated time never goes backwards, for any service: a new line is saved before any
follower hears of it, and a restarted replay continues the saved line (``resume``), so
it comes back exactly where the followers, which kept running, already are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from services.common.clock import AnchoredClock

WALL, REPLAY, STEPPED = "wall", "replay", "stepped"


@dataclass(frozen=True)
class ClockLine:
    """simulated = simulated_at + (wall - wall_at) x speed."""

    simulated_at: datetime
    wall_at: datetime
    speed: Decimal

    def at(self, wall: datetime) -> datetime:
        """The simulated time at ``wall``; never before ``simulated_at`` (a wall clock set back)."""
        elapsed = max(wall - self.wall_at, timedelta(0)) / timedelta(microseconds=1)
        return self.simulated_at + timedelta(microseconds=int(Decimal(elapsed) * self.speed))


@dataclass(frozen=True)
class ClockState:
    simulated_at: datetime
    wall_at: datetime
    speed: Decimal
    mode: str

    @property
    def line(self) -> ClockLine:
        return ClockLine(self.simulated_at, self.wall_at, self.speed)


def resume(saved: ClockLine | None, start: datetime, speed: Decimal, wall: datetime) -> ClockLine:
    """The line a replay clock starting at wall time ``wall`` runs on.

    ``saved`` is the line a previous run left (None on a first start), ``start`` the
    configured start and ``speed`` the configured speed (0 when stepped). The saved line
    goes on unchanged when it is at or past ``start`` and runs at ``speed``: followers hold
    that very line, so they see no change at all. Otherwise the clock is anchored anew at
    the later of where the saved line is now and ``start``: never behind a follower.
    """
    if saved is None:
        return ClockLine(start, wall, speed)
    now = saved.at(wall)
    if now >= start and saved.speed == speed:
        return saved
    return ClockLine(max(now, start), wall, speed)


class ClockPublisher:
    """Re-anchors the clock and tells every watcher. ``save`` (None: nothing to keep, as in
    benchmarks) makes a line durable; it runs before the clock moves, and when it fails
    the clock stays where it was and the error goes to the caller."""

    def __init__(
        self, clock: AnchoredClock, mode: str, save: Callable[[ClockLine], Awaitable[None]] | None = None
    ) -> None:
        self.clock = clock
        self.mode = mode
        self.version = 0
        self._save = save
        self._changed = asyncio.Event()

    def state(self) -> ClockState:
        simulated_at, wall_at, speed = self.clock.state()
        return ClockState(simulated_at, wall_at, speed, self.mode)

    async def reanchor(self, simulated_at: datetime, speed: Decimal) -> ClockState:
        line = ClockLine(simulated_at, self.clock.wall_now(), speed)
        if self._save is not None:
            await self._save(line)
        self.clock.anchor(line.simulated_at, line.speed, line.wall_at)
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return self.state()

    async def watch(self) -> AsyncIterator[ClockState]:
        """The current state, then every new one."""
        while True:
            changed = self._changed
            yield self.state()
            await changed.wait()
