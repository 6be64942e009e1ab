"""Jobs processes for tests: the real worker and scheduler (``python -m services.jobs …``)
started against a test mesh's environment, killed by signal when a test says so, and the
jobs' records read back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path

import pytest

from services.common.config import Settings
from services.common.persistence.db import BlockingDatabase
from services.jobs.app import ready_marker
from services.jobs.queue import JobQueue
from services.jobs.records import JobRecords, JobRun
from tests.conftest import BACKENDS
from tests.support.databases import REDIS_URL, DatabaseFactory
from tests.support.mesh import start_mesh
from tests.support.redis_keys import REDIS_MARKS, fresh_prefix
from tests.support.trading import Trading, trading_environ

ROOT = Path(__file__).resolve().parents[2]
READY_SECONDS = 60
# Each backend and each transport once: the records' claims on SQLite and PostgreSQL, the
# embedded transport (no visibility timeout of its own) and Redis (acks late, visibility timeout).
VARIANTS = [
    pytest.param(("sqlite", "embedded"), id="sqlite-embedded"),
    pytest.param(("postgres", "redis"), id="postgres-redis", marks=[*BACKENDS[1].marks, *REDIS_MARKS]),
]


class JobsProcesses:
    def __init__(self, environ: dict[str, str], logs: Path) -> None:
        self.environ = {**os.environ, **environ, "MBT_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
        self.settings = Settings.from_env(environ)
        self.logs = logs
        self.processes: dict[str, subprocess.Popen] = {}
        self.records = JobRecords(BlockingDatabase(self.settings.jobs_database_url))

    def log_path(self, role: str) -> Path:
        return self.logs / f"jobs-{role}.log"

    def log(self, role: str) -> str:
        path = self.log_path(role)
        return path.read_text(errors="replace") if path.exists() else ""

    async def start(self, role: str, **env: str) -> subprocess.Popen:
        """Start ``role`` (worker or scheduler), with ``env`` over the mesh's environment, and
        wait until it is ready."""
        marker = ready_marker(self.settings, role)
        marker.unlink(missing_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(role), "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "services.jobs", role],
                cwd=ROOT,
                env={**self.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes[role] = process
        for _ in range(READY_SECONDS * 10):
            if marker.exists():
                return process
            if process.poll() is not None:
                raise AssertionError(f"jobs {role} exited with {process.returncode}:\n{self.log(role)[-3000:]}")
            await asyncio.sleep(0.1)
        raise AssertionError(f"jobs {role} not ready in {READY_SECONDS}s:\n{self.log(role)[-3000:]}")

    def kill(self, role: str) -> None:
        """SIGKILL: no cleanup, no acknowledgement, no restore of what it held."""
        process = self.processes.pop(role)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    async def stop(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                await asyncio.to_thread(process.wait, 20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        self.records.db.dispose()

    async def run(self, job: str, key: str) -> JobRun | None:
        return await asyncio.to_thread(self.records.get, job, key)

    async def runs(self, job: str) -> list[JobRun]:
        return await asyncio.to_thread(self.records.runs, job, 1000)


@asynccontextmanager
async def jobs_mesh(
    variant: tuple[str, str], tmp_path: Path, *, environ: Callable[..., dict[str, str]] = trading_environ, **env: str
) -> AsyncIterator[tuple]:
    """A trading mesh over a stepped replay (``environ(databases, data_dir, **env)``, the
    bundled recording by default) with the jobs' processes and queue, on one of ``VARIANTS``
    (backend, transport): yields (Trading, JobsProcesses, JobQueue)."""
    backend, transport = variant
    databases = DatabaseFactory(backend, tmp_path)
    async with fresh_prefix() if transport == "redis" else nullcontext("") as prefix:
        env = {"MBT_JOBS_DATABASE_URL": databases.new("jobs"), **env}
        if transport == "redis":
            env.update(MBT_REDIS_URL=REDIS_URL, MBT_REDIS_KEY_PREFIX=prefix)
        mesh_env = environ(databases, tmp_path / "var", **env)
        mesh = await start_mesh(Settings.from_env(mesh_env))
        processes = JobsProcesses(mesh_env, tmp_path / "logs")
        queue = JobQueue(mesh.settings)
        trading = Trading(mesh)
        try:
            yield trading, processes, queue
        finally:
            await processes.stop()
            queue.close()
            await trading.close()
            await mesh.stop()
            databases.drop_all()
