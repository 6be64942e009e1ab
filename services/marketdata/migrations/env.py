"""Alembic environment of the marketdata service (run by services.common.persistence.migrate)."""

from services.common.persistence.migrate import run_env
from services.marketdata.store import Base

run_env(Base.metadata)
