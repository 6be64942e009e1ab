"""What the matcher does with backtests: store them queued and offer each to the
``mbt.run_backtest`` job, run one when that job asks (``RunBacktest``: one at a time in this
process, status and progress persisted), and serve their status, report and files to their
owner only.

A run reads its inputs from its stored row and writes its outcome back. The job's queue
decides when a backtest runs and runs it again if its worker dies; this process only
guarantees that one backtest id is never run twice at once here (a second ``run`` joins the
first) and that a finished one is never run again. The engine is CPU-bound Python and runs in
a worker thread; the live matcher shares the process (and the interpreter lock) while it runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from mbt.matcher.v1 import matcher_pb2
from services.common.persistence import pagination
from services.common.clock import Clock
from services.common.config import Settings
from services.common.persistence.db import Database
from services.common.errors import DomainError, not_found
from services.common.ids import new_id
from services.matcher import wire
from services.matcher.backtest.engine import StrategyError
from services.matcher.backtest.feed import FeedError
from services.matcher.backtest.results import content_type
from services.matcher.backtest.runs import build_strategy, execute, feed_for
from services.matcher.backtest.script import ScriptError
from services.matcher.store import FAILED, QUEUED, RUNNING, SUCCEEDED, BacktestRepository, BacktestRow
from services.jobs.queue import JobQueue

log = logging.getLogger(__name__)
EXPECTED_FAILURES = (DomainError, StrategyError, ScriptError, FeedError)
RUN_BACKTEST = "mbt.run_backtest"
# How often a run's watchers look at its stored progress; how long to wait before offering
# again when the jobs' queue could not be reached.
PROGRESS_POLL_SECONDS = 0.5
OFFER_RETRY_SECONDS = 5


class Backtests:
    def __init__(self, settings: Settings, db: Database, clock: Clock, marketdata_stub, queue: JobQueue) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.marketdata = marketdata_stub
        self.queue = queue
        self._wake = asyncio.Event()
        self._offered: set[str] = set()
        self._runs: dict[str, asyncio.Task] = {}
        self._one_at_a_time = asyncio.Lock()

    # -- requests ---------------------------------------------------------------------------

    async def create(self, user_id: str, message: matcher_pb2.Backtest) -> matcher_pb2.Backtest:
        wire.spec_from_message(message)  # refuse bad input now, not in the background
        inputs = wire.inputs_of(message)
        row = BacktestRow(backtest_id=new_id("bt"), user_id=user_id,
                          parameters=inputs.SerializeToString(deterministic=True), status=QUEUED,
                          progress_percent=0, error="", statistics=[], ticks=0, orders=0, fills=0,
                          created_at=self.clock.now(), started_at=None, finished_at=None)
        await self.db.run(self._insert, row)
        self._wake.set()
        return wire.backtest_to_proto(row, [])

    def _insert(self, row: BacktestRow) -> None:
        with self.db.transaction() as session:
            BacktestRepository(session).add(row)

    async def get(self, user_id: str | None, backtest_id: str) -> matcher_pb2.Backtest:
        """The user's backtest (None: whoever owns it, for the platform); not_found otherwise."""
        return await self.db.run(self._get, user_id, backtest_id)

    def _get(self, user_id: str | None, backtest_id: str) -> matcher_pb2.Backtest:
        with self.db.snapshot() as session:
            repo = BacktestRepository(session)
            row = self._owned(repo, user_id, backtest_id)
            return wire.backtest_to_proto(row, repo.files(backtest_id))

    @staticmethod
    def _owned(repo: BacktestRepository, user_id: str | None, backtest_id: str) -> BacktestRow:
        row = repo.get(backtest_id, user_id=user_id)
        if row is None:
            raise not_found("backtest", backtest_id)  # another user's backtest does not exist for this caller
        return row

    async def list(self, user_id: str, size: int, token: str) -> tuple[list[matcher_pb2.Backtest], str]:
        digest = pagination.filter_digest("backtests", user_id)
        after = pagination.decode_page_token(token, digest)
        limit = pagination.page_size(size)
        rows = await self.db.run(self._list, user_id, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        next_token = pagination.encode_page_token(rows[-1][0].created_at, rows[-1][0].backtest_id, digest) if more \
            else ""
        return [wire.backtest_to_proto(row, files) for row, files in rows], next_token

    def _list(self, user_id, after, limit):
        with self.db.snapshot() as session:
            repo = BacktestRepository(session)
            return [(row, repo.files(row.backtest_id)) for row in repo.list_for_user(user_id, after, limit)]

    async def report(self, user_id: str, backtest_id: str) -> matcher_pb2.BacktestReport:
        content = await self.db.run(self._file, user_id, backtest_id, "report.html")
        return matcher_pb2.BacktestReport(backtest_id=backtest_id, html=content.content.decode("utf-8"))

    async def file(self, user_id: str, backtest_id: str, name: str) -> matcher_pb2.BacktestFileContent:
        row = await self.db.run(self._file, user_id, backtest_id, name)
        return matcher_pb2.BacktestFileContent(backtest_id=backtest_id, name=row.name,
                                               content_type=row.content_type, content=row.content)

    def _file(self, user_id: str, backtest_id: str, name: str):
        with self.db.snapshot() as session:
            repo = BacktestRepository(session)
            row = self._owned(repo, user_id, backtest_id)
            if row.status != SUCCEEDED:
                raise DomainError("FAILED_PRECONDITION", f"backtest {backtest_id} is {row.status}; its files come "
                                                         "when it has succeeded")
            found = repo.file(backtest_id, name)
            if found is None:
                raise not_found("file", name)
            return found

    # -- running ----------------------------------------------------------------------------

    async def offer_queued(self) -> None:
        """Background: offer every unfinished backtest to the ``mbt.run_backtest`` job — at
        start what was queued or running when the process stopped, then each new one. The
        job is keyed by backtest id, so offering one again sends nothing (unless its job had
        failed for good, the matcher away too long: then it is sent again)."""
        while True:
            self._wake.clear()
            try:
                for backtest_id in await self.db.run(self._unfinished):
                    if backtest_id not in self._offered:
                        await asyncio.to_thread(self.queue.rerun, RUN_BACKTEST, backtest_id)
                        self._offered.add(backtest_id)
            except Exception as exc:  # the jobs' database or broker away: the backtests wait, queued
                log.warning("cannot offer backtests to the jobs queue; retrying",
                            extra={"fields": {"error": str(exc)[:300]}})
                await asyncio.sleep(OFFER_RETRY_SECONDS)
                continue
            await self._wake.wait()

    def _unfinished(self) -> list[str]:
        with self.db.snapshot() as session:
            return [row.backtest_id for row in BacktestRepository(session).unfinished()]

    async def run(self, backtest_id: str) -> AsyncIterator[matcher_pb2.Backtest]:
        """Run a stored backtest to its end, yielding its state as it progresses and then its
        final state. A backtest this process is running already is joined; a finished one is
        answered as it is. Leaving early (the caller gone) does not stop the run. Raises
        not_found for an unknown id."""
        running = self._runs.get(backtest_id)
        if running is None:
            current = await self.get(None, backtest_id)
            if current.status in (matcher_pb2.BACKTEST_STATUS_SUCCEEDED, matcher_pb2.BACKTEST_STATUS_FAILED):
                yield current
                return
            running = self._runs.get(backtest_id)  # another call may have started it meanwhile
            if running is None:
                running = self._runs[backtest_id] = asyncio.create_task(self._execute(backtest_id))
                running.add_done_callback(lambda _: self._runs.pop(backtest_id, None))
        seen = None
        while True:
            finished = running.done()
            current = await self.get(None, backtest_id)
            if (current.status, current.progress_percent) != seen:
                seen = (current.status, current.progress_percent)
                yield current
            if finished:
                return
            await asyncio.wait({running}, timeout=PROGRESS_POLL_SECONDS)

    async def _execute(self, backtest_id: str) -> None:
        """Run one stored backtest to its end; its outcome (or its error) is stored."""
        async with self._one_at_a_time:
            await self._execute_alone(backtest_id)

    async def _execute_alone(self, backtest_id: str) -> None:
        row = await self.db.run(self._start, backtest_id)
        if row is None:
            return
        message = matcher_pb2.Backtest()
        message.ParseFromString(row.parameters)
        loop = asyncio.get_running_loop()
        try:
            spec = wire.spec_from_message(message)
            strategy = build_strategy(spec)
            feed = await feed_for(spec, strategy, self.settings, self.marketdata)
            progress = _Progress(lambda percent: asyncio.run_coroutine_threadsafe(
                self.db.run(self._progress, backtest_id, percent), loop))
            outcome = await asyncio.to_thread(execute, spec, strategy, feed, self.settings, user_id=row.user_id,
                                              progress=progress)
        except EXPECTED_FAILURES as exc:
            await self.db.run(self._fail, backtest_id, _message(exc))
            return
        except Exception as exc:  # a bug must not leave the run "running" forever, nor kill the runner
            log.exception("backtest failed", extra={"fields": {"backtest_id": backtest_id}})
            await self.db.run(self._fail, backtest_id, f"internal error: {type(exc).__name__}")
            return
        await self.db.run(self._succeed, backtest_id, outcome)

    def _start(self, backtest_id: str) -> BacktestRow | None:
        """The row, now running; None when it finished meanwhile (run elsewhere)."""
        with self.db.transaction() as session:
            row = BacktestRepository(session).get(backtest_id)
            if row.status in (SUCCEEDED, FAILED):
                return None
            row.status, row.started_at, row.progress_percent = RUNNING, self.clock.now(), 0
            return row

    def _progress(self, backtest_id: str, percent: int) -> None:
        with self.db.transaction() as session:
            BacktestRepository(session).set_progress(backtest_id, percent)

    def _fail(self, backtest_id: str, error: str) -> None:
        with self.db.transaction() as session:
            row = BacktestRepository(session).get(backtest_id)
            row.status, row.error, row.finished_at = FAILED, error[:2000], self.clock.now()

    def _succeed(self, backtest_id: str, outcome) -> None:
        with self.db.transaction() as session:
            repo = BacktestRepository(session)
            row = repo.get(backtest_id)
            repo.replace_files(backtest_id, [(name, content_type(name), data) for name, data in outcome.files.items()])
            result = outcome.result
            row.status, row.progress_percent, row.finished_at = SUCCEEDED, 100, self.clock.now()
            row.statistics = [list(pair) for pair in outcome.statistics.rows()]
            row.ticks, row.orders, row.fills = result.ticks, len(result.orders), len(result.fills)


class _Progress:
    """Called from the engine's thread; persists each whole percent once."""

    def __init__(self, store) -> None:
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
