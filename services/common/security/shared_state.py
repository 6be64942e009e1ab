"""Short-lived state that every process must see alike: session rows and passkey challenges.

Records are small JSON objects under ``<namespace>:<key>`` that expire on their own. With
``MBT_REDIS_URL`` they live in Redis (keys prefixed with ``MBT_REDIS_KEY_PREFIX``), shared by
every gateway replica and every service. Without it (the embedded default) they live in one
SQLite file under ``MBT_DATA_DIR`` that the gateway and the services of ``make run`` all
open: a sign-out there is seen at once by the services too. This file is the embedded
stand-in for Redis, not a service's database: it holds nothing that outlives a session.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import redis.asyncio as redis

from services.common.config import Settings
from services.common.security.tokens import WallTime

SQLITE_FILE = "shared-state.db"
T = TypeVar("T")


class SharedState(Protocol):
    async def put(self, namespace: str, key: str, value: dict, ttl_seconds: float) -> None: ...

    async def get(self, namespace: str, key: str) -> dict | None: ...

    async def take(self, namespace: str, key: str) -> dict | None:
        """Read and delete in one step: of two concurrent takers, only one gets the record."""

    async def delete(self, namespace: str, key: str) -> None: ...

    async def close(self) -> None: ...


class SqliteState:
    """Records in one SQLite file (WAL: readers never wait for the writer), expired rows
    swept on every write. Each call opens its own short connection on a worker thread, so
    several processes and threads share the file safely."""

    def __init__(self, path: Path, now: WallTime = time.time) -> None:
        self.path = path
        self.now = now
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS shared_state (namespace TEXT NOT NULL, key TEXT NOT NULL, "
                "value TEXT NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (namespace, key))"
            )

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA busy_timeout=30000")
        return connection

    def _run(self, statements: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            result = statements(connection)
            connection.execute("COMMIT")
            return result
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        finally:
            connection.close()

    def _read(self, connection: sqlite3.Connection, namespace: str, key: str) -> dict | None:
        row = connection.execute(
            "SELECT value FROM shared_state WHERE namespace = ? AND key = ? AND expires_at > ?",
            (namespace, key, self.now()),
        ).fetchone()
        return None if row is None else json.loads(row[0])

    async def put(self, namespace: str, key: str, value: dict, ttl_seconds: float) -> None:
        def write(connection):
            now = self.now()
            connection.execute("DELETE FROM shared_state WHERE expires_at <= ?", (now,))
            connection.execute(
                "INSERT OR REPLACE INTO shared_state VALUES (?, ?, ?, ?)",
                (namespace, key, json.dumps(value), now + ttl_seconds),
            )

        await asyncio.to_thread(self._run, write)

    async def get(self, namespace: str, key: str) -> dict | None:
        def read():
            connection = self._connect()
            try:
                return self._read(connection, namespace, key)
            finally:
                connection.close()

        return await asyncio.to_thread(read)

    async def take(self, namespace: str, key: str) -> dict | None:
        def take(connection):
            value = self._read(connection, namespace, key)
            connection.execute("DELETE FROM shared_state WHERE namespace = ? AND key = ?", (namespace, key))
            return value

        return await asyncio.to_thread(self._run, take)

    async def delete(self, namespace: str, key: str) -> None:
        await asyncio.to_thread(
            self._run,
            lambda connection: connection.execute(
                "DELETE FROM shared_state WHERE namespace = ? AND key = ?", (namespace, key)
            ),
        )

    async def close(self) -> None:
        """Nothing is held open between calls."""


class RedisState:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, namespace: str, key: str) -> str:
        return f"{self.prefix}{namespace}:{key}"

    async def put(self, namespace: str, key: str, value: dict, ttl_seconds: float) -> None:
        await self.client.set(self._key(namespace, key), json.dumps(value), px=max(1, int(ttl_seconds * 1000)))

    async def get(self, namespace: str, key: str) -> dict | None:
        raw = await self.client.get(self._key(namespace, key))
        return None if raw is None else json.loads(raw)

    async def take(self, namespace: str, key: str) -> dict | None:
        raw = await self.client.getdel(self._key(namespace, key))
        return None if raw is None else json.loads(raw)

    async def delete(self, namespace: str, key: str) -> None:
        await self.client.delete(self._key(namespace, key))

    async def close(self) -> None:
        await self.client.aclose()


def redis_client(settings: Settings) -> redis.Redis | None:
    """One client per process (it pools connections); None in the embedded default."""
    if not settings.redis_url:
        return None
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.rpc_timeout_seconds,
        socket_connect_timeout=settings.rpc_timeout_seconds,
    )


def build_shared_state(settings: Settings, client: redis.Redis | None, now: WallTime = time.time) -> SharedState:
    if client is not None:
        return RedisState(client, settings.redis_key_prefix)
    return SqliteState(settings.data_dir / SQLITE_FILE, now)
