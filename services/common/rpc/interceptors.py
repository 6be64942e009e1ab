"""The server interceptor every MBT service runs: request id, identity (a verified bearer
token), access policy, the audit of ops reads, per-user rate limits for native clients,
the request's shape (``conv.check_shape``: the same decimal and enum rules as REST; a
message that does not decode, such as a string that is not UTF-8, is ``invalid_argument``
too), error mapping (``DomainError`` -> gRPC status + ``google.rpc.ErrorInfo``) and one
structured access-log line per RPC."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.common.errors import ERROR_DOMAIN, DomainError, invalid_argument
from services.common.rpc import context
from services.common.security import access
from services.common.security.auth import Authenticator
from services.common.security.ops_audit import OpsReadAudit
from services.common.security.ratelimit import RateDecision, RateLimited, RateLimiter, limit_for, user_key
from services.common.wire.conv import check_shape

log = logging.getLogger("mbt.rpc")


def status_for(error: DomainError) -> grpc.Status:
    code = grpc.StatusCode[error.status_name]
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=error.message, details=[detail]))


async def _abort(ctx: grpc.aio.ServicerContext, error: DomainError) -> None:
    status = status_for(error)
    await ctx.abort(
        status.code,
        status.details,
        (
            *tuple(status.trailing_metadata),
            (context.REQUEST_ID_HEADER, context.request_id()),
            *tuple(error.headers.items()),
        ),
    )


def _send_rate_figures(ctx: grpc.aio.ServicerContext, decision: RateDecision) -> None:
    """The budget left, as trailing metadata of the successful call (what X-RateLimit-* are in REST)."""
    ctx.set_trailing_metadata(tuple(decision.headers().items()))


class Undecodable:
    """What a request that does not decode becomes, so it is refused as bad input (grpc
    itself would answer UNKNOWN and log a traceback)."""


def _tolerant(deserializer):
    def deserialize(data: bytes):
        try:
            return deserializer(data)
        except DecodeError:
            return Undecodable()

    return deserialize


def _unimplemented(method: str) -> DomainError:
    return DomainError("UNIMPLEMENTED", f"{method.lstrip('/')} is part of the contract but not implemented yet")


class ServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: Authenticator, rate_limiter: RateLimiter, ops_audit: OpsReadAudit) -> None:
        self.authenticator = authenticator
        self.rate_limiter = rate_limiter
        self.ops_audit = ops_audit

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or access.is_open(details.method):
            return handler
        method = details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                _tolerant(handler.request_deserializer),
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(method, handler.unary_stream),
                _tolerant(handler.request_deserializer),
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(method, handler.stream_unary), handler.request_deserializer, handler.response_serializer
            )
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(method, handler.stream_stream), handler.request_deserializer, handler.response_serializer
        )

    async def _enter(self, method: str, ctx, request) -> None:
        metadata = {k: v for k, v in ctx.invocation_metadata() or () if isinstance(v, str)}
        context.set_request_id(context.adopt_request_id(metadata.get(context.REQUEST_ID_HEADER)))
        caller = await self.authenticator.authenticate(metadata)
        context.set_identity(caller)
        access.check(method, caller)
        if caller.kind == "ops":
            await self.ops_audit.record(caller, method, caller.acting_for or getattr(request, "user_id", ""))
        # A user's call relayed by the gateway was counted there; a native client's is counted here.
        if caller.kind == "user" and not caller.forwarded_by:
            decision = await self.rate_limiter.hit(user_key(caller.subject), limit_for(caller.tier))
            if not decision.allowed:
                raise RateLimited(decision)
            _send_rate_figures(ctx, decision)
        # Checked last, so malformed calls still count against the caller's budget.
        if isinstance(request, Undecodable):
            raise invalid_argument("the request does not decode as its message (every string must be UTF-8)")
        if isinstance(request, Message):
            check_shape(request)

    def _log(self, method: str, code: str, started: float) -> None:
        caller = context.identity()
        log.info(
            "rpc",
            extra={
                "fields": {
                    "method": method,
                    "code": code,
                    "caller": caller.kind,
                    "subject": caller.subject,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                }
            },
        )

    async def _fail(self, method: str, ctx, exc: BaseException) -> str:
        if isinstance(exc, DomainError):
            await _abort(ctx, exc)
        if isinstance(exc, NotImplementedError):
            await _abort(ctx, _unimplemented(method))
        log.exception("unhandled error in %s", method, exc_info=exc)
        await _abort(ctx, DomainError("INTERNAL", f"internal error; quote request id {context.request_id()}"))
        return "INTERNAL"

    def _unary(self, method, inner):
        async def behaviour(request, ctx):
            started = time.perf_counter()
            code = "OK"
            try:
                await self._enter(method, ctx, request)
                result = inner(request, ctx)
                return await result if inspect.isawaitable(result) else result
            except (asyncio.CancelledError, grpc.aio.AbortError):
                code = "ABORTED_BY_HANDLER"
                raise
            except BaseException as exc:
                code = exc.reason if isinstance(exc, DomainError) else type(exc).__name__
                await self._fail(method, ctx, exc)
            finally:
                self._log(method, code, started)

        return behaviour

    def _streaming(self, method, inner):
        async def behaviour(request, ctx):
            started = time.perf_counter()
            code = "OK"
            try:
                await self._enter(method, ctx, request)
                result = inner(request, ctx)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                elif inspect.isawaitable(result):
                    await result
                else:
                    for item in result:
                        yield item
            except (asyncio.CancelledError, grpc.aio.AbortError, GeneratorExit):
                code = "CLOSED"
                raise
            except BaseException as exc:
                code = exc.reason if isinstance(exc, DomainError) else type(exc).__name__
                await self._fail(method, ctx, exc)
            finally:
                self._log(method, code, started)

        return behaviour
