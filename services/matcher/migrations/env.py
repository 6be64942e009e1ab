"""Alembic environment of the matcher service (run by services.common.persistence.migrate)."""

from services.common.persistence.migrate import run_env
from services.matcher.store import Base

run_env(Base.metadata)
