"""GDPR coverage: every table of every component (found through the migrations each one
runs) that holds user rows is in that component's USER_TABLES, so the export answers it and
erasure deletes it. Adding such a table without naming it there fails here."""

import importlib
import re
from pathlib import Path

import pytest
from sqlalchemy import Column, ForeignKey, MetaData, String, Table

from services.common.persistence.user_data import holds_user_data

ROOT = Path(__file__).resolve().parents[3]
ENVS = sorted([*ROOT.glob("services/*/migrations/env.py"), *ROOT.glob("gateway/migrations/env.py")])


def store_module(env: Path):
    match = re.search(r"^from (\S+) import .*\bBase\b", env.read_text(), re.MULTILINE)
    assert match, f"{env} names the metadata it migrates"
    return importlib.import_module(match.group(1))


def test_every_component_is_found():
    assert {env.parent.parent.name for env in ENVS} >= {
        "accounts",
        "orders",
        "matcher",
        "marketdata",
        "activities",
        "jobs",
        "gateway",
    }


@pytest.mark.parametrize("env", ENVS, ids=lambda env: env.parent.parent.name)
def test_every_table_holding_user_rows_is_exported_and_erased(env):
    module = store_module(env)
    covered = module.USER_TABLES.names if hasattr(module, "USER_TABLES") else frozenset()
    holding = {table.name for table in module.Base.metadata.sorted_tables if holds_user_data(table, covered)}
    assert holding <= covered, (
        f"{sorted(holding - covered)} hold user rows but are not in {module.__name__}.USER_TABLES"
    )
    assert covered <= set(module.Base.metadata.tables), "USER_TABLES names only the component's own tables"


def test_the_rule_catches_a_new_table():
    metadata = MetaData()
    parent = Table("parents", metadata, Column("parent_id", String, primary_key=True), Column("user_id", String))
    child = Table(
        "children",
        metadata,
        Column("child_id", String, primary_key=True),
        Column("parent_id", ForeignKey(parent.c.parent_id)),
    )
    by_account = Table("by_account", metadata, Column("account_id", String))
    neutral = Table("ticks", metadata, Column("symbol", String, primary_key=True))
    assert holds_user_data(parent) and holds_user_data(child) and holds_user_data(by_account)
    assert not holds_user_data(neutral)
