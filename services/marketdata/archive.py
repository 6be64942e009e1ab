"""The tick archive writer: every tick handed to subscribers is archived, in batches,
off the streaming path (the feed only appends to a list; a background task writes).

Readers that must see everything delivered so far (``ListArchivedTicks``, a subscriber
catching up after a gap) call ``flush`` first. Retention deletes ticks older than the
configured number of days of simulated time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from services.common.clock import Clock
from services.common.wire.conv import datetime_to_ns
from services.marketdata.domain.gating import DAY_NS
from services.marketdata.domain.ticks import Tick
from services.marketdata.store import MarketDataStore

log = logging.getLogger(__name__)

BATCH_ROWS = 5000
PURGE_EVERY_SECONDS = 60.0


class TickArchiver:
    def __init__(self, store: MarketDataStore, clock: Clock, *, flush_seconds: float, retention_days: int) -> None:
        self.store = store
        self.clock = clock
        self.flush_seconds = flush_seconds
        self.retention_days = retention_days
        self.archived = 0
        self._pending: list[Tick] = []
        # Symbols whose old ticks retention looks at: what this process archived, and
        # (asked once) what earlier runs did.
        self._symbols: set[str] = set()
        self._symbols_loaded = False
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._last_purge = time.monotonic()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def append(self, ticks: list[Tick]) -> None:
        self._pending.extend(ticks)
        if len(self._pending) >= BATCH_ROWS:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything appended so far."""
        async with self._lock:
            while self._pending:
                batch = self._pending[:BATCH_ROWS]
                await self.store.archive(batch, datetime_to_ns(self.clock.now()))
                del self._pending[: len(batch)]
                self._symbols.update(t.symbol for t in batch)
                self.archived += len(batch)

    async def purge(self) -> int:
        """Delete ticks older than the retention (nothing when retention is 0: keep forever)."""
        if self.retention_days <= 0:
            return 0
        before = datetime_to_ns(self.clock.now()) - self.retention_days * DAY_NS
        await self.flush()
        if not self._symbols_loaded:
            self._symbols |= await self.store.archived_symbols()
            self._symbols_loaded = True
        return await self.store.purge_ticks(sorted(self._symbols), before)

    async def run(self) -> None:
        """Run until cancelled; a last flush happens in ``close``."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_seconds)
            self._wake.clear()
            try:
                await self.flush()
                if time.monotonic() - self._last_purge >= PURGE_EVERY_SECONDS:
                    self._last_purge = time.monotonic()
                    purged = await self.purge()
                    if purged:
                        log.info("tick archive purged", extra={"fields": {"rows": purged}})
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be briefly away; the ticks stay pending
                log.warning("tick archive write failed; will retry", extra={"fields": {"error": str(exc)[:300]}})

    async def close(self) -> None:
        try:
            await self.flush()
        except Exception as exc:
            log.error(
                "tick archive could not write its last batch",
                extra={"fields": {"error": str(exc)[:300], "ticks": self.pending}},
            )
