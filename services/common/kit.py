"""What every service is wired from: its database, outbox and relay, its clock, channels
to the services it calls (carrying its service token), and the security of its server
(token verification, rate limits, the audit of ops reads). ``ServiceKit.create`` is called
by each service's ``build(settings)``; tests pass their own clock and settings.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import grpc
import redis.asyncio as redis

from mbt.common.v1 import events_pb2_grpc
from mbt.marketdata.v1 import marketdata_pb2_grpc
from services.common.clock import Clock, FollowerClock
from services.common.config import Settings
from services.common.messaging import topology
from services.common.messaging.outbox import Outbox, OutboxRelay, OutboxTables
from services.common.observability.metrics import serve_metrics
from services.common.persistence import migrate
from services.common.persistence.db import Database
from services.common.rpc.channels import open_channel
from services.common.rpc.server import Registration, ServiceRuntime
from services.common.security.auth import ServiceCredentials, TokenAuthenticator
from services.common.security.ops_audit import LoggedOpsReads, OutboxOpsReads
from services.common.security.ratelimit import build_rate_limiter
from services.common.security.shared_state import build_shared_state, redis_client
from services.common.security.tokens import TokenIssuer, TokenKeys, TokenVerifier


@dataclass
class ServiceKit:
    name: str
    settings: Settings
    clock: Clock
    db: Database | None = None
    outbox: Outbox | None = None
    relay: OutboxRelay | None = None
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    _background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    _redis: redis.Redis | None = None

    def __post_init__(self) -> None:
        self.keys = TokenKeys.from_settings(self.settings)
        self.credentials = ServiceCredentials(TokenIssuer(self.keys), self.name)
        self._redis = redis_client(self.settings)

    @classmethod
    def create(
        cls, name: str, settings: Settings, *, tables: OutboxTables | None = None, clock: Clock | None = None
    ) -> ServiceKit:
        """``tables`` None: a service without a database (the matcher). ``clock`` None: a
        new ``FollowerClock``; a follower clock (made here or given) follows the market-data
        service's clock."""
        kit = cls(name, settings, clock or FollowerClock())
        if settings.service(name).metrics_port:
            kit._background.append(partial(serve_metrics, settings.service(name).metrics_port, settings.bind_host))
        if isinstance(kit.clock, FollowerClock):
            kit._background.append(
                partial(kit.clock.follow, kit.stub("marketdata", marketdata_pb2_grpc.MarketDataServiceStub))
            )
        if tables is not None:
            url = settings.service(name).database_url
            migrate.upgrade(name, url, settings=settings)
            kit.db = Database(url, pool_size=settings.db_pool_size)
            kit.outbox = Outbox(name, tables, kit.clock)
            sinks = {
                consumer: kit.stub(consumer, events_pb2_grpc.EventSinkServiceStub)
                for consumer in sorted(topology.consumers())
            }
            kit.relay = OutboxRelay(
                kit.db,
                name,
                tables,
                sinks,
                batch_size=settings.outbox_batch_size,
                poll_seconds=settings.outbox_poll_ms / 1000,
                rpc_timeout=settings.rpc_timeout_seconds,
            )
            kit.outbox.on_commit(kit.relay.wake)
            kit._background.append(kit.relay.run)
        return kit

    @property
    def database(self) -> Database:
        """The database of a service created with ``tables``; RuntimeError for one without."""
        if self.db is None:
            raise RuntimeError(f"{self.name} was created without tables: it has no database")
        return self.db

    @property
    def event_outbox(self) -> Outbox:
        """The outbox of a service created with ``tables``; RuntimeError for one without."""
        if self.outbox is None:
            raise RuntimeError(f"{self.name} was created without tables: it has no outbox")
        return self.outbox

    def channel(self, service: str) -> grpc.aio.Channel:
        if service not in self._channels:
            self._channels[service] = open_channel(
                self.settings.service(service).target,
                self.credentials,
                keepalive_seconds=self.settings.grpc_keepalive_seconds,
            )
        return self._channels[service]

    def stub(self, service: str, stub_class):
        return stub_class(self.channel(service))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        if self.db is not None:
            await self.db.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    def runtime(
        self, registrations: Iterable[Registration], background: Iterable[Callable[[], Coroutine[Any, Any, None]]] = ()
    ) -> ServiceRuntime:
        sessions = build_shared_state(self.settings, self._redis)
        return ServiceRuntime(
            name=self.name,
            registrations=list(registrations),
            background=[*self._background, *background],
            closers=[self.close],
            authenticator=TokenAuthenticator(TokenVerifier(self.keys), sessions),
            rate_limiter=build_rate_limiter(self.settings, self._redis),
            ops_audit=OutboxOpsReads(self.database, self.outbox) if self.outbox is not None else LoggedOpsReads(),
            keepalive_seconds=self.settings.grpc_keepalive_seconds,
            environment=self.settings.env,
            clock=self.clock,
        )
