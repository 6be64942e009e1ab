"""Activities' tables (its only ones): the activity stream and the append-only audit log."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, Index, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.outbox import define_outbox_tables
from services.common.sqltypes import ExactDecimal, UtcDateTime

SERVICE = "activities"


class Base(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = {Decimal: ExactDecimal(), datetime: UtcDateTime()}


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
