"""Alembic environment of the orders service (run by services.common.migrate)."""

from services.orders.store import Base
from services.common.migrate import run_env

run_env(Base.metadata)
