"""Who may call which RPC, derived from the contracts themselves.

* An RPC with a ``google.api.http`` annotation is user-facing; one without is internal.
* Read-only RPCs are the user-facing ones bound to ``GET`` and the internal standard
  methods ``Get*`` / ``List*`` (AIP-131/132: no side effects).
* services: everything.
* users: user-facing RPCs only, reads with the ``read`` scope, the rest with ``trade``.
* ops: read-only RPCs only, never a change; on a user-facing one the ops caller names the
  user it reads (``x-mbt-act-as-user``); an internal one names it in the request and refuses
  the header, so the audit of every read names whose data was read.
* Health and reflection are open (ops tooling and probes).
"""

from __future__ import annotations

import functools

from google.api import annotations_pb2

from services.common.errors import DomainError
from services.common.rpc import protoregistry
from services.common.rpc.context import Identity
from services.common.security.tokens import READ, TRADE

OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
READ_ONLY_INTERNAL_PREFIXES = ("Get", "List")


@functools.cache
def user_facing_methods() -> frozenset[str]:
    names = set()
    for service in protoregistry.services():
        for method in service.methods:
            if method.GetOptions().HasExtension(annotations_pb2.http):
                names.add(f"/{service.full_name}/{method.name}")
    return frozenset(names)


@functools.cache
def read_only_methods() -> frozenset[str]:
    names = set()
    for service in protoregistry.services():
        for method in service.methods:
            options = method.GetOptions()
            if options.HasExtension(annotations_pb2.http):
                read_only = options.Extensions[annotations_pb2.http].WhichOneof("pattern") == "get"
            else:
                read_only = method.name.startswith(READ_ONLY_INTERNAL_PREFIXES)
            if read_only:
                names.add(f"/{service.full_name}/{method.name}")
    return frozenset(names)


def is_open(method: str) -> bool:
    return method.startswith(OPEN_PREFIXES)


def check(method: str, caller: Identity) -> None:
    """Raise unless ``caller`` may call ``method``."""
    if caller.kind == "anonymous":
        raise DomainError("UNAUTHENTICATED", "authentication required: send 'authorization: Bearer <token>'")
    if caller.is_service:
        return
    read_only = method in read_only_methods()
    if caller.kind == "ops":
        if not read_only:
            raise DomainError("PERMISSION_DENIED", f"ops tokens are read-only; {method} changes state")
        user_facing = method in user_facing_methods()
        if user_facing and not caller.acting_for:
            raise DomainError(
                "INVALID_ARGUMENT",
                "an ops token names the user it reads in x-mbt-act-as-user",
                field="x-mbt-act-as-user",
            )
        if not user_facing and caller.acting_for:
            # The request names whose data it reads (user_id); a header naming anyone else would
            # put the read on the wrong person's record.
            raise DomainError(
                "INVALID_ARGUMENT",
                f"{method} is internal: name the user in the request, not in x-mbt-act-as-user",
                field="x-mbt-act-as-user",
            )
        return
    if method not in user_facing_methods():
        raise DomainError("PERMISSION_DENIED", f"{method} is internal to the platform")
    needed = READ if read_only else TRADE
    if needed not in caller.scopes:
        raise DomainError("PERMISSION_DENIED", f"this token's scope does not include {needed!r}")
