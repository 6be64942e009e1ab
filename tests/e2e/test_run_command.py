"""The embedded default boots from the run command: every service, the jobs worker and
scheduler and the gateway come up, /healthz reports all upstreams serving, a job runs on
the embedded queue, a killed service is reported and restarted, and Ctrl-C stops everything."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.common.config import SERVICES
from tests.support.mesh import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def healthz(port: int) -> dict | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


@pytest.fixture
def embedded(tmp_path):
    env = {**os.environ, "MBT_DATA_DIR": str(tmp_path / "var"), "MBT_GATEWAY_PORT": str(free_port())}
    for name in SERVICES:
        env[f"MBT_{name.upper()}_PORT"] = str(free_port())
    with open(tmp_path / "run.out", "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.run"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    yield process, env, tmp_path
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    for pid_file in (tmp_path / "var" / "run").glob("*.pid"):
        pid = int(pid_file.read_text())
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_the_run_command_boots_everything_restarts_the_dead_and_stops_cleanly(embedded):
    process, env, tmp_path = embedded
    port = int(env["MBT_GATEWAY_PORT"])
    out = tmp_path / "run.out"
    wait_for(lambda: "all up" in out.read_text(), 120, "the run command to report all up")
    health = healthz(port)
    assert health["data"] == {
        "status": "serving",
        "environment": "development",
        "upstreams": {name: {"status": "serving", "environment": "development"} for name in SERVICES},
    }
    for name in SERVICES:
        assert f"{name}" in out.read_text() and env[f"MBT_{name.upper()}_PORT"] in out.read_text()
    assert (tmp_path / "var" / "orders.db").exists()
    for role in ("worker", "scheduler"):
        assert f"jobs-{role} ready  queue: {tmp_path / 'var' / 'jobs-queue.db'}" in out.read_text()
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "jobs",
            "run",
            "mbt.verify_audit_chain",
            "--date",
            "2012-06-20",
            "--wait",
            "60",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["state"] == "done" and json.loads(ran.stdout)["result"]["broken"] is None

    orders_pid = int((tmp_path / "var" / "run" / "orders.pid").read_text())
    os.kill(orders_pid, signal.SIGKILL)
    wait_for(lambda: "orders died with exit code -9" in out.read_text(), 30, "the death to be reported")
    wait_for(lambda: int((tmp_path / "var" / "run" / "orders.pid").read_text()) != orders_pid, 30, "a restart")
    wait_for(lambda: healthz(port), 60, "the restarted service to serve again")

    pids = [int(p.read_text()) for p in (tmp_path / "var" / "run").glob("*.pid")]
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    assert "stopped" in out.read_text()
    assert not [pid for pid in pids if alive(pid)]
