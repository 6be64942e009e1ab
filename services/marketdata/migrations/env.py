"""Alembic environment of the marketdata service (run by services.common.migrate)."""

from services.marketdata.store import Base
from services.common.migrate import run_env

run_env(Base.metadata)
