"""Alembic environment of the activities service (run by services.common.migrate)."""

from services.activities.store import Base
from services.common.migrate import run_env

run_env(Base.metadata)
