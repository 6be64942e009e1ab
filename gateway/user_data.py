"""The gateway's part of GDPR export and erasure: its own tables (``gateway.store.USER_TABLES``:
passkeys). The gateway serves no gRPC, so the privacy jobs run this in process against
``MBT_GATEWAY_DATABASE_URL`` (blocking: each call runs its own event loop in the worker's
thread). Sessions live in shared state and expire on their own; once the user is erased
every call they make is refused (accounts never recreates an erased user)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway.store import COMPONENT, USER_TABLES
from services.common.config import Settings
from services.common.persistence.db import Database

T = TypeVar("T")

__all__ = ["COMPONENT", "erase_user_data", "export_user_data"]


def _with_database(settings: Settings, use: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        db = Database(settings.gateway_database_url, pool_size=1)
        try:
            return await use(db)
        finally:
            await db.aclose()

    return asyncio.run(run())


def export_user_data(settings: Settings, user_id: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(table, the user's rows as JSON objects) for each of the gateway's tables."""
    return _with_database(settings, lambda db: USER_TABLES.export(db, user_id))


def erase_user_data(settings: Settings, user_id: str) -> dict[str, int]:
    """Hard-delete the user's rows; rows deleted per table (0 everywhere the second time)."""
    return _with_database(settings, lambda db: USER_TABLES.erase(db, user_id))
