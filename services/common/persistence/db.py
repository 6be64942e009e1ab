"""Database setup: one engine per service URL, async transactions and read snapshots
(SQLAlchemy's asyncio extension: psycopg 3 on PostgreSQL, aiosqlite on SQLite).

SQLite (the embedded default) runs in WAL mode; write transactions begin IMMEDIATE so
concurrent writers queue instead of failing on lock upgrades. Within a process they queue on
an asyncio lock, first come first served: SQLite's busy handler alone polls with sleeps of up
to 100 ms, which made 50 concurrent one-row transactions take 1.5 s instead of 0.1 s. Writers
in other processes (a job worker) still wait on the busy timeout.
PostgreSQL uses a connection pool; rows that serialise money movements are locked with
SELECT … FOR UPDATE by the stores. A transaction keeps its own connection while it awaits,
so one waiting on a lock never starves the one holding it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=60000",
    "PRAGMA foreign_keys=ON",
)


def changed(result: Result[Any]) -> CursorResult[Any]:
    """The result of an INSERT, UPDATE or DELETE (``rowcount``, ``inserted_primary_key``):
    SQLAlchemy returns a ``CursorResult`` for them but types ``execute`` as ``Result``."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"not the result of a data-changing statement: {type(result).__name__}")
    return result


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// URLs and pick the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def async_url(url: str) -> str:
    """The asyncio driver's URL: aiosqlite for SQLite; psycopg 3 serves both on PostgreSQL."""
    url = normalize_url(url)
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def _sqlite_events(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_file(url: str) -> None:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 60}, pool_size=16, max_overflow=16)
    _sqlite_events(engine, immediate=immediate)
    return engine


def _sqlite_async_engine(url: str, *, immediate: bool) -> AsyncEngine:
    engine = create_async_engine(async_url(url), connect_args={"timeout": 60}, pool_size=16, max_overflow=16)
    _sqlite_events(engine.sync_engine, immediate=immediate)
    return engine


class Database:
    """A service's database: ``writing()`` transactions and ``reading()`` snapshots, both async."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            _sqlite_file(self.url)
            self.engine = _sqlite_async_engine(self.url, immediate=True)
            self._read_engine = _sqlite_async_engine(self.url, immediate=False)
        else:
            self.engine = create_async_engine(self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            self._read_engine = self.engine
        self._write_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self._read_engine, expire_on_commit=False)
        # SQLite's writers of this process, one at a time per event loop (a lock is bound to one).
        self._sqlite_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block ends, rolled back on error. On SQLite
        it first waits for this process's write transaction in progress, if any."""
        if not self.is_sqlite:
            async with self._write_sessions() as session, session.begin():
                yield session
            return
        loop = asyncio.get_running_loop()
        writer = self._sqlite_writers.get(loop)
        if writer is None:
            writer = self._sqlite_writers[loop] = asyncio.Lock()
        async with writer, self._write_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A read transaction; what it loaded stays readable after it ends."""
        async with self._read_sessions() as session, session.begin():
            yield session

    async def aclose(self) -> None:
        await self.engine.dispose()
        if self._read_engine is not self.engine:
            await self._read_engine.dispose()


class BlockingDatabase:
    """The same database for synchronous callers — Celery's worker threads and the CLI —
    which have no event loop to await on: ``transaction()`` and ``snapshot()`` block."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        if self.url.startswith("sqlite"):
            _sqlite_file(self.url)
            self.engine = _sqlite_engine(self.url, immediate=True)
            self._read_engine = _sqlite_engine(self.url, immediate=False)
        else:
            self.engine = create_engine(self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            self._read_engine = self.engine
        self._write_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back on error."""
        with self._write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read transaction; what it loaded stays readable after it ends."""
        with self._read_sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        if self._read_engine is not self.engine:
            self._read_engine.dispose()
