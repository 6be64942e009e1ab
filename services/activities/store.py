"""Activities' tables (its only ones): the activity stream and the append-only audit log."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, Index, MetaData, String, Text, and_, or_, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

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


class ActivityRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_activity(self, row: ActivityRow) -> bool:
        """False when an activity with this id exists (its cause was already recorded)."""
        if self.session.get(ActivityRow, row.activity_id) is not None:
            return False
        self.session.add(row)
        self.session.flush()
        return True

    def add_audit(self, row: AuditLogRow) -> bool:
        if self.session.get(AuditLogRow, row.audit_id) is not None:
            return False
        self.session.add(row)
        self.session.flush()
        return True

    def activity(self, activity_id: str, user_id: str) -> ActivityRow | None:
        return self.session.execute(select(ActivityRow).where(ActivityRow.activity_id == activity_id,
                                                              ActivityRow.user_id == user_id)).scalar_one_or_none()

    def activities(self, user_id: str, *, activity_type: str | None, start: datetime | None, end: datetime | None,
                   after: tuple[datetime, str] | None, limit: int) -> list[ActivityRow]:
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
        return list(self.session.execute(query).scalars())

    def audit_rows(self, *, user_id: str, entity_id: str, after: tuple[datetime, str] | None,
                   limit: int) -> list[AuditLogRow]:
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
        return list(self.session.execute(query).scalars())
