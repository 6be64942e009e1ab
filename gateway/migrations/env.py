"""Alembic environment of the gateway (run by services.common.persistence.migrate)."""

from gateway.store import Base
from services.common.persistence.migrate import run_env

run_env(Base.metadata)
