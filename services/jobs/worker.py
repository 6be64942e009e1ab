"""The jobs worker (``python -m services.jobs worker``): Celery's worker on MBT's app, with
threads (jobs mostly wait on gRPC calls), ``MBT_JOBS_CONCURRENCY`` of them."""

from __future__ import annotations

import logging

from celery.signals import worker_ready, worker_shutdown
from prometheus_client import start_http_server

from services.common.config import Settings
from services.jobs.app import QUEUE, build_celery, ready_marker


def run(settings: Settings) -> None:
    app = build_celery(settings)
    app.runtime.open_records()  # migrated before the first job is taken
    marker = ready_marker(settings, "worker")
    marker.unlink(missing_ok=True)

    def ready(**_) -> None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()

    def stopping(**_) -> None:
        marker.unlink(missing_ok=True)

    worker_ready.connect(ready, weak=False)
    worker_shutdown.connect(stopping, weak=False)
    if settings.jobs_metrics_port:
        start_http_server(settings.jobs_metrics_port, addr=settings.bind_host)
    # Each run's outcome is one "job done" / "job failed" line of services.jobs.runs; Celery's
    # own line per task would repeat it.
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
    app.worker_main(
        [
            "--quiet",
            "worker",
            "--pool=threads",
            f"--concurrency={settings.jobs_concurrency}",
            f"--queues={QUEUE}",
            f"--loglevel={settings.log_level}",
            "--hostname=mbt-jobs@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )
