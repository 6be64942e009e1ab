"""Alembic environment of the accounts service (run by services.common.migrate)."""

from services.accounts.store import Base
from services.common.migrate import run_env

run_env(Base.metadata)
