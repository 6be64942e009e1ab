"""Opaque cursor page tokens (base64url of ``mbt.common.v1.PageCursor``).

A token is bound to the filters it was issued for; reusing it with other filters, or
sending anything that is not a token we issued, is an ``invalid_argument``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from google.protobuf.message import DecodeError

from mbt.common.v1 import pagination_pb2
from services.common.errors import invalid_argument
from services.common.wire.conv import from_timestamp, to_timestamp

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int) -> int:
    if requested < 0:
        raise invalid_argument("page_size must not be negative", "page_size")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def filter_digest(*filters: object) -> str:
    return hashlib.sha256(repr(filters).encode()).hexdigest()[:16]


def encode_page_token(after_time: datetime, after_id: str, digest: str) -> str:
    cursor = pagination_pb2.PageCursor(after_time=to_timestamp(after_time), after_id=after_id, filter_digest=digest)
    return base64.urlsafe_b64encode(cursor.SerializeToString()).decode().rstrip("=")


def decode_page_token(token: str, digest: str) -> tuple[datetime, str] | None:
    """The (time, id) to continue after, or None for the first page."""
    if not token:
        return None
    bad = invalid_argument("page_token is not valid for this list", "page_token")
    if len(token) > 512:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = pagination_pb2.PageCursor.FromString(raw)
    except (binascii.Error, ValueError, DecodeError):
        raise bad from None
    after_time = from_timestamp(cursor.after_time)
    if cursor.filter_digest != digest or not cursor.after_id or after_time is None:
        raise bad
    return after_time, cursor.after_id


T = TypeVar("T")


async def page(
    size: int,
    token: str,
    filters: tuple,
    fetch: Callable[[tuple[datetime, str] | None, int], Awaitable[list[T]]],
    cursor: Callable[[T], tuple[datetime, str]],
) -> tuple[list[T], str]:
    """One page of a list ordered by (time, id): ``fetch(after, limit)`` loads up to ``limit``
    items after the cursor (None: from the start); ``cursor(item)`` is an item's (time, id).
    Returns the page and the token of the next one ('' on the last page). The token is bound
    to ``filters`` (a tuple of the list's filter values)."""
    digest = filter_digest(*filters)
    after = decode_page_token(token, digest)
    limit = page_size(size)
    items = await fetch(after, limit + 1)
    if len(items) <= limit:
        return items, ""
    return items[:limit], encode_page_token(*cursor(items[limit - 1]), digest)
