"""Offering what is pending to its job: the background loop a service runs for rows it keeps
until a job has handled them (queued backtests, pending exports, undelivered notifications).

Each pass reads what is pending and offers each key not yet offered by this loop to the job
(blocking, in a thread). The job's queue is keyed (``services.jobs.queue``): a key offered
again that is pending or done sends nothing, so the loop remembers its keys only to spare the
queue, and may forget them. A pass runs at start (what was pending when the process
stopped), when woken (a new row), every ``poll_seconds`` when set, and ``retry_seconds`` after
a pass that failed (the service's database, or the jobs' database or broker away: what is
pending waits, stored). With ``reoffer_seconds`` the loop forgets what it offered that often,
so a key still pending then is offered again (its job failed for good: ``rerun`` sends it
again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

# The keys pending now, each with the arguments its job is offered with.
Pending = Callable[[], Awaitable[Mapping[str, Mapping[str, object]]]]


@dataclass
class PendingOffers:
    """The loop of one job. ``job``: the job's name; ``what``: what is pending, plural, for
    the log (``"backtests"``); ``log``: the owning service's logger. Times in seconds;
    ``poll_seconds`` None: a pass only when woken (or after a failure)."""

    job: str
    what: str
    log: logging.Logger
    retry_seconds: float
    poll_seconds: float | None = None
    reoffer_seconds: float | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def wake(self) -> None:
        """Something new is pending: run a pass now (after the current one, if running)."""
        self._wake.set()

    async def run(self, pending: Pending, offer: Callable[..., object]) -> None:
        """Run until canceled: offer each key of ``pending()`` as ``offer(job, key,
        **arguments)`` (``JobQueue.offer`` or ``JobQueue.rerun``). A key is remembered as
        offered once ``offer`` returned; a failed pass is logged and retried."""
        loop = asyncio.get_running_loop()
        offered: set[str] = set()
        reoffer = self.reoffer_seconds
        forget_at = loop.time() + (reoffer or 0.0)
        while True:
            self._wake.clear()
            if reoffer is not None and loop.time() >= forget_at:
                offered.clear()
                forget_at = loop.time() + reoffer
            timeout = self.poll_seconds
            try:
                for key, arguments in (await pending()).items():
                    if key not in offered:
                        await asyncio.to_thread(offer, self.job, key, **arguments)
                        offered.add(key)
            except Exception as exc:
                self.log.warning(
                    f"cannot offer {self.what} to the jobs queue; retrying", extra={"fields": {"error": str(exc)[:300]}}
                )
                timeout = self.retry_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
