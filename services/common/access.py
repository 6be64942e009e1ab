"""Who may call which RPC, derived from the contracts themselves.

An RPC with a ``google.api.http`` annotation is user-facing: users (their own data),
and services acting for the platform. An RPC without one is internal: service identity
only. Health and reflection are open (ops tooling and probes).
"""

from __future__ import annotations

import functools

from google.api import annotations_pb2

from services.common import protoregistry
from services.common.context import Identity
from services.common.errors import DomainError

OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


@functools.cache
def user_facing_methods() -> frozenset[str]:
    names = set()
    for service in protoregistry.services():
        for method in service.methods:
            if method.GetOptions().HasExtension(annotations_pb2.http):
                names.add(f"/{service.full_name}/{method.name}")
    return frozenset(names)


def is_open(method: str) -> bool:
    return method.startswith(OPEN_PREFIXES)


def check(method: str, caller: Identity) -> None:
    """Raise unless ``caller`` may call ``method``."""
    if caller.kind == "anonymous":
        raise DomainError("UNAUTHENTICATED", "authentication required")
    if caller.is_service:
        return
    if method not in user_facing_methods():
        raise DomainError("PERMISSION_DENIED", f"{method} is internal to the platform")
