"""Alembic environment of the gateway (run by services.common.migrate)."""

from gateway.store import Base
from services.common.migrate import run_env

run_env(Base.metadata)
