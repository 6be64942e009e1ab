"""build_celery(settings): MBT's one Celery app, and what its tasks use in a worker process.

The broker and the result backend are Redis with ``MBT_REDIS_URL`` (keys under
``MBT_REDIS_KEY_PREFIX``); without it, one SQLite file under the data directory
(``jobs-queue.db``: kombu's SQLAlchemy transport and Celery's database backend), so the
embedded default needs no server. The SQLAlchemy transport has no visibility timeout (a
message taken by a worker that dies is not given back); the per-key record's leases and the
scheduler's sweep give it one. Every task is acknowledged late (after it ran), a task
whose worker died is rejected back to the queue, and a worker takes one message at a time
per thread; what makes a retried, duplicated or lost message harmless is the per-key record
(``services.jobs.records``), which works the same on either transport.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import grpc
from celery import Celery
from celery.app.log import Logging
from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport

from services.common.config import Settings
from services.common.persistence import migrate
from services.common.persistence.db import BlockingDatabase
from services.common.rpc.channels import open_blocking_channel
from services.common.security.auth import ServiceCredentials
from services.common.security.tokens import TokenIssuer, TokenKeys
from services.jobs.records import SERVICE, JobRecords
from services.jobs.registry import REGISTRY

QUEUE = "mbt.jobs"


class EmbeddedTransport(SQLAlchemyTransport):
    """kombu's SQLAlchemy transport, polled every 0.1 s instead of every second (its
    ``polling_interval`` transport option would be handed on to ``create_engine``)."""

    polling_interval = 0.1


class JobsRuntime:
    """Settings, the per-key records, the jobs' service identity and channels to the
    services, made on first use and shared by the threads of one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.credentials = ServiceCredentials(TokenIssuer(TokenKeys.from_settings(settings)), SERVICE)
        self.lease = timedelta(seconds=settings.jobs_visibility_timeout_seconds)
        self._lock = threading.Lock()
        self._records: JobRecords | None = None
        self._channels: dict[str, grpc.Channel] = {}

    @property
    def records(self) -> JobRecords:
        return self.open_records()

    def open_records(self) -> JobRecords:
        """The per-key records; the jobs' database is migrated on first use."""
        with self._lock:
            if self._records is None:
                url = self.settings.jobs_database_url
                migrate.upgrade(SERVICE, url, settings=self.settings)
                self._records = JobRecords(BlockingDatabase(url, pool_size=self.settings.db_pool_size))
            return self._records

    def stub(self, service: str, stub_class):
        """A stub of ``service`` whose calls carry the jobs' service token and request id."""
        with self._lock:
            if service not in self._channels:
                self._channels[service] = open_blocking_channel(
                    self.settings.service(service).target,
                    self.credentials,
                    keepalive_seconds=self.settings.grpc_keepalive_seconds,
                )
            return stub_class(self._channels[service])

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
            if self._records is not None:
                self._records.db.dispose()
                self._records = None


class MbtLogging(Logging):
    """Logs are MBT's (``services.common.observability.logs``: one JSON object per line):
    Celery leaves the root logger, its handlers and its level as they are."""

    def setup_logging_subsystem(self, *args, **kwargs) -> None:
        return None


class JobsApp(Celery):
    runtime: JobsRuntime


def ready_marker(settings: Settings, role: str) -> Path:
    """The file a jobs process (``worker``, ``scheduler``) creates once it is ready (what
    ``make run`` waits for) and removes when it stops."""
    return settings.data_dir / "run" / f"jobs-{role}.ready"


def embedded_queue_path(settings: Settings) -> Path:
    return settings.data_dir / "jobs-queue.db"


def _transport(settings: Settings) -> dict:
    """Broker and result backend settings of the app."""
    if settings.redis_url:
        prefix = {"global_keyprefix": f"{settings.redis_key_prefix}jobs:"}
        return {
            "broker_url": settings.redis_url,
            "result_backend": settings.redis_url,
            "broker_transport_options": {**prefix, "visibility_timeout": settings.jobs_visibility_timeout_seconds},
            "result_backend_transport_options": prefix,
        }
    path = embedded_queue_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    # WAL (a property of the file, kept by every later connection): the worker's polling
    # does not block the processes that offer jobs.
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    url = f"sqlite:///{path}"
    return {
        "broker_url": url,
        "broker_transport": f"{__name__}:EmbeddedTransport",
        "result_backend": f"db+{url}",
        # Remote control needs a fanout exchange, which this transport does not have.
        "worker_enable_remote_control": False,
    }


def build_celery(settings: Settings) -> JobsApp:
    app = JobsApp(
        "mbt",
        set_as_current=False,
        log=f"{__name__}:MbtLogging",
        include=sorted({spec.module for spec in REGISTRY.values()}),
    )
    app.runtime = JobsRuntime(settings)
    app.conf.update(
        **_transport(settings),
        task_default_queue=QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        result_expires=timedelta(days=7),
        broker_connection_retry_on_startup=True,
        worker_redirect_stdouts=False,
        enable_utc=True,
        timezone="UTC",
    )
    return app
