"""Throwaway databases for tests: SQLite files under a temp dir by default, or fresh
PostgreSQL databases when MBT_TEST_DATABASE_URL points at a server (CI sets it)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.common.persistence.db import normalize_url

POSTGRES_URL = os.environ.get("MBT_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("MBT_TEST_REDIS_URL", "")


class DatabaseFactory:
    """Hands out new, empty database URLs and drops the PostgreSQL ones at the end."""

    def __init__(self, backend: str, directory: Path) -> None:
        if backend == "postgres" and not POSTGRES_URL:
            raise RuntimeError("MBT_TEST_DATABASE_URL is not set")
        self.backend = backend
        self.directory = directory
        self.created: list[str] = []

    def new(self, label: str) -> str:
        name = f"mbt_t{secrets.token_hex(4)}_{label}"
        if self.backend == "sqlite":
            return f"sqlite:///{self.directory / (name + '.db')}"
        admin = make_url(normalize_url(POSTGRES_URL))
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self.created.append(name)
        return admin.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if not self.created:
            return
        engine = create_engine(make_url(normalize_url(POSTGRES_URL)), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
        self.created.clear()
