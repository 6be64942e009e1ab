"""A service's user data (GDPR): which of its tables hold a user's rows, how to select them,
and the two things done with them — export (every row, as JSON objects) and erasure (every
row hard-deleted, in one transaction).

Each service names its tables in a ``UserTables`` (parents first); erasure deletes them in
reverse order so foreign keys hold. A table whose rows must outlive the user (the audit
log) names an ``erase`` of its own instead of a delete. Erasing twice deletes nothing the
second time, so a crash mid-erasure is finished by running it again.

``holds_user_data`` is the rule the export-coverage test applies to every service's
metadata: a table with a ``user_id`` or ``account_id`` column, or a foreign key to such a
table, holds user data and must be in its service's ``UserTables``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, Delete, FromClause, Table, Update, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.persistence.db import Database

USER_COLUMNS = ("user_id", "account_id")


@dataclass(frozen=True)
class UserTable:
    """One table's rows of a user: ``where(user_id)`` selects them. ``erase`` (default: a
    delete of the selected rows) gives the statements erasure runs instead."""

    table: Table
    where: Callable[[str], ColumnElement[bool]]
    erase: Callable[[str], Sequence[Delete | Update]] | None = field(default=None)

    @property
    def name(self) -> str:
        return self.table.name

    def erasure(self, user_id: str) -> Sequence[Delete | Update]:
        if self.erase is not None:
            return self.erase(user_id)
        return [delete(self.table).where(self.where(user_id))]


def by_user_id(table: FromClause, column: str = "user_id") -> UserTable:
    """The rows of ``table`` (a Table, or a mapped class's ``__table__``) whose ``column`` is
    the user id."""
    return UserTable(cast(Table, table), lambda user_id: table.c[column] == user_id)


def by_parent(
    table: FromClause, column: str, parent: FromClause, parent_key: str, parent_user: str = "user_id"
) -> UserTable:
    """The rows whose ``column`` names a ``parent`` row (by ``parent_key``) of the user."""
    return UserTable(
        cast(Table, table),
        lambda user_id: table.c[column].in_(select(parent.c[parent_key]).where(parent.c[parent_user] == user_id)),
    )


def json_value(value: Any) -> Any:
    """A column value as JSON: Decimal as its exact string, times as ISO 8601, bytes as base64."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    return value


class UserTables:
    """A service's tables that hold user rows, parents first."""

    def __init__(self, service: str, tables: Sequence[UserTable]) -> None:
        self.service = service
        self.tables = tuple(tables)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(table.name for table in self.tables)

    async def export(self, db: Database, user_id: str) -> list[tuple[str, list[dict[str, Any]]]]:
        """(table name, rows as JSON objects ordered by primary key) for every table, in one
        read snapshot; a table without rows of the user is there, empty."""
        out = []
        async with db.reading() as session:
            for user_table in self.tables:
                table = user_table.table
                query = select(table).where(user_table.where(user_id)).order_by(*table.primary_key.columns)
                rows = (await session.execute(query)).mappings().all()
                out.append((table.name, [{key: json_value(value) for key, value in row.items()} for row in rows]))
        return out

    async def erase(self, db: Database, user_id: str) -> dict[str, int]:
        """Hard-delete (or, for a table with its own ``erase``, blank) the user's rows, children
        first, in one transaction; rows affected per table (0 everywhere the second time)."""
        affected: dict[str, int] = {}
        async with db.writing() as session:
            for user_table in reversed(self.tables):
                affected[user_table.name] = await _run(session, user_table.erasure(user_id))
        return affected


async def _run(session: AsyncSession, statements: Sequence[Delete | Update]) -> int:
    count = 0
    for statement in statements:
        result = await session.execute(statement)
        count += max(result.rowcount, 0)  # type: ignore[attr-defined]
    return count


def holds_user_data(table: Table, covered: frozenset[str] = frozenset()) -> bool:
    """True when ``table`` has a user column or a foreign key to a table that has one (or
    that ``covered`` already counts as holding user data)."""
    if any(name in table.c for name in USER_COLUMNS):
        return True
    for key in table.foreign_keys:
        parent = key.column.table
        if parent.name in covered or (parent is not table and holds_user_data(parent, covered)):
            return True
    return False
