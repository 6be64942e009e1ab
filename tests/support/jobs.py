"""Jobs processes for tests: the real worker and scheduler (``python -m services.jobs …``)
started against a test mesh's environment, killed by signal when a test says so, and the
jobs' records read back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from services.common.config import Settings
from services.common.persistence.db import BlockingDatabase
from services.jobs.app import ready_marker
from services.jobs.records import JobRecords, JobRun

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
