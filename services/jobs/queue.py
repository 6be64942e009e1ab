"""Offering jobs to the workers: the record first, then the message.

A key offered twice (a duplicate beat, a client that retries, a restart that offers again)
finds its record and sends nothing; a message lost on the way (a crash between the record
and the send, a worker that died holding it, a transport without visibility timeout) is
sent again by ``resend_lost``, which the scheduler runs. Blocking calls: async callers run
them in a thread.
"""

from __future__ import annotations

import logging

from services.common.config import Settings
from services.jobs.app import JobsApp, build_celery
from services.jobs.records import JobRecords, JobRun
from services.jobs.registry import spec
from services.jobs.runs import task_id

log = logging.getLogger("mbt.jobs")


class JobQueue:
    def __init__(self, settings: Settings, app: JobsApp | None = None) -> None:
        self.app = app or build_celery(settings)

    @property
    def records(self) -> JobRecords:
        return self.app.runtime.records

    def offer(self, name: str, key: str, **arguments) -> JobRun:
        """The record of (``name``, ``key``), sent to the workers if this offer created it.
        Raises KeyError for a job that is not registered, ValueError for a key of the wrong kind."""
        spec(name).key.check(key)
        run, created = self.records.offer(name, key, arguments)
        if created:
            self._send(run)
        return run

    def rerun(self, name: str, key: str) -> JobRun:
        """An operator's run of (``name``, ``key``): offered, or sent again when it had failed
        for good. A key that is done stays done."""
        spec(name).key.check(key)
        if self.records.reopen(name, key):
            run = self.records.get(name, key)
            if run is None:
                raise LookupError(f"run {name} {key} reopened but not found")
            self._send(run)
            return run
        return self.offer(name, key)

    def resend_lost(self) -> list[JobRun]:
        """Send again every job whose message is overdue or whose run's lease ran out."""
        lost = self.records.lost(self.app.runtime.lease)
        for run in lost:
            log.warning(
                "job message lost or its run's worker gone; sending it again",
                extra={"fields": {"job": run.job, "key": run.key, "state": run.state, "attempts": run.attempts}},
            )
            self._send(run)
        return lost

    def _send(self, run: JobRun) -> None:
        self.app.send_task(run.job, args=[run.key], kwargs=run.arguments, task_id=task_id(run.job, run.key))

    def close(self) -> None:
        self.app.runtime.close()
        self.app.close()
