"""One error vocabulary for the whole system (pure: no grpc here).

Domain code raises ``DomainError`` with a stable reason from
``mbt.common.v1.ErrorReason`` (without its prefix). The server interceptor maps it to
a gRPC status with a ``google.rpc.ErrorInfo``; the gateway maps that to HTTP and the
REST error envelope.
"""

from __future__ import annotations

from collections.abc import Mapping

ERROR_DOMAIN = "mbt.dev"

# Reason -> gRPC status code name (AIP-193). The gateway derives HTTP from the code.
REASON_STATUS: Mapping[str, str] = {
    "INVALID_ARGUMENT": "INVALID_ARGUMENT",
    "PAYLOAD_TOO_LARGE": "INVALID_ARGUMENT",
    "NOT_FOUND": "NOT_FOUND",
    "INSUFFICIENT_BUYING_POWER": "FAILED_PRECONDITION",
    "ORDER_NOT_CANCELABLE": "FAILED_PRECONDITION",
    "ORDER_NOT_REPLACEABLE": "FAILED_PRECONDITION",
    "MARKET_CLOSED": "FAILED_PRECONDITION",
    "STALE_QUOTE": "FAILED_PRECONDITION",
    "UNUSABLE_QUOTE": "FAILED_PRECONDITION",
    "TRADING_DISABLED": "UNAVAILABLE",
    "NEW_ORDERS_DISABLED": "UNAVAILABLE",
    "UNAUTHENTICATED": "UNAUTHENTICATED",
    "PERMISSION_DENIED": "PERMISSION_DENIED",
    "RATE_LIMITED": "RESOURCE_EXHAUSTED",
    "UNIMPLEMENTED": "UNIMPLEMENTED",
    "UNAVAILABLE": "UNAVAILABLE",
    "INTERNAL": "INTERNAL",
    "CONFLICT": "ABORTED",
    "METHOD_NOT_ALLOWED": "UNIMPLEMENTED",
    "FAILED_PRECONDITION": "FAILED_PRECONDITION",
    "IDEMPOTENCY_KEY_REUSED": "ALREADY_EXISTS",
    "SYMBOL_NOT_TRADABLE": "FAILED_PRECONDITION",
    "LEDGER_INVARIANT": "FAILED_PRECONDITION",
    "CONTRACT_EXPIRED": "FAILED_PRECONDITION",
    "LIMIT_PRICE_SIGN": "INVALID_ARGUMENT",
    "UNCOVERED_OPTION_NOT_ALLOWED": "FAILED_PRECONDITION",
    "ACCOUNT_ERASURE_PENDING": "FAILED_PRECONDITION",
}


class DomainError(Exception):
    """A refusal with a stable reason, safe to show to the caller.

    ``headers`` are what the caller should also see (``retry-after``, rate-limit figures):
    gRPC trailing metadata, and HTTP response headers at the gateway.
    """

    def __init__(self, reason: str, message: str, *, headers: Mapping[str, str] | None = None, **metadata: str) -> None:
        if reason not in REASON_STATUS:
            raise ValueError(f"unknown error reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.headers = dict(headers or {})
        self.metadata = {k: str(v) for k, v in metadata.items()}

    @property
    def status_name(self) -> str:
        return REASON_STATUS[self.reason]

    def __repr__(self) -> str:
        return f"DomainError({self.reason}, {self.message!r})"


def invalid_argument(message: str, field: str | None = None) -> DomainError:
    if field:
        return DomainError("INVALID_ARGUMENT", message, field=field)
    return DomainError("INVALID_ARGUMENT", message)


def not_found(what: str, ident: str) -> DomainError:
    return DomainError("NOT_FOUND", f"{what} {ident!r} not found")
