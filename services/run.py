"""`make run`: start every service and the gateway as supervised processes.

Each service runs in its own process (``python -m services.<name>``) with its log in
``var/log/<name>.log`` and its pid in ``var/run/<name>.pid``. A process that dies is reported (with the end of its log) and
restarted with backoff; Ctrl-C or SIGTERM stops everything in reverse start order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.config import ConfigError, Settings
from services.common.rpc.server import listen_problem, port_variable
from services.jobs.app import embedded_queue_path, ready_marker

# Market data first (it owns the clock the others follow), the matcher last (it loads
# the working orders from orders at start).
START_ORDER = ("marketdata", "accounts", "activities", "orders", "matcher")
# Then the jobs (the scheduler follows market data's clock), then the gateway.
JOB_ROLES = ("worker", "scheduler")
READY_TIMEOUT_SECONDS = 60
MAX_BACKOFF_SECONDS = 30


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    pid_path: Path
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A session of its own: the terminal's Ctrl-C reaches only the supervisor, which
        # then stops the children in order. The child keeps its own copy of the log's descriptor.
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.write_text(f"{self.process.pid}\n")
        self.started_at = time.monotonic()

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _grpc_serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        logs, pids = settings.data_dir / "log", settings.data_dir / "run"
        python = sys.executable
        self.children = [
            Child(name, [python, "-m", f"services.{name}"], logs / f"{name}.log", pids / f"{name}.pid")
            for name in START_ORDER
        ]
        self.children.extend(
            Child(
                f"jobs-{role}",
                [python, "-m", "services.jobs", role],
                logs / f"jobs-{role}.log",
                pids / f"jobs-{role}.pid",
            )
            for role in JOB_ROLES
        )
        self.children.append(Child("gateway", [python, "-m", "gateway"], logs / "gateway.log", pids / "gateway.pid"))
        self.stopping = False

    @staticmethod
    def job_role(child: Child) -> str | None:
        return child.name.removeprefix("jobs-") if child.name.startswith("jobs-") else None

    def port(self, child: Child) -> int:
        return self.settings.gateway_port if child.name == "gateway" else self.settings.service(child.name).port

    def listen_problems(self) -> list[str]:
        """Ports that are taken before anything starts, each with the setting that moves it."""
        problems = (
            listen_problem(self.settings.bind_host, self.port(child), port_variable(child.name))
            for child in self.children
            if self.job_role(child) is None
        )
        return [problem for problem in problems if problem]

    def address(self, child: Child) -> str:
        if self.job_role(child) is not None:
            return "queue: Redis" if self.settings.redis_url else f"queue: {embedded_queue_path(self.settings)}"
        if child.name == "gateway":
            return f"http://{self.settings.bind_host}:{self.port(child)}"
        return f"{self.settings.bind_host}:{self.port(child)}"

    def ready(self, child: Child) -> bool:
        host = "127.0.0.1" if self.settings.bind_host in ("0.0.0.0", "::") else self.settings.bind_host
        role = self.job_role(child)
        if role is not None:
            return ready_marker(self.settings, role).exists()
        if child.name == "gateway":
            return _http_ok(f"http://{host}:{self.port(child)}/healthz")
        return _grpc_serving(f"{host}:{self.port(child)}")

    def say(self, text: str) -> None:
        print(f"[mbt] {text}", flush=True)

    def start(self, child: Child) -> None:
        role = self.job_role(child)
        if role is not None:  # a marker left by a process that was killed says nothing about this one
            ready_marker(self.settings, role).unlink(missing_ok=True)
        child.start()

    def start_all(self) -> bool:
        for child in self.children:
            self.start(child)
            process = child.process
            if process is None:
                raise RuntimeError(f"{child.name} was not started")
            deadline = time.monotonic() + READY_TIMEOUT_SECONDS
            while not self.ready(child):
                if self.stopping:
                    return False
                if process.poll() is not None:
                    self.say(f"{child.name} exited with code {process.returncode} while starting:\n{child.tail()}")
                    return False
                if time.monotonic() > deadline:
                    self.say(f"{child.name} did not become ready in {READY_TIMEOUT_SECONDS}s:\n{child.tail()}")
                    return False
                time.sleep(0.2)
            self.say(f"{child.name:<11} ready  {self.address(child)}  (log: {child.log_path})")
        return True

    def watch(self) -> None:
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                if child.process is None:
                    if now >= child.next_start:
                        self.say(f"restarting {child.name} (restart #{child.restarts})")
                        self.start(child)
                    continue
                code = child.process.poll()
                if code is None:
                    if now - child.started_at > 60:
                        child.restarts = 0
                    continue
                child.restarts += 1
                delay = min(MAX_BACKOFF_SECONDS, 2 ** min(child.restarts, 5) / 2)
                self.say(
                    f"{child.name} died with exit code {code}; restarting in {delay:.0f}s. "
                    f"Last log lines:\n{child.tail()}"
                )
                child.process = None
                child.next_start = now + delay
            time.sleep(0.5)

    def stop_all(self) -> None:
        self.stopping = True
        for child in reversed(self.children):
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.grace_seconds + 5
        for child in reversed(self.children):
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop in time; killing it")
                child.process.kill()
                child.process.wait()
        self.say("stopped")


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}")
        return 2
    supervisor = Supervisor(settings)
    problems = supervisor.listen_problems()
    for problem in problems:
        supervisor.say(problem)
    if problems:
        return 2
    interrupted = False

    def on_signal(signum, frame):
        nonlocal interrupted
        interrupted = supervisor.stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    supervisor.say(f"starting MBT ({settings.env}); data in {settings.data_dir}/, Ctrl-C stops everything")
    started = False
    try:
        started = supervisor.start_all()
        if started:
            supervisor.say(
                f"all up: REST on http://{settings.bind_host}:{settings.gateway_port}/api/mbt/ , "
                f"gRPC with reflection on ports "
                + ", ".join(str(settings.service(n).port) for n in START_ORDER)
                + ", jobs on the market clock (mbt jobs list)"
            )
            supervisor.watch()
    finally:
        supervisor.stop_all()
    return 0 if started or interrupted else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
