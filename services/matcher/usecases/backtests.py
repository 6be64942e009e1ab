"""What the matcher does with backtests: queue them, run them one at a time in the
background of this process (status and progress persisted, so a restart resumes what was
queued or running), and serve their status, report and files to their owner only.

A run reads its spec from its stored row and writes its outcome back: the same
``run(backtest_id)`` is what the ``mbt.run_backtest`` Celery task will call. The engine
is CPU-bound Python and runs in a worker thread; the live matcher shares the process
(and the interpreter lock) while it runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from services.common.clock import Clock
from services.common.config import Settings
from services.common.errors import DomainError, not_found
from services.common.ids import new_id
from services.common.persistence.db import Database
from services.common.persistence.pagination import page
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


class Backtests:
    def __init__(self, settings: Settings, db: Database, clock: Clock, marketdata: MarketDataClient) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.marketdata = marketdata
        self._wake = asyncio.Event()

    # -- requests ---------------------------------------------------------------------------

    async def create(self, user_id: str, spec: BacktestSpec) -> BacktestRun:
        """Queue ``spec`` for ``user_id``; invalid_argument (naming the field) for a spec that
        could not run, refused now rather than failing in the background."""
        spec.validate()
        build_strategy(spec)
        run = BacktestRun(backtest_id=new_id("bt"), user_id=user_id, spec=spec, status=RunStatus.QUEUED,
                          created_at=self.clock.now())
        async with self.db.writing() as session:
            await BacktestRepository(session).add(run)
        self._wake.set()
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
                raise DomainError("FAILED_PRECONDITION", f"backtest {backtest_id} is {run.status.value}; its files "
                                                         "come when it has succeeded")
            found = await repo.file(backtest_id, name)
        if found is None:
            raise not_found("file", name)
        return found

    # -- running ----------------------------------------------------------------------------

    async def run_queued(self) -> None:
        """Background: run what is queued (or was running when the process stopped), oldest first."""
        while True:
            self._wake.clear()
            async with self.db.reading() as session:
                unfinished = await BacktestRepository(session).unfinished()
            for backtest_id in unfinished:
                await self.run(backtest_id)
            await self._wake.wait()

    async def run(self, backtest_id: str) -> None:
        """Run one stored backtest to its end; its outcome (or its error) is stored."""
        run = await self._update(backtest_id, lambda stored: stored.started(self.clock.now()))
        loop = asyncio.get_running_loop()
        try:
            run.spec.validate()
            strategy = build_strategy(run.spec)
            feed = await feed_for(run.spec, strategy, self.settings, self.marketdata)
            progress = _Progress(lambda percent: asyncio.run_coroutine_threadsafe(
                self._progress(backtest_id, percent), loop))
            outcome = await asyncio.to_thread(execute, run.spec, strategy, feed, self.settings, user_id=run.user_id,
                                              progress=progress)
        except EXPECTED_FAILURES as exc:
            error = _message(exc)
        except Exception as exc:  # a bug must not leave the run "running" forever, nor kill the runner
            log.exception("backtest failed", extra={"fields": {"backtest_id": backtest_id}})
            error = f"internal error: {type(exc).__name__}"
        else:
            contents = [ResultContent(name, content_type(name), data) for name, data in outcome.files.items()]
            result = outcome.result
            await self._update(backtest_id, lambda stored: stored.succeeded(
                tuple(outcome.statistics.rows()), tuple(c.file for c in contents), ticks=result.ticks,
                orders=len(result.orders), fills=len(result.fills), now=self.clock.now()), contents)
            return
        await self._update(backtest_id, lambda stored: stored.failed(error, self.clock.now()))

    async def _update(self, backtest_id: str, change: Callable[[BacktestRun], BacktestRun],
                      contents: Sequence[ResultContent] | None = None) -> BacktestRun:
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
