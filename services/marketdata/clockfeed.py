"""The market clock this service owns and publishes to every follower.

``ClockState`` is what a ``FollowerClock`` needs: simulated = simulated_at + (wall -
wall_at) x speed, speed 0 when stepped. Every re-anchoring (a step, a jump over a closed
market, a restart) publishes a new state to every ``WatchClock`` stream; a burst of
re-anchorings reaches a slow watcher as its latest state, each state being complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.common.clock import AnchoredClock

WALL, REPLAY, STEPPED = "wall", "replay", "stepped"


@dataclass(frozen=True)
class ClockState:
    simulated_at: datetime
    wall_at: datetime
    speed: Decimal
    mode: str


class ClockPublisher:
    def __init__(self, clock: AnchoredClock, mode: str) -> None:
        self.clock = clock
        self.mode = mode
        self.version = 0
        self._changed = asyncio.Event()

    def state(self) -> ClockState:
        simulated_at, wall_at, speed = self.clock.state()
        return ClockState(simulated_at, wall_at, speed, self.mode)

    def reanchor(self, simulated_at: datetime, speed: Decimal) -> ClockState:
        self.clock.anchor(simulated_at, speed)
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
