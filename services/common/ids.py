"""Prefixed, opaque ids (``ord_…``, ``fill_…``, ``act_…``).

Random ids for new entities; deterministic ids (a digest of their cause) where a
retry must produce the same id, such as a fill derived from its order and tick.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

from services.common.errors import invalid_argument, not_found

_BODY = re.compile(r"[a-z2-7]{24}")  # 15 random or digest bytes in lower-case base32


def _encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def new_id(prefix: str) -> str:
    return f"{prefix}_{_encode(secrets.token_bytes(15))}"


def derived_id(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return f"{prefix}_{_encode(digest[:15])}"


def is_issuable(prefix: str, raw: str) -> bool:
    """Whether ``raw`` has the shape of an id ``new_id``/``derived_id`` make with ``prefix``.
    Anything else names nothing, so it need not (and, with a NUL, cannot) be looked up."""
    head, _, body = raw.partition("_")
    return head == prefix and _BODY.fullmatch(body) is not None


def requested_id(raw: str, prefix: str, field: str, what: str) -> str:
    """The id a request names: ``invalid_argument`` when it is empty, ``not_found`` when it
    is not the shape of an id MBT issues with ``prefix`` (so it is never looked up)."""
    ident = raw.strip()
    if not ident:
        raise invalid_argument(f"{field} is required", field)
    if not is_issuable(prefix, ident):
        raise not_found(what, ident)
    return ident
