"""Errors of calls to other services: read the ErrorInfo a failed call carries, and carry a
dependency's refusal through unchanged (its reason stays the caller's reason)."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from services.common.errors import REASON_STATUS, DomainError

# Reasons that describe the hop itself, not the user's request: the caller sees "unavailable".
_NOT_PASSED_ON = {"INTERNAL", "UNAUTHENTICATED", "PERMISSION_DENIED", "UNIMPLEMENTED"}


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo | None:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    return info
    return None


def upstream_error(error: grpc.aio.AioRpcError, what: str) -> DomainError:
    info = error_info(error)
    if info is not None and info.reason in REASON_STATUS and info.reason not in _NOT_PASSED_ON:
        return DomainError(info.reason, error.details() or info.reason.lower(), **dict(info.metadata))
    return DomainError("UNAVAILABLE", f"{what} is unavailable; retry shortly")


async def call(method, request, *, timeout: float, what: str, metadata: list[tuple[str, str]] | None = None):
    """Call another service; its refusals come back as DomainError. ``metadata`` replaces the
    channel's credentials (``auth.on_behalf_of``)."""
    try:
        return await method(request, timeout=timeout, metadata=metadata or None)
    except grpc.aio.AioRpcError as exc:
        raise upstream_error(exc, what) from None
