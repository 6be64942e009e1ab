"""A start that cannot work stops with one line naming the setting that fixes it, not a
traceback: a port in use, for the run command and for a service started alone."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.config import SERVICES
from tests.support.mesh import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def taken_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def environment(tmp_path: Path, **ports: int) -> dict[str, str]:
    env = {**os.environ, "MBT_DATA_DIR": str(tmp_path / "var"), "MBT_GATEWAY_PORT": str(free_port())}
    for name in SERVICES:
        env[f"MBT_{name.upper()}_PORT"] = str(free_port())
    env.update({f"MBT_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    return env


@pytest.mark.parametrize("component", ["orders", "gateway"])
def test_the_run_command_names_the_port_setting_and_starts_nothing(tmp_path, taken_port, component):
    result = subprocess.run(
        [sys.executable, "-m", "services.run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment(tmp_path, **{component: taken_port}),
    )
    assert result.returncode == 2, result.stdout
    assert f"port {taken_port} in use: set MBT_{component.upper()}_PORT" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "var" / "run").exists()  # no process was started


def test_a_service_alone_names_the_port_setting(tmp_path, taken_port):
    result = subprocess.run(
        [sys.executable, "-m", "services.orders"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment(tmp_path, orders=taken_port),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"orders: port {taken_port} in use: set MBT_ORDERS_PORT" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
