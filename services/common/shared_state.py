"""Short-lived state that every replica must see: session rows and passkey challenges.

Records are small JSON objects under ``<namespace>:<key>`` that expire on their own.
With ``MBT_REDIS_URL`` they live in Redis (keys prefixed with ``MBT_REDIS_KEY_PREFIX``),
so any gateway replica, and any service checking a session, sees the same rows; without
it (the embedded default) they live in this process's memory, which is enough for the one
gateway process ``make run`` starts.
"""

from __future__ import annotations

import json
import time
from typing import Protocol

import redis.asyncio as redis

from services.common.config import Settings
from services.common.tokens import WallTime


class SharedState(Protocol):
    async def put(self, namespace: str, key: str, value: dict, ttl_seconds: float) -> None: ...

    async def get(self, namespace: str, key: str) -> dict | None: ...

    async def take(self, namespace: str, key: str) -> dict | None:
        """Read and delete in one step: of two concurrent takers, only one gets the record."""

    async def delete(self, namespace: str, key: str) -> None: ...

    async def close(self) -> None: ...


class InProcessState:
    """A dict with expiry; bounded so a flood of anonymous ceremonies cannot exhaust memory."""

    def __init__(self, now: WallTime = time.time, max_records: int = 100_000) -> None:
        self.now = now
        self.max_records = max_records
        self._records: dict[tuple[str, str], tuple[float, dict]] = {}

    def _prune(self) -> None:
        now = self.now()
        for name in [name for name, (expires, _) in self._records.items() if expires <= now]:
            del self._records[name]
        while len(self._records) >= self.max_records:
            del self._records[next(iter(self._records))]  # the oldest insertion goes first

    async def put(self, namespace: str, key: str, value: dict, ttl_seconds: float) -> None:
        if len(self._records) >= self.max_records:
            self._prune()
        self._records.pop((namespace, key), None)
        self._records[(namespace, key)] = (self.now() + ttl_seconds, json.loads(json.dumps(value)))

    async def get(self, namespace: str, key: str) -> dict | None:
        record = self._records.get((namespace, key))
        if record is None:
            return None
        if record[0] <= self.now():
            del self._records[(namespace, key)]
            return None
        return record[1]

    async def take(self, namespace: str, key: str) -> dict | None:
        value = await self.get(namespace, key)
        self._records.pop((namespace, key), None)
        return value

    async def delete(self, namespace: str, key: str) -> None:
        self._records.pop((namespace, key), None)

    async def close(self) -> None:
        self._records.clear()


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
    return redis.Redis.from_url(settings.redis_url, socket_timeout=settings.rpc_timeout_seconds,
                                socket_connect_timeout=settings.rpc_timeout_seconds)


def build_shared_state(settings: Settings, client: redis.Redis | None, now: WallTime = time.time) -> SharedState:
    return RedisState(client, settings.redis_key_prefix) if client is not None else InProcessState(now)
