"""gRPC status -> HTTP status and the REST error envelope.

``{"error": {"code": "insufficient_buying_power", "message": "...", "request_id": "..."}}``;
``code`` is the ``google.rpc.ErrorInfo`` reason in lower case, or the gRPC status name
when a status carries none. The status mapping is grpc-gateway's.
"""

from __future__ import annotations

import grpc
from starlette.responses import JSONResponse

from services.common.remote import error_info

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


def error_response(http_status: int, code: str, message: str, request_id: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "request_id": request_id}},
                        status_code=http_status, headers=headers)


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
    return error_response(http_status, reason.lower(), message, request_id)
