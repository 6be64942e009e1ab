"""The scheduler (``python -m services.jobs scheduler``; Celery beat's part, on the market
clock): it follows market data's clock (``WatchClock``, a ``FollowerClock``) and the XNYS
sessions (``ListCalendar``) and offers each scheduled job at every due point the clock
passes, in order: a job's next due point is offered only once its previous one has run (done,
or failed for good), so stepping a replay over three closes runs three closes' jobs, one
after the other. Where each job got to is its cursor in the jobs' database: a restarted
scheduler goes on from there, and offering a key twice sends nothing.

It also sweeps: jobs whose message is overdue or whose run's lease ran out are sent again.
Run exactly one (as with beat); a second one is harmless but useless.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
from collections.abc import Sequence
from datetime import datetime, timedelta

from mbt.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from services.common.clock import Clock, FollowerClock, WallClock
from services.common.config import Settings
from services.common.rpc.channels import open_channel
from services.common.rpc.remote import call
from services.common.security.auth import ServiceCredentials
from services.common.security.tokens import TokenIssuer, TokenKeys
from services.common.wire.conv import from_date, from_timestamp, to_date
from services.jobs.app import ready_marker
from services.jobs.queue import JobQueue
from services.jobs.records import PENDING, RUNNING, SERVICE, Cursor
from services.jobs.registry import REGISTRY, JobSpec
from services.jobs.schedule import Session, next_due

log = logging.getLogger("mbt.jobs")
TICK_SECONDS = 0.2
CALENDAR_DAYS = 14


class MarketCalendar:
    """Trading sessions from market data, loaded two weeks at a time."""

    def __init__(self, stub, timeout: float) -> None:
        self.stub = stub
        self.timeout = timeout
        self._sessions: dict[datetime, Session] = {}
        self._loaded_until: datetime | None = None

    async def sessions_after(self, moment: datetime) -> list[Session]:
        """Known sessions closing after ``moment``, a week of them at least."""
        if self._loaded_until is None or moment > self._loaded_until - timedelta(days=CALENDAR_DAYS // 2):
            first, last = moment.date() - timedelta(days=1), moment.date() + timedelta(days=CALENDAR_DAYS)
            reply = await call(
                self.stub.ListCalendar,
                marketdata_pb2.ListCalendarRequest(from_date=to_date(first), to_date=to_date(last)),
                timeout=self.timeout,
                what="market data",
            )
            for day in reply.days:
                close_at = from_timestamp(day.close_at, "close_at", required=True)
                self._sessions[close_at] = Session(from_date(day.date, "date", required=True), close_at)
            self._loaded_until = moment + timedelta(days=CALENDAR_DAYS)
        return [self._sessions[close] for close in sorted(self._sessions) if close > moment]


class Scheduler:
    def __init__(
        self, queue: JobQueue, clock: Clock, calendar: MarketCalendar, jobs: Sequence[JobSpec] | None = None
    ) -> None:
        """Each job's offset from its close is read from the jobs app's settings."""
        self.queue = queue
        self.clock = clock
        self.calendar = calendar
        self.jobs = [job for job in (jobs if jobs is not None else REGISTRY.values()) if job.cadence]
        self.sweep_every = queue.app.runtime.lease / 3
        self.wall = WallClock()  # sweeps are about real processes: wall time
        self._cursors: dict[str, Cursor] = {}
        self._swept_at: datetime | None = None
        # The records and the broker are blocking: one thread does that work, in order.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="scheduler")

    async def _blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def tick(self) -> None:
        """Offer what fell due by the market clock's now; sweep when it is time."""
        now = self.clock.now()
        for job in self.jobs:
            await self._advance(job, now)
        wall = self.wall.now()
        if self._swept_at is None or wall - self._swept_at >= self.sweep_every:
            self._swept_at = wall
            await self._blocking(self.queue.resend_lost)

    async def _advance(self, job: JobSpec, now: datetime) -> None:
        if job.cadence is None:
            raise ValueError(f"{job.name} has no cadence: only scheduled jobs advance")
        records = self.queue.records
        cursor = self._cursors.get(job.name) or await self._blocking(records.cursor, job.name)
        if cursor is None:  # first run: schedule from now on, never the past
            cursor = Cursor("", now)
            await self._blocking(records.move_cursor, job.name, cursor.key, cursor.due_at)
        self._cursors[job.name] = cursor
        offset = job.offset_in(self.queue.app.runtime.settings)
        # A due point after its close (a positive offset) belongs to a session that may have closed.
        sessions = await self.calendar.sessions_after(cursor.due_at - max(offset, timedelta()))
        due = next_due(job.cadence, cursor.due_at, sessions, offset)
        if due is None or due.at > now:
            return
        if cursor.key:
            previous = await self._blocking(records.get, job.name, cursor.key)
            if previous is not None and previous.state in (PENDING, RUNNING):
                return  # in order: the previous due point's run first
        await self._blocking(lambda: self.queue.offer(job.name, due.key))
        await self._blocking(records.move_cursor, job.name, due.key, due.at)
        self._cursors[job.name] = Cursor(due.key, due.at)
        log.info(
            "job due",
            extra={
                "fields": {"job": job.name, "key": due.key, "due_at": due.at.isoformat(), "market_now": now.isoformat()}
            },
        )

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception as exc:  # market data or the jobs' database away: try again next tick
                log.warning("scheduler tick failed", extra={"fields": {"error": str(exc)[:300]}})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_SECONDS)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


async def serve(settings: Settings) -> None:
    """The scheduler process: until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    credentials = ServiceCredentials(TokenIssuer(TokenKeys.from_settings(settings)), SERVICE)
    channel = open_channel(
        settings.service("marketdata").target, credentials, keepalive_seconds=settings.grpc_keepalive_seconds
    )
    marketdata = marketdata_pb2_grpc.MarketDataServiceStub(channel)
    clock = FollowerClock()
    following = asyncio.create_task(clock.follow(marketdata))
    queue = JobQueue(settings)
    scheduler = Scheduler(queue, clock, MarketCalendar(marketdata, settings.rpc_timeout_seconds))
    marker = ready_marker(settings, "scheduler")
    marker.unlink(missing_ok=True)
    try:
        while not await clock.wait_synced(5):
            log.info(
                "waiting for the market clock", extra={"fields": {"target": settings.service("marketdata").target}}
            )
            if stop.is_set():
                return
        await scheduler._blocking(lambda: queue.records)  # migrated off the event loop
        # Ready once every job's cursor is where it starts: at the market's now on a first run.
        await scheduler.tick()
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        log.info("scheduler ready", extra={"fields": {"jobs": [job.name for job in scheduler.jobs]}})
        await scheduler.run(stop)
    finally:
        marker.unlink(missing_ok=True)
        following.cancel()
        scheduler.close()
        queue.close()
        await channel.close()
