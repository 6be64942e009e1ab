"""Alembic environment of the orders service (run by services.common.persistence.migrate)."""

from services.common.persistence.migrate import run_env
from services.orders.store import Base

run_env(Base.metadata)
