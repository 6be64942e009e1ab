"""Channels from the gateway to each service, and their health."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.config import SERVICES, Settings
from services.common.rpc.channels import open_channel
from services.common.rpc.server import ENVIRONMENT_TRAILER


class Upstreams:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.channels: dict[str, grpc.aio.Channel] = {}

    def channel(self, service: str) -> grpc.aio.Channel:
        if service not in self.channels:
            self.channels[service] = open_channel(
                self.settings.service(service).target, keepalive_seconds=self.settings.grpc_keepalive_seconds
            )
        return self.channels[service]

    async def health(self, timeout: float = 1.0) -> dict[str, dict[str, str | None]]:
        """Each service's serving status and the environment it says it runs in (None when
        it cannot be reached or does not say)."""

        async def check(name: str) -> tuple[str, dict[str, str | None]]:
            call = health_pb2_grpc.HealthStub(self.channel(name)).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
            try:
                reply = await call
                trailers = await call.trailing_metadata()
            except grpc.aio.AioRpcError:
                return name, {"status": "unreachable", "environment": None}
            environment = dict(trailers or ()).get(ENVIRONMENT_TRAILER)
            return name, {
                "status": health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status).lower(),
                "environment": environment if isinstance(environment, str) else None,
            }

        return dict(await asyncio.gather(*(check(name) for name in SERVICES)))

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()
