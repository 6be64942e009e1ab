"""gRPC server bootstrap shared by every service: reflection, health, the interceptor,
background tasks, and graceful shutdown on SIGTERM/SIGINT.

A service's ``build(settings)`` returns a ``ServiceRuntime``; ``start`` serves it on a
port (0 in tests) and ``main`` is what ``python -m services.<name>`` runs.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.background import log_failure
from services.common.clock import Clock
from services.common.config import GRPC_KEEPALIVE_SECONDS, ConfigError, Settings
from services.common.observability import logs
from services.common.rpc.interceptors import ServerInterceptor
from services.common.rpc.policy import server_options
from services.common.security.auth import Authenticator, TokenAuthenticator
from services.common.security.ops_audit import LoggedOpsReads, OpsReadAudit
from services.common.security.ratelimit import InProcessRateLimiter, RateLimiter
from services.common.security.tokens import TokenKeys, TokenVerifier

log = logging.getLogger(__name__)

# Trailing metadata of every health check: the environment (MBT_ENV) the server runs in, so
# the gateway's /healthz can show a mesh that mixes environments.
ENVIRONMENT_TRAILER = "x-mbt-environment"


@dataclass
class Registration:
    """One gRPC service on the server: its full name, the generated add function, the servicer."""

    service_name: str
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any

    @classmethod
    def of(cls, servicer: Any) -> Registration:
        """Find the generated base class of ``servicer`` and register it under its proto name."""
        for base in type(servicer).__mro__:
            if base.__module__.endswith("_pb2_grpc") and base.__name__.endswith("Servicer"):
                grpc_module = importlib.import_module(base.__module__)
                pb2 = importlib.import_module(base.__module__.removesuffix("_grpc"))
                descriptor = pb2.DESCRIPTOR.services_by_name[base.__name__.removesuffix("Servicer")]
                return cls(descriptor.full_name, getattr(grpc_module, f"add_{base.__name__}_to_server"), servicer)
        raise TypeError(f"{type(servicer).__name__} does not derive from a generated servicer")


@dataclass
class ServiceRuntime:
    name: str
    registrations: list[Registration]
    # Long-running coroutines started once the server listens (relays, feeds, loops).
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    # Awaited in order before the server listens (state a service restores from its database).
    startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Called after the server stopped, in order (close channels, dispose engines).
    closers: list[Callable[[], Any]] = field(default_factory=list)
    # ServiceKit.runtime passes the configured ones; a runtime built by hand (tests, tools)
    # verifies tokens with the development keys and keeps its rate limits in process.
    authenticator: Authenticator = field(
        default_factory=lambda: TokenAuthenticator(TokenVerifier(TokenKeys.development()))
    )
    rate_limiter: RateLimiter = field(default_factory=InProcessRateLimiter)
    ops_audit: OpsReadAudit = field(default_factory=LoggedOpsReads)
    keepalive_seconds: float = GRPC_KEEPALIVE_SECONDS
    environment: str = "development"
    # The clock the service's requests read (ServiceKit's); a follower answers requests that
    # need the time only once it has synchronised with market data.
    clock: Clock | None = None


class EnvironmentHealth(health.aio.HealthServicer):
    """The library's health service; each Check also names the environment."""

    def __init__(self, environment: str) -> None:
        super().__init__()
        self.environment = environment

    async def Check(self, request, context):
        context.set_trailing_metadata(((ENVIRONMENT_TRAILER, self.environment),))
        return await super().Check(request, context)


@dataclass
class RunningService:
    runtime: ServiceRuntime
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    tasks: list[asyncio.Task]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self, grace: float = 2.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for close in self.runtime.closers:
            result = close()
            if asyncio.iscoroutine(result):
                await result


def port_variable(component: str) -> str:
    """The setting that chooses ``component``'s port (a service or the gateway)."""
    return f"MBT_{component.upper()}_PORT"


def listen_problem(host: str, port: int, variable: str) -> str | None:
    """Why nothing can listen on ``host:port``, naming the setting that fixes it; None if it can."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        return f"cannot resolve {host} ({exc.strerror}): set MBT_BIND_HOST"
    with socket.socket(family, kind, proto) as probe:
        # As the servers themselves bind: a port held only by closed connections is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} in use: set {variable} to a free port, or stop what listens on {host}:{port}"
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"{host} is not an address of this machine: set MBT_BIND_HOST"
            return f"cannot listen on {host}:{port} ({exc.strerror}): set {variable} or MBT_BIND_HOST"
    return None


async def start(runtime: ServiceRuntime, *, host: str = "127.0.0.1", port: int = 0) -> RunningService:
    for step in runtime.startup:
        await step()
    interceptor = ServerInterceptor(runtime.authenticator, runtime.rate_limiter, runtime.ops_audit)
    server = grpc.aio.server(interceptors=[interceptor], options=server_options(runtime.keepalive_seconds))
    health_servicer = EnvironmentHealth(runtime.environment)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [health.SERVICE_NAME, reflection.SERVICE_NAME]
    for registration in runtime.registrations:
        registration.add_to_server(registration.servicer, server)
        names.append(registration.service_name)
    reflection.enable_server_reflection(names, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpc says only "Failed to bind"; the probe says why
        bound = 0
    if bound == 0:
        raise ConfigError(
            listen_problem(host, port, port_variable(runtime.name))
            or f"cannot listen on {host}:{port}: set {port_variable(runtime.name)} or MBT_BIND_HOST"
        )
    await server.start()
    for registration in runtime.registrations:
        await health_servicer.set(registration.service_name, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    tasks = []
    for job in runtime.background:
        task = asyncio.create_task(job(), name=f"{runtime.name}:{getattr(job, '__qualname__', job)}")
        task.add_done_callback(log_failure)
        tasks.append(task)
    return RunningService(runtime, server, bound, health_servicer, tasks)


async def serve(runtime: ServiceRuntime, settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then drain in-flight RPCs for the grace period."""
    service = settings.service(runtime.name)
    running = await start(runtime, host=settings.bind_host, port=service.port)
    log.info(
        "serving",
        extra=logs.fields(
            address=f"{settings.bind_host}:{running.port}", services=[r.service_name for r in runtime.registrations]
        ),
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("shutting down", extra=logs.fields(grace_seconds=settings.grace_seconds))
    await running.stop(settings.grace_seconds)
    log.info("stopped")


def main(name: str, build: Callable[[Settings], ServiceRuntime], argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m services.<name>``."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"{name}: configuration error: {exc}")
        return 2
    logs.configure(name, settings.log_level, settings.log_format)

    async def run() -> None:
        runtime = build(settings)
        await serve(runtime, settings)

    try:
        asyncio.run(run())
    except ConfigError as exc:  # a port in use, a missing credential: say which setting fixes it
        print(f"{name}: {exc}")
        return 2
    return 0
