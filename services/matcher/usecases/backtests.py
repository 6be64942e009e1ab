"""What the matcher does with backtests: store them queued and offer each to the
``mbt.run_backtest`` job, run one when that job asks (``RunBacktest``: one at a time in this
process, status and progress persisted), and serve their status, report and files to their
owner only.

A run reads its spec from its stored row and writes its outcome back. The job's queue
decides when a backtest runs and runs it again if its worker dies; this process only
guarantees that one backtest id is never run twice at once here (a second ``run`` joins the
first) and that a finished one is never run again. The engine is CPU-bound Python and runs in
a worker thread; the live matcher shares the process (and the interpreter lock) while it runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime

from services.common.clock import Clock
from services.common.config import Settings
from services.common.errors import DomainError, not_found
from services.common.ids import new_id
from services.common.persistence.db import Database
from services.common.persistence.pagination import page
from services.jobs.pending import PendingOffers
from services.jobs.queue import JobQueue
from services.matcher.backtest.engine import StrategyError
from services.matcher.backtest.feed import FeedError
from services.matcher.backtest.model import BacktestRun, BacktestSpec, ResultContent, RunStatus
from services.matcher.backtest.results import content_type
from services.matcher.backtest.runs import build_strategy, execute, feed_for
from services.matcher.backtest.script import ScriptError
from services.matcher.clients import MarketDataClient
from services.matcher.store import BacktestRepository

log = logging.getLogger(__name__)
EXPECTED_FAILURES = (DomainError, StrategyError, ScriptError, FeedError)
REPORT = "report.html"
RUN_BACKTEST = "mbt.run_backtest"
# How often a run's watchers look at its stored progress; how long to wait before offering
# again when the jobs' queue could not be reached.
PROGRESS_POLL_SECONDS = 0.5
OFFER_RETRY_SECONDS = 5


class Backtests:
    def __init__(
        self, settings: Settings, db: Database, clock: Clock, marketdata: MarketDataClient, queue: JobQueue
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.marketdata = marketdata
        self.queue = queue
        self._offers = PendingOffers(RUN_BACKTEST, "backtests", log, retry_seconds=OFFER_RETRY_SECONDS)
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._one_at_a_time = asyncio.Lock()

    # -- requests ---------------------------------------------------------------------------

    async def create(self, user_id: str, spec: BacktestSpec) -> BacktestRun:
        """Queue ``spec`` for ``user_id``; invalid_argument (naming the field) for a spec that
        could not run, refused now rather than failing in the background."""
        spec.validate()
        build_strategy(spec)
        run = BacktestRun(
            backtest_id=new_id("bt"), user_id=user_id, spec=spec, status=RunStatus.QUEUED, created_at=self.clock.now()
        )
        async with self.db.writing() as session:
            await BacktestRepository(session).add(run)
        self._offers.wake()
        return run

    async def get(self, user_id: str, backtest_id: str) -> BacktestRun:
        async with self.db.reading() as session:
            return await _owned(BacktestRepository(session), user_id, backtest_id)

    async def list(self, user_id: str, size: int, token: str) -> tuple[list[BacktestRun], str]:
        """The user's backtests, newest first."""

        async def fetch(after: tuple[datetime, str] | None, limit: int) -> list[BacktestRun]:
            async with self.db.reading() as session:
                return await BacktestRepository(session).list_for_user(user_id, after, limit)

        return await page(size, token, ("backtests", user_id), fetch, lambda run: (run.created_at, run.backtest_id))

    async def report(self, user_id: str, backtest_id: str) -> ResultContent:
        """The HTML report of a succeeded backtest (``failed_precondition`` before)."""
        return await self.file(user_id, backtest_id, REPORT)

    async def file(self, user_id: str, backtest_id: str, name: str) -> ResultContent:
        """One result file of a succeeded backtest (``failed_precondition`` before; not_found
        for a name it does not have)."""
        async with self.db.reading() as session:
            repo = BacktestRepository(session)
            run = await _owned(repo, user_id, backtest_id)
            if run.status is not RunStatus.SUCCEEDED:
                raise DomainError(
                    "FAILED_PRECONDITION",
                    f"backtest {backtest_id} is {run.status.value}; its files come when it has succeeded",
                )
            found = await repo.file(backtest_id, name)
        if found is None:
            raise not_found("file", name)
        return found

    # -- running ----------------------------------------------------------------------------

    async def offer_queued(self) -> None:
        """Background: offer every unfinished backtest to the ``mbt.run_backtest`` job — at
        start what was queued or running when the process stopped, then each new one. The
        job is keyed by backtest id, so offering one again sends nothing (unless its job had
        failed for good, the matcher away too long: then it is sent again)."""
        await self._offers.run(self._unfinished, self.queue.rerun)

    async def _unfinished(self) -> dict[str, dict[str, object]]:
        async with self.db.reading() as session:
            return {backtest_id: {} for backtest_id in await BacktestRepository(session).unfinished()}

    async def run(self, backtest_id: str) -> AsyncIterator[BacktestRun]:
        """Run a stored backtest to its end, yielding its state as it progresses and then its
        final state. A backtest this process is running already is joined; a finished one is
        answered as it is. Leaving early (the caller gone) does not stop the run. Raises
        not_found for an unknown id."""
        running = self._runs.get(backtest_id)
        if running is None:
            current = await self._stored(backtest_id)
            if not current.unfinished:
                yield current
                return
            running = self._runs.get(backtest_id)  # another call may have started it meanwhile
            if running is None:
                running = self._runs[backtest_id] = asyncio.create_task(self._execute(backtest_id))
                running.add_done_callback(lambda _: self._runs.pop(backtest_id, None))
        seen = None
        while True:
            finished = running.done()
            current = await self._stored(backtest_id)
            if (current.status, current.progress_percent) != seen:
                seen = (current.status, current.progress_percent)
                yield current
            if finished:
                return
            await asyncio.wait({running}, timeout=PROGRESS_POLL_SECONDS)

    async def _stored(self, backtest_id: str) -> BacktestRun:
        """The backtest, whoever owns it (for the platform's job); not_found otherwise."""
        async with self.db.reading() as session:
            run = await BacktestRepository(session).get(backtest_id)
        if run is None:
            raise not_found("backtest", backtest_id)
        return run

    async def _execute(self, backtest_id: str) -> None:
        async with self._one_at_a_time:
            await self._execute_alone(backtest_id)

    async def _execute_alone(self, backtest_id: str) -> None:
        """Run one stored backtest to its end; its outcome (or its error) is stored. Nothing
        happens when it finished meanwhile (run elsewhere)."""
        run = await self._update(
            backtest_id, lambda stored: stored.started(self.clock.now()) if stored.unfinished else stored
        )
        if not run.unfinished:
            return
        loop = asyncio.get_running_loop()
        try:
            run.spec.validate()
            strategy = build_strategy(run.spec)
            feed = await feed_for(run.spec, strategy, self.settings, self.marketdata)
            progress = _Progress(
                lambda percent: asyncio.run_coroutine_threadsafe(self._progress(backtest_id, percent), loop)
            )
            outcome = await asyncio.to_thread(
                execute, run.spec, strategy, feed, self.settings, user_id=run.user_id, progress=progress
            )
        except EXPECTED_FAILURES as exc:
            error = _message(exc)
        except Exception as exc:  # a bug must not leave the run "running" forever, nor kill the runner
            log.exception("backtest failed", extra={"fields": {"backtest_id": backtest_id}})
            error = f"internal error: {type(exc).__name__}"
        else:
            contents = [ResultContent(name, content_type(name), data) for name, data in outcome.files.items()]
            result = outcome.result
            await self._update(
                backtest_id,
                lambda stored: stored.succeeded(
                    tuple(outcome.statistics.rows()),
                    tuple(c.file for c in contents),
                    ticks=result.ticks,
                    orders=len(result.orders),
                    fills=len(result.fills),
                    now=self.clock.now(),
                ),
                contents,
            )
            return
        await self._update(backtest_id, lambda stored: stored.failed(error, self.clock.now()))

    async def _update(
        self,
        backtest_id: str,
        change: Callable[[BacktestRun], BacktestRun],
        contents: Sequence[ResultContent] | None = None,
    ) -> BacktestRun:
        """Apply ``change`` to the stored run (its files replaced by ``contents`` when given)."""
        async with self.db.writing() as session:
            repo = BacktestRepository(session)
            stored = await repo.get(backtest_id)
            if stored is None:
                raise not_found("backtest", backtest_id)
            run = change(stored)
            await repo.save(run, contents)
        return run

    async def _progress(self, backtest_id: str, percent: int) -> None:
        async with self.db.writing() as session:
            await BacktestRepository(session).set_progress(backtest_id, percent)


async def _owned(repo: BacktestRepository, user_id: str, backtest_id: str) -> BacktestRun:
    run = await repo.get(backtest_id, user_id=user_id)
    if run is None:
        raise not_found("backtest", backtest_id)  # another user's backtest does not exist for this caller
    return run


class _Progress:
    """Called from the engine's thread; persists each whole percent once."""

    def __init__(self, store: Callable[[int], object]) -> None:
        self.store = store
        self.percent = 0

    def __call__(self, done: int, total: int) -> None:
        percent = min(99, done * 100 // total) if total else 0
        if percent > self.percent:
            self.percent = percent
            self.store(percent)


def _message(exc: Exception) -> str:
    if isinstance(exc, DomainError):
        return f"{exc.reason.lower()}: {exc.message}"
    return str(exc)
