"""How every MBT gRPC server and channel talks, decided here once: keepalive, message
limits, and retries of idempotent calls.

Keepalive (gRPC core's keepalive guide, doc/keepalive.md): every channel pings its
connections every ``MBT_GRPC_KEEPALIVE_SECONDS``, also while no call is in flight and
however long no data moves (long-lived streams such as ``WatchClock`` stay quiet for
minutes), and drops a connection whose ping goes unanswered, so a dead peer is found
before a call needs it. Every server permits exactly that: pings without calls, as often
as half the interval (timer jitter and a peer configured a little faster are never taken
for abuse). A server that permitted less would answer GOAWAY ``too_many_pings`` and fail
the calls in flight.

Retries (gRFC A6, a service config): a call that ends ``UNAVAILABLE`` is tried again with
backoff inside its deadline, but only when repeating it cannot change the outcome: the
read-only methods (``access.read_only_methods``) and those the contracts mark
``option idempotency_level = IDEMPOTENT`` (keyed holds, releases, fills, event deliveries,
cancels). A submit or replace is never repeated by the channel; its caller retries with
its idempotency key.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from google.protobuf import descriptor_pb2

from services.common.rpc import protoregistry
from services.common.security import access

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
# How long a ping may go unanswered before the connection is dropped.
KEEPALIVE_TIMEOUT_MS = 10_000
RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
# No retry storm: each failed call costs a channel a token (of 10), each success gives back
# 0.1, and it retries only while it holds more than 5.
RETRY_THROTTLING = {"maxTokens": 10, "tokenRatio": 0.1}
_IDEMPOTENT = (descriptor_pb2.MethodOptions.IDEMPOTENT, descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def server_options(keepalive_seconds: float) -> list[tuple[str, Any]]:
    """Options of every gRPC server: accept the pings ``channel_options`` sends."""
    return [
        ("grpc.so_reuseport", 0),  # a second process on the same port must fail, not share it
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(keepalive_seconds / 2)),
    ]


def channel_options(keepalive_seconds: float) -> list[tuple[str, Any]]:
    """Options of every channel to an MBT service (services, the gateway, the CLI)."""
    return [
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", _ms(keepalive_seconds)),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", service_config()),
    ]


@functools.cache
def retryable_methods() -> frozenset[str]:
    """``/package.Service/Method`` of every call a channel may repeat on ``UNAVAILABLE``."""
    marked = {
        f"/{service.full_name}/{method.name}"
        for service in protoregistry.services()
        for method in service.methods
        if method.GetOptions().idempotency_level in _IDEMPOTENT
    }
    return frozenset(marked | access.read_only_methods())


@functools.cache
def service_config() -> str:
    names = [{"service": path.split("/")[1], "method": path.split("/")[2]} for path in sorted(retryable_methods())]
    return json.dumps(
        {"methodConfig": [{"name": names, "retryPolicy": RETRY_POLICY}], "retryThrottling": RETRY_THROTTLING}
    )
