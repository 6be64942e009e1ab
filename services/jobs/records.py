"""The jobs' own tables: one record per (job, key) — what was asked, which attempt holds it
and until when, what it did — and the schedule's cursors.

The record is what makes every job idempotent per key and lose nothing, whatever the
transport does: a key is offered once (a second offer finds the record), a run claims it
with a lease that its worker renews while it runs, and a run that finds it done does
nothing. A claim whose lease ran out (its worker was killed) or an offer whose message
never arrived is sent again by the scheduler's sweep (``JobRecords.lost``).

Times here are wall-clock times (leases measure real processes), except a cursor's
``due_at``, which is market time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import JSON, Index, Integer, MetaData, String, Text, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.common.clock import Clock, WallClock
from services.common.persistence.db import BlockingDatabase
from services.common.persistence.sqltypes import TYPE_ANNOTATION_MAP

SERVICE = "jobs"
PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


class Base(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = TYPE_ANNOTATION_MAP


class JobRunRow(Base):
    __tablename__ = "mbt_job_runs"
    __table_args__ = (Index("ix_mbt_job_runs_state", "state"),)

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    # The task's keyword arguments besides the key.
    arguments: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    # Runs that claimed it so far; the current one's number.
    attempts: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(128))
    # A running claim is the worker's until then; renewed while it runs.
    lease_until: Mapped[datetime | None]
    # When its message was (or, for a retry, will be) handed to the broker.
    sent_at: Mapped[datetime]
    # The latest progress a running job reported, and what a finished one did.
    progress: Mapped[dict | None] = mapped_column(JSON)
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(Text)
    offered_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ScheduleCursorRow(Base):
    """Per scheduled job: the last due point it was offered for (market time)."""

    __tablename__ = "mbt_job_schedule"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Empty until the first due point after the scheduler first ran.
    last_key: Mapped[str] = mapped_column(String(128))
    due_at: Mapped[datetime]
    updated_at: Mapped[datetime]


@dataclass(frozen=True)
class JobRun:
    """A record as read (detached from its session)."""

    job: str
    key: str
    arguments: dict
    state: str
    attempts: int
    worker: str
    lease_until: datetime | None
    sent_at: datetime
    progress: dict | None
    result: dict | None
    error: str
    offered_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: JobRunRow) -> JobRun:
        return cls(
            row.job,
            row.job_key,
            row.arguments,
            row.state,
            row.attempts,
            row.worker,
            row.lease_until,
            row.sent_at,
            row.progress,
            row.result,
            row.error,
            row.offered_at,
            row.started_at,
            row.finished_at,
        )


@dataclass(frozen=True)
class Claim:
    """What a delivered job may do: ``claimed`` (run it, as attempt ``attempt``), or skip it
    because it is ``done``, ``failed`` for good, or ``busy`` (another live run holds it)."""

    outcome: str
    attempt: int
    run: JobRun


@dataclass(frozen=True)
class Cursor:
    key: str
    due_at: datetime


class JobRecords:
    def __init__(self, db: BlockingDatabase, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or WallClock()

    def _insert(self, session: Session, job: str, key: str, arguments: dict) -> bool:
        now = self.clock.now()
        module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        statement = (
            module.insert(JobRunRow)
            .values(
                job=job,
                job_key=key,
                arguments=arguments,
                state=PENDING,
                attempts=0,
                worker="",
                lease_until=None,
                sent_at=now,
                progress=None,
                result=None,
                error="",
                offered_at=now,
                started_at=None,
                finished_at=None,
            )
            .on_conflict_do_nothing(index_elements=["job", "job_key"])
            .returning(JobRunRow.job)
        )
        return session.execute(statement).first() is not None

    def _locked(self, session: Session, job: str, key: str) -> JobRunRow:
        return session.execute(
            select(JobRunRow).where(JobRunRow.job == job, JobRunRow.job_key == key).with_for_update()
        ).scalar_one()

    def offer(self, job: str, key: str, arguments: dict) -> tuple[JobRun, bool]:
        """The record of (job, key), created pending when absent; True when it was created
        (its message is then to be sent)."""
        with self.db.transaction() as session:
            created = self._insert(session, job, key, arguments)
            return JobRun.of(self._locked(session, job, key)), created

    def reopen(self, job: str, key: str) -> bool:
        """An operator's rerun of a key that failed for good: pending again. False when the
        record is not failed (absent, pending, running or done)."""
        with self.db.transaction() as session:
            row = session.get(JobRunRow, (job, key), with_for_update=True)
            if row is None or row.state != FAILED:
                return False
            row.state, row.sent_at, row.error = PENDING, self.clock.now(), ""
            return True

    def claim(self, job: str, key: str, arguments: dict, worker: str, lease: timedelta) -> Claim:
        """Take (job, key) for a run that was just delivered. A record no offer made (a
        message sent by other means) is created here."""
        with self.db.transaction() as session:
            self._insert(session, job, key, arguments)
            row = self._locked(session, job, key)
            now = self.clock.now()
            if row.state in (DONE, FAILED):
                return Claim(row.state, row.attempts, JobRun.of(row))
            if row.state == RUNNING and row.lease_until is not None and row.lease_until > now:
                return Claim("busy", row.attempts, JobRun.of(row))
            row.state, row.attempts, row.worker = RUNNING, row.attempts + 1, worker
            row.lease_until, row.started_at, row.error = now + lease, now, ""
            return Claim("claimed", row.attempts, JobRun.of(row))

    def _owned(self, session: Session, job: str, key: str, attempt: int) -> JobRunRow | None:
        row = self._locked(session, job, key)
        return row if row.state == RUNNING and row.attempts == attempt else None

    def renew(self, job: str, key: str, attempt: int, lease: timedelta, progress: dict | None = None) -> bool:
        """Extend a running claim (and store its progress); False when the claim is no longer
        this attempt's."""
        with self.db.transaction() as session:
            row = self._owned(session, job, key, attempt)
            if row is None:
                return False
            row.lease_until = self.clock.now() + lease
            if progress is not None:
                row.progress = progress
            return True

    def finish(self, job: str, key: str, result: dict) -> None:
        """Done, with what the run did. The effect happened, so this holds whichever attempt
        reports it; a record already done keeps its first result."""
        with self.db.transaction() as session:
            row = self._locked(session, job, key)
            if row.state != DONE:
                row.state, row.result, row.error = DONE, result, ""
                row.lease_until, row.finished_at = None, self.clock.now()

    def retry_later(self, job: str, key: str, attempt: int, error: str, at: datetime) -> None:
        """Attempt ``attempt`` failed and is retried at ``at`` (its message is sent for then)."""
        with self.db.transaction() as session:
            row = self._owned(session, job, key, attempt)
            if row is not None:
                row.state, row.error, row.lease_until, row.sent_at = PENDING, error, None, at

    def fail(self, job: str, key: str, attempt: int, error: str) -> None:
        """Failed for good: no retry, no sweep; an operator reruns it (``reopen``)."""
        with self.db.transaction() as session:
            row = self._owned(session, job, key, attempt)
            if row is not None:
                row.state, row.error, row.lease_until, row.finished_at = FAILED, error, None, self.clock.now()

    def lost(self, grace: timedelta) -> list[JobRun]:
        """Records whose message must be sent again: pending and sent more than ``grace``
        ago (never delivered, or delivered to a worker that died before claiming it), or
        running on a lease that ran out (its worker died). Each is marked sent now."""
        now = self.clock.now()
        with self.db.transaction() as session:
            rows = (
                session.execute(
                    select(JobRunRow)
                    .where(
                        or_(
                            (JobRunRow.state == PENDING) & (JobRunRow.sent_at < now - grace),
                            (JobRunRow.state == RUNNING) & (JobRunRow.lease_until < now),
                        )
                    )
                    .with_for_update()
                )
                .scalars()
                .all()
            )
            for row in rows:
                row.sent_at = now
            return [JobRun.of(row) for row in rows]

    def forget_argument(self, job: str, name: str, value: str) -> int:
        """Blank argument ``name`` of ``job``'s records wherever it is ``value`` (an erased
        user's id); how many records it was in."""
        with self.db.transaction() as session:
            rows = session.execute(select(JobRunRow).where(JobRunRow.job == job).with_for_update()).scalars()
            forgotten = [row for row in rows if row.arguments.get(name) == value]
            for row in forgotten:
                row.arguments = {**row.arguments, name: ""}
            return len(forgotten)

    def get(self, job: str, key: str) -> JobRun | None:
        with self.db.snapshot() as session:
            row = session.get(JobRunRow, (job, key))
            return JobRun.of(row) if row is not None else None

    def latest(self, job: str, before_key: str, accept: Callable[[JobRun], bool]) -> JobRun | None:
        """The done run of ``job`` with the greatest key below ``before_key`` that ``accept``s."""
        with self.db.snapshot() as session:
            rows = session.execute(
                select(JobRunRow)
                .where(JobRunRow.job == job, JobRunRow.state == DONE, JobRunRow.job_key < before_key)
                .order_by(JobRunRow.job_key.desc())
            ).scalars()
            return next((run for run in map(JobRun.of, rows) if accept(run)), None)

    def runs(self, job: str | None = None, limit: int = 50) -> list[JobRun]:
        """The most recently offered records, newest first."""
        with self.db.snapshot() as session:
            query = select(JobRunRow)
            if job:
                query = query.where(JobRunRow.job == job)
            rows = session.execute(
                query.order_by(JobRunRow.offered_at.desc(), JobRunRow.job_key.desc()).limit(limit)
            ).scalars()
            return [JobRun.of(row) for row in rows]

    def cursor(self, job: str) -> Cursor | None:
        with self.db.snapshot() as session:
            row = session.get(ScheduleCursorRow, job)
            return Cursor(row.last_key, row.due_at) if row is not None else None

    def move_cursor(self, job: str, key: str, due_at: datetime) -> None:
        with self.db.transaction() as session:
            row = session.get(ScheduleCursorRow, job, with_for_update=True)
            if row is None:
                session.add(ScheduleCursorRow(job=job, last_key=key, due_at=due_at, updated_at=self.clock.now()))
            else:
                row.last_key, row.due_at, row.updated_at = key, due_at, self.clock.now()
