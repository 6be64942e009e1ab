"""Jobs: how long a queued no-op job takes to start and to be recorded done, on the embedded
transport (SQLite, no server) and on Redis (``MBT_TEST_REDIS_URL``), and how many no-op jobs
a worker gets through when 200 are queued at once.

Each job goes the whole way a real one does: the record is written and the message published
(``JobQueue.offer``), a worker thread takes it, claims the record, runs the body (here: note
the time, do nothing) and records it done. The worker is Celery's, in this process (threads
pool, 2 threads, as ``make run`` starts it); the jobs' records are SQLite in both cases.
"""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import time

import redis
from celery.contrib.testing.worker import start_worker

from bench.report import Figure, machine
from services.common.config import Settings
from services.jobs.queue import JobQueue
from services.jobs.records import DONE
from services.jobs.registry import REGISTRY, JobSpec, KeyKind
from services.jobs.runs import JobContext, job

NAME = "bench.noop"
LATENCY_JOBS = 40
BURST_JOBS = 200
REDIS_URL = os.environ.get("MBT_TEST_REDIS_URL", "")
started: dict[str, float] = {}


def _noop(run: JobContext) -> dict:
    started[run.key] = time.perf_counter()
    return {}


def run() -> list[Figure]:
    REGISTRY[NAME] = JobSpec(NAME, __name__, KeyKind("bench key", "k1", r"k\d+"))
    job(NAME)(_noop)
    figures = []
    for transport in ("embedded", "redis"):
        if transport == "redis" and not REDIS_URL:
            print("  (Redis figures skipped: set MBT_TEST_REDIS_URL)")
            continue
        with tempfile.TemporaryDirectory() as data:
            prefix = f"mbt-bench-{secrets.token_hex(4)}:"
            env = {"MBT_DATA_DIR": data, "MBT_LOG_LEVEL": "WARNING"}
            if transport == "redis":
                env.update(MBT_REDIS_URL=REDIS_URL, MBT_REDIS_KEY_PREFIX=prefix)
            try:
                figures.extend(_measure(transport, Settings.from_env(env)))
            finally:
                if transport == "redis":
                    client = redis.Redis.from_url(REDIS_URL)
                    keys = list(client.scan_iter(match=prefix + "*"))
                    if keys:
                        client.delete(*keys)
    del REGISTRY[NAME]
    return figures


def _wait_done(queue: JobQueue, keys: list[str]) -> None:
    """Until every key is recorded done (polled every millisecond)."""
    pending = set(keys)
    while pending:
        pending = {key for key in pending if getattr(queue.records.get(NAME, key), "state", "") != DONE}
        time.sleep(0.001)


def _measure(transport: str, settings: Settings) -> list[Figure]:
    queue = JobQueue(settings)
    where = "a SQLite file, kombu's SQLAlchemy transport polled every 0.1 s" if transport == "embedded" else "Redis"
    try:
        with start_worker(queue.app, pool="threads", concurrency=2, perform_ping_check=False, loglevel="WARNING"):
            queue.offer(NAME, "k0")  # warm up: connections, tables
            _wait_done(queue, ["k0"])
            to_start, to_done = [], []
            for n in range(1, LATENCY_JOBS + 1):
                key = f"k{n}"
                offered = time.perf_counter()
                queue.offer(NAME, key)
                _wait_done(queue, [key])
                to_done.append(time.perf_counter() - offered)
                to_start.append(started[key] - offered)
            burst = [f"k{n}" for n in range(1000, 1000 + BURST_JOBS)]
            began = time.perf_counter()
            for key in burst:
                queue.offer(NAME, key)
            _wait_done(queue, burst)
            rate = BURST_JOBS / (time.perf_counter() - began)
    finally:
        queue.close()
    config = f"{transport}: {where}; jobs' records in SQLite; 2 worker threads; {machine()}"
    return [
        Figure(
            f"jobs {transport}: queued -> running, median",
            statistics.median(to_start) * 1000,
            "ms",
            LATENCY_JOBS,
            config,
        ),
        Figure(
            f"jobs {transport}: queued -> recorded done, median",
            statistics.median(to_done) * 1000,
            "ms",
            LATENCY_JOBS,
            config,
        ),
        Figure(f"jobs {transport}: {BURST_JOBS} queued at once", rate, "jobs/s", 1, config),
    ]
