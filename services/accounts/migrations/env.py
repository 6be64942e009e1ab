"""Alembic environment of the accounts service (run by services.common.persistence.migrate)."""

from services.accounts.store import Base
from services.common.persistence.migrate import run_env

run_env(Base.metadata)
