"""The whole mesh in the test process: five real gRPC servers on free ports, each with
its own database, plus the gateway app (with its own database too), talking over real
connections. ``mesh.http`` talks to the gateway over https (session cookies are
``Secure``); sign it in with ``tests.support.identity.sign_in``."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from dataclasses import dataclass, field

import httpx

from gateway.app import build_app
from services.common.clock import FollowerClock
from services.common.config import SERVICES, Settings
from services.common.rpc.server import RunningService, start
from services.run import START_ORDER
from tests.support.databases import DatabaseFactory

# The host name tests reach the gateway by; their settings allow it (MBT_ALLOWED_HOSTS).
TEST_HOST = "mbt.test"


# Ports for listeners are picked below Linux's ephemeral range (32768-60999): a port the
# kernel handed out for bind(0) is released at once and may then become the local port of
# an outgoing connection (to PostgreSQL, Redis, another service) before a server binds it.
LISTEN_PORTS = range(20000, 32000)
# Each process walks the range in its own shuffled order, the whole range before any port
# again: two listeners of one mesh, picked before either binds, never get the same port.
_PORT_ORDER = random.Random(os.getpid())
_UNUSED_PORTS: list[int] = []


def free_port() -> int:
    """A port on 127.0.0.1 free now, outside the ephemeral range."""
    while True:
        if not _UNUSED_PORTS:
            _UNUSED_PORTS.extend(_PORT_ORDER.sample(LISTEN_PORTS, len(LISTEN_PORTS)))
        port = _UNUSED_PORTS.pop()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def mesh_environ(databases: DatabaseFactory, data_dir, **env: str) -> dict[str, str]:
    """The environment of a test mesh (what its jobs processes are started with too)."""
    environ = {"MBT_DATA_DIR": str(data_dir), "MBT_LOG_FORMAT": "text", "MBT_ALLOWED_HOSTS": TEST_HOST, **env}
    for name in SERVICES:
        environ.setdefault(f"MBT_{name.upper()}_PORT", str(free_port()))
        environ.setdefault(f"MBT_{name.upper()}_DATABASE_URL", databases.new(name))
    environ.setdefault("MBT_GATEWAY_DATABASE_URL", databases.new("gateway"))
    return environ


def mesh_settings(databases: DatabaseFactory, data_dir, **env: str) -> Settings:
    return Settings.from_env(mesh_environ(databases, data_dir, **env))


def build_service(name: str, settings: Settings, **kwargs):
    module = __import__(f"services.{name}.app", fromlist=["build"])
    return module.build(settings, **kwargs)


@dataclass
class Mesh:
    settings: Settings
    services: dict[str, RunningService] = field(default_factory=dict)
    app: object = None
    http: httpx.AsyncClient | None = None

    def target(self, name: str) -> str:
        return f"127.0.0.1:{self.services[name].port}"

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.aclose()
        if self.app is not None:
            await self.app.state.gateway.aclose()
        for name in reversed(list(self.services)):
            await self.services[name].stop(0.5)


def gateway_client(app) -> httpx.AsyncClient:
    """An HTTP client of ``app``, in process, over https so ``Secure`` cookies flow."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"https://{TEST_HOST}")


async def start_mesh(settings: Settings, builders: dict | None = None) -> Mesh:
    """Start every service (``builders`` may replace a service's build for a test)."""
    mesh = Mesh(settings)
    try:
        for name in START_ORDER:
            build = (builders or {}).get(name) or (lambda s, n=name: build_service(n, s))
            mesh.services[name] = await start(build(settings), port=settings.service(name).port)
    except BaseException:
        await mesh.stop()
        raise
    mesh.app = build_app(settings)
    mesh.http = gateway_client(mesh.app)
    await _clocks_synced(mesh)
    return mesh


async def _clocks_synced(mesh: Mesh, timeout: float = 60) -> None:
    """Wait until every service following the market clock has synchronised with it: before,
    a request that needs the time is answered 503 (a busy machine can take seconds)."""
    followers = [s.runtime.clock for s in mesh.services.values() if isinstance(s.runtime.clock, FollowerClock)]
    deadline = asyncio.get_running_loop().time() + timeout
    while not all(clock.synced for clock in followers):
        if asyncio.get_running_loop().time() > deadline:
            await mesh.stop()
            raise TimeoutError(f"the services' clocks did not synchronise with market data in {timeout:.0f} s")
        await asyncio.sleep(0.02)
