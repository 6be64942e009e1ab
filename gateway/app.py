"""The gateway's ASGI app: REST routes from the contracts, envelopes, identity, health.

Success: ``{"data": ..., "meta": {...}}``; ``data`` is the annotation's ``response_body``
field (or the whole response) and ``meta`` the rest (``next_page_token``, …) plus the
request id. Errors use the envelope of ``gateway.errors``. Every response carries
``X-Request-Id``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time

import grpc
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import errors
from gateway.identity import DevHeaderIdentity, InvalidIdentity
from gateway.routes import Binding, bindings, by_path
from gateway.transcoding import InvalidInput, json_to_message, message_to_json, set_path
from gateway.upstreams import Upstreams
from services.common import context
from services.common.config import Settings

log = logging.getLogger("mbt.gateway")

MAX_BODY_BYTES = 64 * 1024
# Routes accept every method so a wrong one gets the enveloped 405, not Starlette's text.
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    """Adopt a well-formed incoming X-Request-Id or mint one; echo it on every response
    and log one line per request (method, route, status, duration; never headers)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _REQUEST_ID.match(incoming) else context.new_request_id()
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
            log.info("http", extra={"fields": {"method": scope["method"], "path": scope["path"], "status": status,
                                               "duration_ms": round((time.perf_counter() - started) * 1000, 2)}})


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "") or context.request_id()


async def _read_json(request: Request) -> object:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise _TooLarge()
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            raise _TooLarge()
    if not body.strip():
        return {}
    if content_type not in ("application/json", ""):
        raise InvalidInput("body", "Content-Type must be application/json")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidInput("body", "the request body is not valid JSON") from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


class _TooLarge(Exception):
    pass


class Gateway:
    def __init__(self, settings: Settings, upstreams: Upstreams) -> None:
        self.settings = settings
        self.upstreams = upstreams
        self.identity = DevHeaderIdentity(settings)
        self._callables: dict[str, object] = {}

    def _callable(self, binding: Binding):
        key = binding.grpc_path
        if key not in self._callables:
            self._callables[key] = self.upstreams.channel(binding.upstream).unary_unary(
                binding.grpc_path, request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=binding.response_class.FromString)
        return self._callables[key]

    async def build_request(self, request: Request, binding: Binding):
        message = binding.request_class()
        if binding.body:
            data = await _read_json(request)
            target = message if binding.body == "*" else getattr(message, binding.body)
            json_to_message(data, target)
        for name, field_path in binding.path_params.items():
            set_path(message, field_path, request.path_params[name], from_query=False)
        for key in request.query_params.keys():
            if binding.body == "*":
                raise InvalidInput(key, f"unknown parameter {key!r}")
            set_path(message, key, request.query_params.getlist(key), from_query=True)
        return message

    def endpoint(self, methods: dict[str, Binding]):
        allowed = ", ".join(sorted(methods))

        async def handle(request: Request) -> Response:
            rid = _request_id(request)
            binding = methods.get(request.method)
            if binding is None:
                return errors.error_response(405, "method_not_allowed",
                                             f"{request.method} is not allowed here; use {allowed}", rid,
                                             headers={"Allow": allowed})
            try:
                user_id = self.identity.user_id(request)
            except InvalidIdentity as exc:
                return errors.error_response(401, "unauthenticated", str(exc), rid)
            if user_id is None:
                return errors.error_response(401, "unauthenticated", "sign in first: this endpoint needs a session",
                                             rid)
            try:
                message = await self.build_request(request, binding)
            except _TooLarge:
                return errors.error_response(413, "payload_too_large",
                                             f"the request body exceeds {MAX_BODY_BYTES} bytes", rid)
            except InvalidInput as exc:
                return errors.error_response(400, "invalid_argument", exc.message, rid)
            metadata = [(context.REQUEST_ID_HEADER, rid), *self.identity.upstream_metadata(user_id)]
            try:
                reply = await self._callable(binding)(message, metadata=metadata,
                                                      timeout=self.settings.rpc_timeout_seconds)
            except grpc.aio.AioRpcError as exc:
                return errors.from_rpc_error(exc, rid)
            return JSONResponse(envelope(reply, binding, rid))

        return handle

    async def healthz(self, request: Request) -> Response:
        upstreams = await self.upstreams.health()
        healthy = all(status == "serving" for status in upstreams.values())
        body = {"data": {"status": "serving" if healthy else "degraded", "upstreams": upstreams},
                "meta": {"request_id": _request_id(request)}}
        return JSONResponse(body, status_code=200 if healthy else 503)


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
    return errors.error_response(404, "not_found", f"no route for {request.url.path}", _request_id(request),
                                 headers={"x-request-id": _request_id(request)})


async def _internal(request: Request, exc: Exception) -> Response:
    log.error("unhandled gateway error", exc_info=exc)
    rid = _request_id(request)
    return errors.error_response(500, "internal", f"internal error; quote request id {rid}", rid,
                                 headers={"x-request-id": rid})


def build_app(settings: Settings, upstreams: Upstreams | None = None) -> Starlette:
    upstreams = upstreams or Upstreams(settings)
    gateway = Gateway(settings, upstreams)
    routes = [Route("/healthz", gateway.healthz, methods=["GET"])]
    routes += [Route(path, gateway.endpoint(methods), methods=ALL_METHODS)
               for path, methods in by_path(bindings()).items()]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await upstreams.close()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: _not_found, 405: _not_found, Exception: _internal})
    app.add_middleware(RequestIdMiddleware)
    app.state.gateway = gateway
    return app
