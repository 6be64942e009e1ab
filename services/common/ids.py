"""Prefixed, opaque ids (``ord_…``, ``fill_…``, ``act_…``).

Random ids for new entities; deterministic ids (a digest of their cause) where a
retry must produce the same id, such as a fill derived from its order and tick.
"""

from __future__ import annotations

import base64
import hashlib
import secrets


def _encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def new_id(prefix: str) -> str:
    return f"{prefix}_{_encode(secrets.token_bytes(15))}"


def derived_id(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return f"{prefix}_{_encode(digest[:15])}"
