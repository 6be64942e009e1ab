"""What a refused gRPC call said: the ``google.rpc.ErrorInfo`` in its status details."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2


def error_info(exc: grpc.aio.AioRpcError) -> tuple[str, dict[str, str]]:
    """(reason, metadata) of the refusal; ("", {}) when it carries no ErrorInfo."""
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason, dict(info.metadata)
    return "", {}
