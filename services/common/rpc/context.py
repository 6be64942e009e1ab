"""Per-request context carried through every hop: the request id and the caller's identity.

Set by the server interceptor from gRPC metadata, read by logs, the outbox (events
carry the request id) and the client interceptor (which passes it on).
"""

from __future__ import annotations

import contextvars
import re
import secrets
from dataclasses import dataclass, field

from services.common.errors import DomainError

REQUEST_ID_HEADER = "x-request-id"
# What a caller may choose as its request id; anything else is replaced, on every hop.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{8,64}")


@dataclass(frozen=True)
class Identity:
    """Who is calling, as proven by a verified token (``services.common.security.auth``).

    ``kind`` is ``user``, ``service``, ``ops`` or ``anonymous``. ``subject`` is the user id,
    the service name or the operator. ``tier`` (``free``, ``pro``, ``pro_plus``) comes from a
    user token. An ops caller reading a user's data names that user in ``acting_for``.
    ``forwarded_by`` is the component that relayed a user's call (the gateway), which has
    already rate-limited it.
    """

    kind: str
    subject: str = ""
    tier: str = ""
    scopes: frozenset[str] = field(default_factory=frozenset)
    session_id: str = ""
    # Unix seconds until which the session counts as recently re-authenticated (step-up).
    elevated_until: int = 0
    acting_for: str = ""
    forwarded_by: str = ""
    # A user's own token, kept to call another service on the user's behalf
    # (``auth.on_behalf_of``); never shown.
    token: str = field(default="", repr=False, compare=False)

    @property
    def user_id(self) -> str:
        """Whose data this call reads or changes: the user, or the user an ops caller reads."""
        if self.kind == "user":
            return self.subject
        return self.acting_for if self.kind == "ops" else ""

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    def is_elevated(self, now: float) -> bool:
        """True while a fresh passkey assertion (sign-in or step-up) is recent enough for a
        sensitive action; ``now`` is wall-clock unix seconds."""
        return self.kind == "user" and now < self.elevated_until


ANONYMOUS = Identity(kind="anonymous")

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("mbt_request_id", default="")
_identity: contextvars.ContextVar[Identity] = contextvars.ContextVar("mbt_identity", default=ANONYMOUS)


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def adopt_request_id(incoming: str | None) -> str:
    """The caller's request id when it is well formed (8-64 letters, digits, '.', '_' or '-'),
    else a fresh one: an id ends up in logs, events and audit rows, so it is never stored as sent."""
    return incoming if incoming and REQUEST_ID_PATTERN.fullmatch(incoming) else new_request_id()


def request_id() -> str:
    return _request_id.get()


def set_request_id(value: str) -> contextvars.Token:
    return _request_id.set(value)


def identity() -> Identity:
    return _identity.get()


def set_identity(value: Identity) -> contextvars.Token:
    return _identity.set(value)


def require_user_id() -> str:
    """The user whose data a user-facing RPC works on: the signed-in user, or the user an ops
    token reads (read-only RPCs only: the access policy refuses ops anything else)."""
    caller = identity()
    if caller.user_id:
        return caller.user_id
    if caller.kind == "anonymous":
        raise DomainError("UNAUTHENTICATED", "authentication required")
    raise DomainError("PERMISSION_DENIED", "this call acts for a signed-in user")
