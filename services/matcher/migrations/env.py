"""Alembic environment of the matcher service (run by services.common.persistence.migrate)."""

from services.matcher.store import Base
from services.common.persistence.migrate import run_env

run_env(Base.metadata)
