"""The gateway's ASGI app: REST routes from the contracts, sessions, envelopes, health,
the OpenAPI document, and the protections around all of them.

Success: ``{"data": ..., "meta": {...}}``; ``data`` is the annotation's ``response_body``
field (or the whole response) and ``meta`` the rest (``next_page_token``, …) plus the
request id. Errors use the envelope of ``gateway.errors``. Every response carries
``X-Request-Id`` and the security headers; every ``/api/mbt`` and session request except
sign-in is admitted (signed in, within its rate limit) before anything else happens.
"""

from __future__ import annotations

import contextlib
import logging
import time
from urllib.parse import unquote_to_bytes

import grpc
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import errors
from gateway.admission import Admission
from gateway.bodies import read_json
from gateway.identity import GatewayIdentity
from gateway.openapi import OPENAPI_PATH, build_openapi
from gateway.passkeys import Passkeys
from gateway.routes import Binding, bindings, by_path
from gateway.security_headers import BrowserProtection
from gateway.session_api import SessionEndpoints
from gateway.sessions import Sessions
from gateway.store import COMPONENT, PasskeyRepository
from gateway.transcoding import InvalidInput, json_to_message, message_to_json, set_path
from gateway.upstreams import Upstreams
from services.common.config import Settings
from services.common.persistence import migrate
from services.common.persistence.db import Database
from services.common.rpc import context
from services.common.security.auth import ServiceCredentials
from services.common.security.ratelimit import build_rate_limiter
from services.common.security.shared_state import build_shared_state, redis_client
from services.common.security.tiers import TierLookup
from services.common.security.tokens import TokenIssuer, TokenKeys, TokenVerifier, WallTime

log = logging.getLogger("mbt.gateway")

# Far beyond any legitimate request; refusing earlier keeps hostile input cheap.
MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024


class RequestIdMiddleware:
    """Adopt a well-formed incoming X-Request-Id or mint one; echo it on every response
    and log one line per request (method, route, status, duration; never headers, never
    the query string)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = context.adopt_request_id(dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1"))
        scope.setdefault("state", {})["request_id"] = rid
        context.set_request_id(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "http",
                extra={
                    "fields": {
                        "method": scope["method"],
                        "path": scope["path"][:256],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    }
                },
            )


def _utf8(raw: bytes) -> bool:
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class RequestLimits:
    """Absurdly long URLs (414) and header blocks (431), and URLs that are not UTF-8 once
    percent-decoded (400: a path or query parameter is a string like any other), are
    refused with the envelope."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = scope.get("state", {}).get("request_id", "")
        url_bytes = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        header_bytes = sum(len(name) + len(value) for name, value in Headers(scope=scope).raw)
        if url_bytes > MAX_URL_BYTES:
            response = errors.error_response(414, "invalid_argument", f"the URL exceeds {MAX_URL_BYTES} bytes", rid)
        elif header_bytes > MAX_HEADER_BYTES:
            response = errors.error_response(
                431, "invalid_argument", f"the request headers exceed {MAX_HEADER_BYTES} bytes", rid
            )
        elif not _utf8(scope.get("raw_path") or scope["path"].encode()) or not _utf8(scope.get("query_string", b"")):
            response = errors.error_response(400, "invalid_argument", "the URL is not UTF-8 once percent-decoded", rid)
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


class Gateway:
    def __init__(self, settings: Settings, upstreams: Upstreams, admission: Admission, closers: list) -> None:
        self.settings = settings
        self.upstreams = upstreams
        self.admission = admission
        # Called in reverse order when the app stops (channels, database, shared state).
        self.closers = closers
        self._callables: dict[str, object] = {}

    def _callable(self, binding: Binding):
        key = binding.grpc_path
        if key not in self._callables:
            self._callables[key] = self.upstreams.channel(binding.upstream).unary_unary(
                binding.grpc_path,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=binding.response_class.FromString,
            )
        return self._callables[key]

    async def build_request(self, request: Request, binding: Binding):
        message = binding.request_class()
        if binding.body:
            data = await read_json(request)
            target = message if binding.body == "*" else getattr(message, binding.body)
            json_to_message(data, target)
        for name, field_path in binding.path_params.items():
            set_path(message, field_path, request.path_params[name], from_query=False)
        for key in request.query_params:
            if binding.body == "*":
                raise InvalidInput(key, f"unknown parameter {key!r}")
            set_path(message, key, request.query_params.getlist(key), from_query=True)
        return message

    def endpoint(self, binding: Binding):
        async def handle(request: Request) -> Response:
            rid = errors.request_id_of(request)
            admitted = await self.admission.admit(request)
            message = await self.build_request(request, binding)
            metadata = [(context.REQUEST_ID_HEADER, rid), *self.admission.identity.upstream_metadata(admitted.caller)]
            try:
                reply = await self._callable(binding)(
                    message, metadata=metadata, timeout=self.settings.rpc_timeout_seconds
                )
            except grpc.aio.AioRpcError as exc:
                return admitted.stamp(errors.from_rpc_error(exc, rid))
            return admitted.stamp(JSONResponse(envelope(reply, binding, rid)))

        return errors.enveloped(handle)

    async def healthz(self, request: Request) -> Response:
        """Serving when every upstream serves in the gateway's own environment: a development
        service behind a production gateway would accept tokens signed with published keys."""
        upstreams = await self.upstreams.health()
        healthy = all(
            upstream["status"] == "serving" and upstream["environment"] == self.settings.env
            for upstream in upstreams.values()
        )
        body = {
            "data": {
                "status": "serving" if healthy else "degraded",
                "environment": self.settings.env,
                "upstreams": upstreams,
            },
            "meta": {"request_id": errors.request_id_of(request)},
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            result = close()
            if hasattr(result, "__await__"):
                await result


def envelope(reply, binding: Binding, request_id: str) -> dict:
    payload = message_to_json(reply)
    if binding.response_body:
        data = payload.pop(binding.response_body)
        meta = payload
    else:
        data, meta = payload, {}
    meta["request_id"] = request_id
    return {"data": data, "meta": meta}


async def _not_found(request: Request, exc) -> Response:
    rid = errors.request_id_of(request)
    return errors.error_response(
        404, "not_found", f"no route for {request.url.path[:256]}", rid, headers={"x-request-id": rid}
    )


async def _method_not_allowed(request: Request, exc) -> Response:
    rid = errors.request_id_of(request)
    return errors.error_response(
        405, "method_not_allowed", f"{request.method} is not allowed here", rid, headers={"x-request-id": rid}
    )


async def _internal(request: Request, exc: Exception) -> Response:
    log.error("unhandled gateway error", exc_info=exc)
    rid = errors.request_id_of(request)
    return errors.error_response(
        500, "internal", f"internal error; quote request id {rid}", rid, headers={"x-request-id": rid}
    )


def build_app(settings: Settings, upstreams: Upstreams | None = None, *, now: WallTime = time.time) -> Starlette:
    """``now`` is the wall clock of sessions, tokens and rate limits (tests fix it)."""
    upstreams = upstreams or Upstreams(settings)
    keys = TokenKeys.from_settings(settings)
    issuer = TokenIssuer(keys, now)
    credentials = ServiceCredentials(issuer, COMPONENT, now)
    redis = redis_client(settings)
    state = build_shared_state(settings, redis, now)
    migrate.upgrade(COMPONENT, settings.gateway_database_url)
    db = Database(settings.gateway_database_url, pool_size=settings.db_pool_size)
    tiers = TierLookup(lambda: upstreams.channel("accounts"), credentials, settings.rpc_timeout_seconds)
    sessions = Sessions(settings, state, issuer, tiers, now)
    identity = GatewayIdentity(TokenVerifier(keys, now), sessions, credentials)
    admission = Admission(identity, build_rate_limiter(settings, redis, now), settings.anonymous_rate_limit)
    gateway = Gateway(settings, upstreams, admission, closers=[upstreams.close, db.aclose, state.close])
    passkeys = Passkeys(settings, PasskeyRepository(db), state, now)
    session_endpoints = SessionEndpoints(settings, admission, sessions, passkeys, now)
    api_bindings = bindings()
    document = build_openapi(api_bindings, session_endpoints.handlers())

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes = [Route("/healthz", gateway.healthz, methods=["GET"]), Route(OPENAPI_PATH, openapi, methods=["GET"])]
    routes += session_endpoints.routes()
    routes += [
        Route(
            path,
            errors.by_method({method: gateway.endpoint(b) for method, b in methods.items()}),
            methods=errors.ALL_METHODS,
        )
        for path, methods in by_path(api_bindings).items()
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await gateway.aclose()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _method_not_allowed, Exception: _internal},
    )
    # A missing or extra trailing slash is a 404: Starlette's redirect would be built from Host.
    app.router.redirect_slashes = False
    app.add_middleware(RequestLimits)
    app.add_middleware(BrowserProtection, settings=settings)
    app.add_middleware(RequestIdMiddleware)
    app.state.gateway = gateway
    return app
