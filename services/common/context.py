"""Per-request context carried through every hop: the request id and the caller's identity.

Set by the server interceptor from gRPC metadata, read by logs, the outbox (events
carry the request id) and the client interceptor (which passes it on).
"""

from __future__ import annotations

import contextvars
import secrets
from dataclasses import dataclass, field

from services.common.errors import DomainError

REQUEST_ID_HEADER = "x-request-id"


@dataclass(frozen=True)
class Identity:
    """Who is calling. ``kind`` is ``user``, ``service``, ``ops`` or ``anonymous``."""

    kind: str
    subject: str = ""
    tier: str = ""
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def user_id(self) -> str:
        return self.subject if self.kind == "user" else ""

    @property
    def is_service(self) -> bool:
        return self.kind == "service"


ANONYMOUS = Identity(kind="anonymous")

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("mbt_request_id", default="")
_identity: contextvars.ContextVar[Identity] = contextvars.ContextVar("mbt_identity", default=ANONYMOUS)


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def request_id() -> str:
    return _request_id.get()


def set_request_id(value: str) -> contextvars.Token:
    return _request_id.set(value)


def identity() -> Identity:
    return _identity.get()


def set_identity(value: Identity) -> contextvars.Token:
    return _identity.set(value)


def require_user_id() -> str:
    """The signed-in user whose data a user-facing RPC works on."""
    caller = identity()
    if caller.kind == "user" and caller.subject:
        return caller.subject
    if caller.kind == "anonymous":
        raise DomainError("UNAUTHENTICATED", "authentication required")
    raise DomainError("PERMISSION_DENIED", "this call acts for a signed-in user")
