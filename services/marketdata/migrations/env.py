"""Alembic environment of the marketdata service (run by services.common.persistence.migrate)."""

from services.marketdata.store import Base
from services.common.persistence.migrate import run_env

run_env(Base.metadata)
