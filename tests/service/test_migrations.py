"""Every service's migrations, and the gateway's, upgrade and downgrade cleanly (SQLite, and
PostgreSQL when configured)."""

import pytest
from sqlalchemy import create_engine, inspect

from services.common.persistence import migrate
from services.common.persistence.db import normalize_url

SERVICES_WITH_DATABASES = ["accounts", "orders", "matcher", "marketdata", "activities", "gateway", "jobs"]


def table_names(url: str) -> set[str]:
    engine = create_engine(normalize_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def store_module(component: str):
    module = {"gateway": "gateway.store", "jobs": "services.jobs.records"}.get(component, f"services.{component}.store")
    return __import__(module, fromlist=["Base"])


def model_tables(service: str) -> set[str]:
    return set(store_module(service).Base.metadata.tables)


@pytest.mark.parametrize("service", SERVICES_WITH_DATABASES)
def test_upgrade_creates_exactly_the_model_tables_and_downgrade_removes_them(service, databases):
    url = databases.new(service)
    migrate.upgrade(service, url)
    assert table_names(url) == model_tables(service) | {migrate.version_table(service)}
    migrate.downgrade(service, url)
    assert table_names(url) == {migrate.version_table(service)}
    migrate.upgrade(service, url)
    assert table_names(url) == model_tables(service) | {migrate.version_table(service)}


@pytest.mark.parametrize("service", SERVICES_WITH_DATABASES)
def test_migrations_match_the_models(service, databases):
    """No model change without a migration: autogenerate finds nothing to do."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    url = databases.new(service)
    migrate.upgrade(service, url)
    module = store_module(service)
    engine = create_engine(normalize_url(url))
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": migrate.version_table(service)}
        )
        assert compare_metadata(context, module.Base.metadata) == []
    engine.dispose()
