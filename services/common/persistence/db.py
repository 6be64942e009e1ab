"""Database setup: one engine per service URL, sessions, and the unit of work.

SQLite (the embedded default) runs in WAL mode; write transactions begin IMMEDIATE so
concurrent writers queue on the busy timeout instead of failing on lock upgrades.
PostgreSQL (psycopg 3) uses a connection pool; rows that serialise money movements are
locked with SELECT … FOR UPDATE by the stores.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// URLs and pick the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, pool_size=16,
                           max_overflow=16)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """A service's database: write transactions, read snapshots, and a thread pool so
    async servicers never block the event loop on I/O."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _sqlite_engine(self.url, immediate=True)
            self._read_engine = _sqlite_engine(self.url, immediate=False)
        else:
            self.engine = create_engine(self.url, pool_size=pool_size, max_overflow=pool_size,
                                        pool_pre_ping=True)
            self._read_engine = self.engine
        self._write_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(4, pool_size), thread_name_prefix="db")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back on error."""
        with self._write_sessions() as session:
            with session.begin():
                yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read transaction; what it loaded stays readable after it ends."""
        with self._read_sessions() as session:
            with session.begin():
                yield session

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run blocking database work on the pool, keeping the request context."""
        import contextvars

        ctx = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: ctx.run(fn, *args, **kwargs))

    def dispose(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
        self.engine.dispose()
        if self._read_engine is not self.engine:
            self._read_engine.dispose()
