"""Client channels for service-to-service and gateway-to-service calls.

Every outgoing call carries the current request id and the caller's credentials.
Targets may be ``host:port`` or ``dns:///name:port``; the round-robin policy spreads
calls over every address a headless Kubernetes service resolves to. Keepalive and retries
are ``grpc_policy``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grpc

from services.common.rpc import context
from services.common.config import GRPC_KEEPALIVE_SECONDS
from services.common.rpc.policy import channel_options

MetadataSource = Callable[[], Sequence[tuple[str, str]]]


class _OutgoingMetadata:
    def __init__(self, credentials: MetadataSource) -> None:
        self.credentials = credentials

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        present = {key for key, _ in metadata}
        for key, value in self.credentials():
            if key not in present:
                metadata.add(key, value)
        rid = context.request_id()
        if rid and context.REQUEST_ID_HEADER not in present:
            metadata.add(context.REQUEST_ID_HEADER, rid)
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials,
                                          details.wait_for_ready)


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


def open_channel(target: str, credentials: MetadataSource = lambda: (), *,
                 keepalive_seconds: float = GRPC_KEEPALIVE_SECONDS) -> grpc.aio.Channel:
    interceptors = [kind(credentials) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]
    return grpc.aio.insecure_channel(target, options=channel_options(keepalive_seconds), interceptors=interceptors)
