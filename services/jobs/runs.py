"""How every job runs: ``@job(name)`` makes a service's function the Celery task of that
registered job, and each delivery of it goes through the per-key record.

A delivery claims (job, key) first: a key already done or failed for good is skipped (a
duplicate beat, a retry after the effect, a message sent twice), as is a key another live
run holds. The claim is a lease that a heartbeat thread renews every third of
``MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS`` while the body runs; a worker killed mid-run stops
renewing it, and once it runs out the job is sent again and the next delivery claims it.
The body itself must be idempotent for its key (it calls RPCs that are), since a run that
did its work but died before recording it runs again.

A failure is retried with backoff (1, 2, 4 … 300 s) up to ``MAX_ATTEMPTS``, except refusals
a retry cannot change (invalid_argument, not_found, failed_precondition, …), which fail at
once. Each run ends with one JSON log line saying what it did.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import grpc
from celery import Task, shared_task

from services.common.config import Settings
from services.common.observability.metrics import JOB_RUNS
from services.common.rpc import context
from services.jobs.records import JobRun
from services.jobs.registry import JobSpec, spec

log = logging.getLogger("mbt.jobs")
MAX_ATTEMPTS = 8
MAX_BACKOFF_SECONDS = 300
# Refusals a retry cannot change: the job fails at once.
PERMANENT_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.ALREADY_EXISTS,
    }
)


class JobRefused(Exception):
    """Raised by a job body for a key it can never do: the job fails without retries."""


def task_id(job: str, key: str) -> str:
    """The Celery task id of (job, key): the same for every delivery and retry."""
    return f"{job}:{key}"


@dataclass
class JobContext:
    """What a job body gets: its key and arguments, stubs that call services as the jobs'
    service identity, progress reporting, and the job's earlier results."""

    job: JobSpec
    key: str
    arguments: dict
    attempt: int
    _task: Task

    @property
    def _runtime(self):
        return self._task.app.runtime

    @property
    def settings(self) -> Settings:
        return self._runtime.settings

    def stub(self, service: str, stub_class):
        return self._runtime.stub(service, stub_class)

    def progress(self, **detail) -> None:
        """Record how far the run is (in the record and the result backend); renews the lease."""
        self._runtime.records.renew(self.job.name, self.key, self.attempt, self._runtime.lease, progress=detail)
        self._task.update_state(task_id=task_id(self.job.name, self.key), state="PROGRESS", meta=detail)

    def forget_argument(self, job: str, name: str, value: str) -> int:
        """Blank argument ``name`` wherever it is ``value`` in ``job``'s records (erasure)."""
        return self._runtime.records.forget_argument(job, name, value)

    def previous(self, accept: Callable[[JobRun], bool] = lambda run: True) -> JobRun | None:
        """The latest done run of this job for an earlier key that ``accept``s."""
        return self._runtime.records.latest(self.job.name, self.key, accept)


class _Heartbeat:
    """Renews a claim every third of its lease until the body returns."""

    def __init__(self, run: JobContext) -> None:
        self.run = run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat {run.job.name}", daemon=True)

    def _beat(self) -> None:
        runtime = self.run._runtime
        while not self._stop.wait(runtime.lease.total_seconds() / 3):
            try:
                if not runtime.records.renew(self.run.job.name, self.run.key, self.run.attempt, runtime.lease):
                    log.warning("job claim taken over by another run", extra={"fields": _where(self.run)})
                    return
            except Exception as exc:  # the database away for a moment: the next beat tries again
                log.warning("job heartbeat failed", extra={"fields": {**_where(self.run), "error": str(exc)[:200]}})

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def _where(run: JobContext) -> dict:
    return {"job": run.job.name, "key": run.key, "attempt": run.attempt}


def _permanent(exc: Exception) -> bool:
    return isinstance(exc, JobRefused) or (isinstance(exc, grpc.RpcError) and exc.code() in PERMANENT_CODES)


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.RpcError):
        return f"{exc.code().name.lower()}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


def _request_id(job: str, key: str, attempt: int) -> str:
    """One id per attempt, on every call the run makes (and so in every service's log)."""
    return f"job-{hashlib.sha256(f'{job}/{key}'.encode()).hexdigest()[:16]}-{attempt}"


def execute(task: Task, job: JobSpec, body: Callable[[JobContext], dict], key: str, arguments: dict):
    """One delivery of (job, key): claim, run the body under a heartbeat, record the outcome."""
    runtime = task.app.runtime
    started = time.monotonic()
    worker = f"{task.request.hostname or 'local'}/{threading.current_thread().name}"
    claim = runtime.records.claim(job.name, key, arguments, worker, runtime.lease)
    if claim.outcome != "claimed":
        JOB_RUNS.labels(job=job.name, outcome="skipped").inc()
        log.info(
            "job skipped",
            extra={
                "fields": {
                    "job": job.name,
                    "key": key,
                    "attempt": claim.attempt,
                    "outcome": "skipped",
                    "because": claim.outcome,
                }
            },
        )
        return claim.run.result
    run = JobContext(job, key, arguments, claim.attempt, task)
    # Worker threads run one job at a time: each run sets its own request id.
    context.set_request_id(_request_id(job.name, key, claim.attempt))
    with _Heartbeat(run):
        try:
            result = body(run)
        except Exception as exc:
            return _failed(task, run, exc, started)
    runtime.records.finish(job.name, key, result)
    JOB_RUNS.labels(job=job.name, outcome="done").inc()
    log.info(
        "job done",
        extra={
            "fields": {
                **_where(run),
                "outcome": "done",
                "duration_ms": round((time.monotonic() - started) * 1000),
                "result": result,
            }
        },
    )
    return result


def _failed(task: Task, run: JobContext, exc: Exception, started: float):
    runtime = task.app.runtime
    error = _describe(exc)[:2000]
    fields = {**_where(run), "error": error, "duration_ms": round((time.monotonic() - started) * 1000)}
    if _permanent(exc) or run.attempt >= MAX_ATTEMPTS:
        runtime.records.fail(run.job.name, run.key, run.attempt, error)
        JOB_RUNS.labels(job=run.job.name, outcome="failed").inc()
        log.error("job failed", extra={"fields": {**fields, "outcome": "failed"}})
        raise exc
    countdown = min(MAX_BACKOFF_SECONDS, 2 ** (run.attempt - 1))
    runtime.records.retry_later(
        run.job.name, run.key, run.attempt, error, runtime.records.clock.now() + timedelta(seconds=countdown)
    )
    JOB_RUNS.labels(job=run.job.name, outcome="retried").inc()
    log.warning("job failed; retrying", extra={"fields": {**fields, "outcome": "retried", "retry_in_s": countdown}})
    raise task.retry(exc=exc, countdown=countdown, max_retries=None)


def job(name: str):
    """Make ``body(run: JobContext) -> dict`` (what it did, JSON) the task of registered job
    ``name``; the task takes the key and the job's keyword arguments."""
    registered = spec(name)

    def decorate(body: Callable[[JobContext], dict]):
        @shared_task(name=name, bind=True, acks_late=True, reject_on_worker_lost=True)
        def task(self: Task, key: str, **arguments):
            return execute(self, registered, body, key, arguments)

        return task

    return decorate
