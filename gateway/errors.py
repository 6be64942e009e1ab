"""gRPC status -> HTTP status and the REST error envelope.

``{"error": {"code": "insufficient_buying_power", "message": "...", "request_id": "..."}}``;
``code`` is the ``google.rpc.ErrorInfo`` reason in lower case, or the gRPC status name
when a status carries none. The status mapping is grpc-gateway's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from gateway.bodies import MAX_BODY_BYTES, BodyTooLarge
from gateway.transcoding import InvalidInput
from services.common.errors import DomainError
from services.common.rpc import context
from services.common.rpc.remote import error_info

# nginx's status for a client that closed the connection before it was answered; the
# request log shows it, the client never sees it.
CLIENT_CLOSED_REQUEST = 499

GRPC_TO_HTTP = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

# Reasons whose HTTP status is more specific than their gRPC code's.
REASON_TO_HTTP = {
    "PAYLOAD_TOO_LARGE": 413,
    "METHOD_NOT_ALLOWED": 405,
}
# Trailing metadata of a failed call that the HTTP caller should see as headers.
FORWARDED_TRAILERS = ("retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


def error_response(
    http_status: int, code: str, message: str, request_id: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "request_id": request_id}},
        status_code=http_status,
        headers=headers,
    )


def empty_response(http_status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=http_status, headers=headers)


def from_domain_error(error: DomainError, request_id: str) -> JSONResponse:
    """A refusal raised in the gateway itself, in the same envelope as one from a service."""
    code = grpc.StatusCode[error.status_name]
    http_status = REASON_TO_HTTP.get(error.reason, GRPC_TO_HTTP.get(code, 500))
    return error_response(http_status, error.reason.lower(), error.message, request_id, headers=error.headers)


def from_rpc_error(error: grpc.aio.AioRpcError, request_id: str) -> JSONResponse:
    info = error_info(error)
    reason = info.reason if info else error.code().name
    http_status = REASON_TO_HTTP.get(reason, GRPC_TO_HTTP.get(error.code(), 500))
    if info is None and error.code() == grpc.StatusCode.UNAVAILABLE:
        message = "a service this request needs is unavailable; retry shortly"
    elif info is None and http_status >= 500:
        message = "the request could not be completed"
    else:
        message = error.details() or reason.lower()
    headers = {
        key: value
        for key, value in error.trailing_metadata() or ()
        if key in FORWARDED_TRAILERS and isinstance(value, str)
    }
    return error_response(http_status, reason.lower(), message, request_id, headers=headers)


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", "") or context.request_id()


Handler = Callable[[Request], Awaitable[Response]]


def enveloped(handler: Handler) -> Handler:
    """Refusals raised by ``handler`` (bad input, too large a body, any ``DomainError``)
    become the error envelope. A client that hangs up before its body is read is no error
    of ours: it is logged as a request that ended with 499, without a traceback."""

    async def handle(request: Request) -> Response:
        try:
            return await handler(request)
        except ClientDisconnect:
            return empty_response(CLIENT_CLOSED_REQUEST)
        except BodyTooLarge:
            return error_response(
                413, "payload_too_large", f"the request body exceeds {MAX_BODY_BYTES} bytes", request_id_of(request)
            )
        except InvalidInput as exc:
            return error_response(400, "invalid_argument", exc.message, request_id_of(request))
        except DomainError as exc:
            return from_domain_error(exc, request_id_of(request))

    return handle


# Routes accept every method so a wrong one gets the enveloped 405, not Starlette's text.
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def by_method(handlers: dict[str, Handler]) -> Handler:
    """One path's handlers by HTTP method; HEAD is GET's (the server sends no body); any other
    method is an enveloped 405."""
    if "GET" in handlers:
        handlers = {**handlers, "HEAD": handlers["GET"]}
    allowed = ", ".join(sorted(handlers))

    async def handle(request: Request) -> Response:
        handler = handlers.get(request.method)
        if handler is None:
            return error_response(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here; use {allowed}",
                request_id_of(request),
                headers={"Allow": allowed},
            )
        return await handler(request)

    return handle
