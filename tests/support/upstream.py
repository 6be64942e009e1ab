"""A stand-in for every service behind the gateway: one real gRPC server that answers each
annotated RPC with the outcome a test sets (an empty success by default), answers
``AccountsService.GetUser`` with a tier the test sets (UNIMPLEMENTED by default, as before
accounts exists), and records what it received. Gateway tests use it to check the
gateway's own behaviour independently of what each service implements."""

from __future__ import annotations

from contextlib import asynccontextmanager

import grpc

from gateway.app import build_app
from gateway.routes import bindings
from mbt.accounts.v1 import accounts_pb2
from services.common.config import SERVICES, Settings
from services.common.errors import DomainError
from services.common.rpc.interceptors import status_for
from tests.support.mesh import TEST_HOST, gateway_client

GET_USER = "/mbt.accounts.v1.AccountsService/GetUser"
TIERS = {"free": accounts_pb2.TIER_FREE, "pro": accounts_pb2.TIER_PRO, "pro_plus": accounts_pb2.TIER_PRO_PLUS}


class ScriptedUpstream(grpc.GenericRpcHandler):
    def __init__(self) -> None:
        self.outcome: DomainError | grpc.StatusCode | None = None
        self.tiers: dict[str, str] = {}
        self.received: list[tuple[str, object, dict]] = []
        self._by_path = {b.grpc_path: b for b in bindings()}
        self.port = 0

    def api_calls(self) -> list[tuple[str, object, dict]]:
        return [call for call in self.received if call[0] != GET_USER]

    def service(self, details):
        if details.method == GET_USER:
            return grpc.unary_unary_rpc_method_handler(
                self._get_user,
                request_deserializer=accounts_pb2.GetUserRequest.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )
        binding = self._by_path.get(details.method)
        if binding is None:
            return None

        async def handle(request, context):
            self.received.append((details.method, request, dict(context.invocation_metadata())))
            if isinstance(self.outcome, DomainError):
                status = status_for(self.outcome)
                await context.abort(status.code, status.details, status.trailing_metadata)
            if isinstance(self.outcome, grpc.StatusCode):
                await context.abort(self.outcome, "upstream said no")
            return binding.response_class()

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=binding.request_class.FromString,
            response_serializer=lambda m: m.SerializeToString(),
        )

    async def _get_user(self, request, context):
        self.received.append((GET_USER, request, dict(context.invocation_metadata())))
        if request.user_id not in self.tiers:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not yet")
        return accounts_pb2.GetUserResponse(
            user=accounts_pb2.User(user_id=request.user_id, tier=TIERS[self.tiers[request.user_id]])
        )

    def settings(self, data_dir, **env: str) -> Settings:
        environ = {f"MBT_{name.upper()}_TARGET": f"127.0.0.1:{self.port}" for name in SERVICES}
        environ.update({"MBT_DATA_DIR": str(data_dir), "MBT_ALLOWED_HOSTS": TEST_HOST, **env})
        return Settings.from_env(environ)

    @asynccontextmanager
    async def gateway(self, data_dir, *, now=None, **env: str):
        """A gateway app in front of this upstream, and an https client of it."""
        app = build_app(self.settings(data_dir, **env), **({"now": now} if now else {}))
        async with gateway_client(app) as client:
            client.app = app
            yield client
        await app.state.gateway.aclose()


@asynccontextmanager
async def scripted_upstream():
    handler = ScriptedUpstream()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([handler])
    handler.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield handler
    finally:
        await server.stop(0)
