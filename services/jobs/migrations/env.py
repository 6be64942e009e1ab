"""Alembic environment of the jobs' records (run by services.common.persistence.migrate)."""

from services.common.persistence.migrate import run_env
from services.jobs.records import Base

run_env(Base.metadata)
