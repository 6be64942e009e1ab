"""Activities' tables (its only ones): the activity stream and the append-only audit log."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, Index, MetaData, String, Text, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.activities.domain import Activity, AuditEntry
from services.common.trading import Side
from services.common.messaging.outbox import define_outbox_tables
from services.common.persistence.sqltypes import TYPE_ANNOTATION_MAP

SERVICE = "activities"


class Base(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = TYPE_ANNOTATION_MAP


class ActivityRow(Base):
    __tablename__ = "mbt_activities"
    __table_args__ = (Index("ix_mbt_activities_user_time", "user_id", "occurred_at", "activity_id"),)

    activity_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[str] = mapped_column(String(40))
    activity_type: Mapped[str] = mapped_column(String(24))
    symbol: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[str] = mapped_column(String(40))
    fill_id: Mapped[str] = mapped_column(String(40))
    side: Mapped[str] = mapped_column(String(8))
    qty: Mapped[Decimal | None]
    price: Mapped[Decimal | None]
    # Signed cash effect.
    net_amount: Mapped[Decimal]
    description: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime]


class AuditLogRow(Base):
    """Append-only: rows are inserted, never updated (erasure only hashes the actor)."""

    __tablename__ = "audit_log"

    audit_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    request_id: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime]


OUTBOX = define_outbox_tables(Base.metadata, SERVICE)


_ACTIVITY_FIELDS = ("activity_id", "user_id", "account_id", "activity_type", "symbol", "order_id", "fill_id", "qty",
                    "price", "net_amount", "description", "occurred_at", "created_at")
_AUDIT_FIELDS = ("audit_id", "actor_type", "actor_id", "action", "entity_type", "entity_id", "user_id", "before",
                 "after", "request_id", "service", "occurred_at", "recorded_at")


def _activity(row: ActivityRow) -> Activity:
    return Activity(side=Side(row.side) if row.side else None, **{f: getattr(row, f) for f in _ACTIVITY_FIELDS})


def _audit(row: AuditLogRow) -> AuditEntry:
    return AuditEntry(**{f: getattr(row, f) for f in _AUDIT_FIELDS})


class ActivityRepository:
    """The activity stream and the audit log, in one transaction (``session``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_activity(self, activity: Activity) -> bool:
        """False when an activity with this id exists (its cause was already recorded)."""
        if await self.session.get(ActivityRow, activity.activity_id) is not None:
            return False
        self.session.add(ActivityRow(side=activity.side.value if activity.side else "",
                                     **{f: getattr(activity, f) for f in _ACTIVITY_FIELDS}))
        await self.session.flush()
        return True

    async def add_audit(self, entry: AuditEntry) -> bool:
        if await self.session.get(AuditLogRow, entry.audit_id) is not None:
            return False
        self.session.add(AuditLogRow(**{f: getattr(entry, f) for f in _AUDIT_FIELDS}))
        await self.session.flush()
        return True

    async def activity(self, activity_id: str, user_id: str) -> Activity | None:
        row = (await self.session.execute(select(ActivityRow).where(
            ActivityRow.activity_id == activity_id, ActivityRow.user_id == user_id))).scalar_one_or_none()
        return None if row is None else _activity(row)

    async def activities(self, user_id: str, *, activity_type: str | None, start: datetime | None,
                         end: datetime | None, after: tuple[datetime, str] | None, limit: int) -> list[Activity]:
        """Newest first."""
        query = select(ActivityRow).where(ActivityRow.user_id == user_id)
        if activity_type:
            query = query.where(ActivityRow.activity_type == activity_type)
        if start is not None:
            query = query.where(ActivityRow.occurred_at >= start)
        if end is not None:
            query = query.where(ActivityRow.occurred_at < end)
        if after is not None:
            at, activity_id = after
            query = query.where(or_(ActivityRow.occurred_at < at,
                                    and_(ActivityRow.occurred_at == at, ActivityRow.activity_id < activity_id)))
        query = query.order_by(ActivityRow.occurred_at.desc(), ActivityRow.activity_id.desc()).limit(limit)
        return [_activity(row) for row in (await self.session.execute(query)).scalars()]

    async def audit_entries(self, *, user_id: str, entity_id: str, after: tuple[datetime, str] | None,
                            limit: int) -> list[AuditEntry]:
        """Oldest first: an audit trail reads forward."""
        query = select(AuditLogRow)
        if user_id:
            query = query.where(AuditLogRow.user_id == user_id)
        if entity_id:
            query = query.where(AuditLogRow.entity_id == entity_id)
        if after is not None:
            at, audit_id = after
            query = query.where(or_(AuditLogRow.occurred_at > at,
                                    and_(AuditLogRow.occurred_at == at, AuditLogRow.audit_id > audit_id)))
        query = query.order_by(AuditLogRow.occurred_at, AuditLogRow.audit_id).limit(limit)
        return [_audit(row) for row in (await self.session.execute(query)).scalars()]
