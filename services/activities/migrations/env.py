"""Alembic environment of the activities service (run by services.common.persistence.migrate)."""

from services.activities.store import Base
from services.common.persistence.migrate import run_env

run_env(Base.metadata)
