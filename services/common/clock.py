"""Time for MBT: nothing reads ``datetime.now()`` directly, it asks a ``Clock``.

The market-data service owns the authoritative clock (the wall clock with the alpaca
provider, the replay clock in replay); every other service runs a ``FollowerClock``
that tracks it over ``MarketDataService.WatchClock``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from services.common.errors import DomainError

log = logging.getLogger(__name__)


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, UTC-aware."""


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A test clock that only moves when told to, and never backwards."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, value: datetime) -> None:
        if value < self._now:
            raise ValueError(f"clock cannot go backwards: {value} < {self._now}")
        self._now = value

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)


class AnchoredClock:
    """simulated = simulated_at + (wall - wall_at) x speed; speed 0 means stopped.

    Re-anchoring is how a replay jumps (stepping, skipping a closed market) and how a
    follower takes over the leader's state.
    """

    def __init__(
        self, simulated_at: datetime | None = None, speed: Decimal = Decimal(1), wall: Clock | None = None
    ) -> None:
        self._wall = wall or WallClock()
        self._lock = threading.Lock()
        self._simulated_at = simulated_at
        self._wall_at = self._wall.now()
        self._speed = speed

    @property
    def synced(self) -> bool:
        return self._simulated_at is not None

    @property
    def speed(self) -> Decimal:
        return self._speed

    def wall_now(self) -> datetime:
        """The wall clock this clock runs on (what ``wall_at`` is measured in)."""
        return self._wall.now()

    def anchor(self, simulated_at: datetime, speed: Decimal, wall_at: datetime | None = None) -> None:
        with self._lock:
            self._simulated_at = simulated_at
            self._wall_at = wall_at or self._wall.now()
            self._speed = speed

    def state(self) -> tuple[datetime, datetime, Decimal]:
        with self._lock:
            if self._simulated_at is None:
                raise DomainError("UNAVAILABLE", "the market clock is not synchronised yet; retry shortly")
            return self._simulated_at, self._wall_at, self._speed

    def now(self) -> datetime:
        simulated_at, wall_at, speed = self.state()
        if speed == 0:
            return simulated_at
        elapsed = (self._wall.now() - wall_at) / timedelta(microseconds=1)
        return simulated_at + timedelta(microseconds=int(Decimal(elapsed) * speed))


class FollowerClock(AnchoredClock):
    """Follows the market-data service's clock; reconnects when the stream drops.

    Never reads earlier than it already has: should the leader come back behind this
    follower (its state lost, or a wall clock skewed between hosts), the follower holds at
    its last reading, with a warning, until the leader's time passes it.
    """

    def __init__(self, wall: Clock | None = None) -> None:
        super().__init__(None, Decimal(0), wall)
        self._synced = asyncio.Event()
        self._floor_lock = threading.Lock()
        self._floor: datetime | None = None

    def now(self) -> datetime:
        reading = super().now()
        with self._floor_lock:
            if self._floor is not None and reading < self._floor:
                return self._floor
            self._floor = reading
            return reading

    def anchor(self, simulated_at: datetime, speed: Decimal, wall_at: datetime | None = None) -> None:
        before = self._floor
        super().anchor(simulated_at, speed, wall_at)
        behind = before - super().now() if before is not None else timedelta(0)
        if before is not None and behind > timedelta(0):
            log.warning(
                "the market clock came back behind this service's; holding until it catches up",
                extra={"fields": {"behind_seconds": behind.total_seconds(), "held_at": before.isoformat()}},
            )

    async def wait_synced(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def follow(self, stub, *, retry_seconds: float = 0.5) -> None:
        """Run until cancelled: apply every ``ClockState`` the leader streams."""
        from mbt.marketdata.v1 import marketdata_pb2
        from services.common.wire.conv import from_timestamp

        while True:
            try:
                async for message in stub.WatchClock(marketdata_pb2.WatchClockRequest()):
                    state = message.state
                    self.anchor(
                        from_timestamp(state.simulated_at, "simulated_at", required=True),
                        Decimal(state.speed or "0"),
                        from_timestamp(state.wall_at),
                    )
                    self._synced.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the leader restarting is normal; keep the last state
                log.info("market clock stream interrupted; retrying", extra={"fields": {"error": str(exc)[:200]}})
            await asyncio.sleep(retry_seconds)
