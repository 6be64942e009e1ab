"""Alembic environment of the orders service (run by services.common.persistence.migrate)."""

from services.orders.store import Base
from services.common.persistence.migrate import run_env

run_env(Base.metadata)
