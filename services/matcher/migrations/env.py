"""Alembic environment of the matcher service (run by services.common.migrate)."""

from services.matcher.store import Base
from services.common.migrate import run_env

run_env(Base.metadata)
