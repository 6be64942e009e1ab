"""Each service migrates its own database with its own Alembic environment
(``services/<name>/migrations``; the gateway's is ``gateway/migrations``) and its own
version table, at start.

On PostgreSQL an advisory lock makes concurrent replicas migrate one at a time; within one
process a lock makes threads migrate one at a time (Alembic's ``context`` and its loaded
``env.py`` modules are process-wide, and two threads migrating at once fail inside Alembic
with ``KeyError: 'script'``). A migration
that needs configuration (a key to seal existing rows with) reads the process's settings
from ``context.config.attributes["settings"]``.
"""

from __future__ import annotations

import threading
import zlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.pool import NullPool

from services.common.config import Settings
from services.common.persistence.db import normalize_url

ROOT = Path(__file__).resolve().parents[3]
_MIGRATING = threading.Lock()


def migrations_dir(component: str) -> Path:
    if component == "gateway":
        return ROOT / "gateway" / "migrations"
    return ROOT / "services" / component / "migrations"


def version_table(service: str) -> str:
    return f"alembic_version_{service}"


def alembic_config(service: str, url: str, settings: Settings | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir(service)))
    config.attributes["service"] = service
    config.attributes["url"] = normalize_url(url)
    config.attributes["settings"] = settings
    return config


def upgrade(service: str, url: str, revision: str = "head", *, settings: Settings | None = None) -> None:
    with _MIGRATING:
        command.upgrade(alembic_config(service, url, settings), revision)


def downgrade(service: str, url: str, revision: str = "base") -> None:
    with _MIGRATING:
        command.downgrade(alembic_config(service, url), revision)


def run_env(metadata: MetaData) -> None:
    """The body of every service's ``migrations/env.py`` (online mode only)."""
    config = context.config
    service = config.attributes["service"]
    url = config.attributes["url"]
    if url.startswith("sqlite:///"):
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        postgres = connection.dialect.name == "postgresql"
        lock_key = zlib.crc32(f"mbt-migrate-{service}".encode())
        if postgres:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key})
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                version_table=version_table(service),
                render_as_batch=True,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if postgres:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key})
                connection.commit()
    engine.dispose()
