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
from contextlib import asynccontextmanager
from pathlib import Path

from services.common.config import Settings
from services.common.persistence.db import BlockingDatabase
from services.jobs.app import ready_marker
from services.jobs.queue import JobQueue
from services.jobs.records import JobRecords, JobRun
from tests.support.databases import REDIS_URL, DatabaseFactory
from tests.support.mesh import start_mesh
from tests.support.redis_keys import fresh_prefix
from tests.support.trading import Trading

ROOT = Path(__file__).resolve().parents[2]
READY_SECONDS = 60


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
async def jobs_variant(
    variant: tuple[str, str], tmp_path: Path, environ: Callable[..., dict[str, str]]
) -> AsyncIterator[tuple]:
    """A mesh on ``environ(databases, data_dir, **env)`` with its jobs' processes and queue, on
    (backend, transport): ``sqlite``/``postgres`` and ``embedded``/``redis`` (a fresh key
    prefix). Yields (Trading, JobsProcesses, JobQueue); a killed worker's lease lasts 2 s."""
    backend, transport = variant
    databases = DatabaseFactory(backend, tmp_path)
    async with fresh_prefix() if transport == "redis" else _no_prefix() as prefix:
        env = {"MBT_JOBS_DATABASE_URL": databases.new("jobs"), "MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS": "2"}
        if transport == "redis":
            env.update(MBT_REDIS_URL=REDIS_URL, MBT_REDIS_KEY_PREFIX=prefix)
        settings_environ = environ(databases, tmp_path / "var", **env)
        mesh = await start_mesh(Settings.from_env(settings_environ))
        processes = JobsProcesses(settings_environ, tmp_path / "logs")
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


class _no_prefix:
    async def __aenter__(self):
        return ""

    async def __aexit__(self, *exc_info):
        return False
