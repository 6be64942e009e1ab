"""Client channels for service-to-service and gateway-to-service calls.

Every outgoing call carries the current request id and the caller's credentials.
Targets may be ``host:port`` or ``dns:///name:port``; the round-robin policy spreads
calls over every address a headless Kubernetes service resolves to. Keepalive and retries
are ``grpc_policy``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grpc

from services.common.config import GRPC_KEEPALIVE_SECONDS
from services.common.rpc import context
from services.common.rpc.policy import channel_options

MetadataSource = Callable[[], Sequence[tuple[str, str]]]


def _outgoing(metadata: Sequence[tuple[str, str]], credentials: MetadataSource) -> list[tuple[str, str]]:
    """``metadata`` plus the credentials and the request id, unless the call set them itself."""
    outgoing = list(metadata)
    present = {key for key, _ in outgoing}
    outgoing.extend((key, value) for key, value in credentials() if key not in present)
    rid = context.request_id()
    if rid and context.REQUEST_ID_HEADER not in present:
        outgoing.append((context.REQUEST_ID_HEADER, rid))
    return outgoing


class _OutgoingMetadata:
    def __init__(self, credentials: MetadataSource) -> None:
        self.credentials = credentials

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*_outgoing(tuple(details.metadata or ()), self.credentials))
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# grpc.aio files each interceptor under the first call shape it implements, so each
# shape needs its own instance.
class _UnaryUnary(_OutgoingMetadata, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(self._details(details), request)


class _UnaryStream(_OutgoingMetadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(self._details(details), request)


class _StreamUnary(_OutgoingMetadata, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, details, request_iterator):
        return await continuation(self._details(details), request_iterator)


class _StreamStream(_OutgoingMetadata, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, details, request_iterator):
        return await continuation(self._details(details), request_iterator)


def open_channel(
    target: str, credentials: MetadataSource = lambda: (), *, keepalive_seconds: float = GRPC_KEEPALIVE_SECONDS
) -> grpc.aio.Channel:
    interceptors = [kind(credentials) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]
    return grpc.aio.insecure_channel(target, options=channel_options(keepalive_seconds), interceptors=interceptors)


class _BlockingDetails(grpc.ClientCallDetails):
    def __init__(self, details: grpc.ClientCallDetails, metadata: list[tuple[str, str]]) -> None:
        self.method, self.timeout, self.credentials = details.method, details.timeout, details.credentials
        self.wait_for_ready, self.compression = details.wait_for_ready, details.compression
        self.metadata = metadata


class _BlockingMetadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, credentials: MetadataSource) -> None:
        self.credentials = credentials

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _BlockingDetails(details, _outgoing(tuple(details.metadata or ()), self.credentials))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)


def open_blocking_channel(
    target: str, credentials: MetadataSource = lambda: (), *, keepalive_seconds: float = GRPC_KEEPALIVE_SECONDS
) -> grpc.Channel:
    """A synchronous channel (for threads that are not an event loop: the jobs worker), with
    the same policy, credentials and request id as ``open_channel``."""
    channel = grpc.insecure_channel(target, options=channel_options(keepalive_seconds))
    return grpc.intercept_channel(channel, _BlockingMetadata(credentials))
