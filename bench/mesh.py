"""The whole system as separate processes for benchmarks: `python -m services.run` with
its own ports and data directory, on PostgreSQL when a server URL is given."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from services.common.config import SERVICES
from tests.support.databases import DatabaseFactory
from tests.support.mesh import free_port

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def running_mesh(postgres: bool, **env: str):
    """Yields (gateway_url, environment) of a running mesh; stops it and drops its databases after."""
    workdir = Path(tempfile.mkdtemp(prefix="mbt-bench-"))
    databases = DatabaseFactory("postgres" if postgres else "sqlite", workdir)
    environ = {
        **os.environ,
        "MBT_DATA_DIR": str(workdir / "var"),
        "MBT_GATEWAY_PORT": str(free_port()),
        "MBT_LOG_LEVEL": "WARNING",
        **env,
    }
    for name in SERVICES:
        environ[f"MBT_{name.upper()}_PORT"] = str(free_port())
        if name != "matcher":
            environ[f"MBT_{name.upper()}_DATABASE_URL"] = databases.new(name)
    process = subprocess.Popen(
        [sys.executable, "-m", "services.run"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = process.stdout
        if output is None:
            raise RuntimeError("the mesh's output is not piped")
        for line in output:
            if "all up" in line:
                break
        else:
            raise RuntimeError("the mesh did not start")
        # Keep reading the supervisor's output so it never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in output], daemon=True).start()
        url = f"http://127.0.0.1:{environ['MBT_GATEWAY_PORT']}"
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/healthz").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the mesh is not healthy")
            time.sleep(0.2)
        yield url, environ
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        databases.drop_all()
