"""Activities' tables (its only ones): the activity stream, the append-only audit log and the
users' notifications."""

from __future__ import annotations

import zlib
from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Index,
    MetaData,
    String,
    Table,
    Text,
    and_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.activities import audit_chain
from services.activities.domain import Activity, AuditEntry, Notification, TeachingCard
from services.common.messaging.outbox import define_outbox_tables
from services.common.persistence.sqltypes import TYPE_ANNOTATION_MAP
from services.common.persistence.user_data import UserTable, UserTables, by_user_id
from services.common.trading import Side

SERVICE = "activities"
# PostgreSQL advisory lock that serialises appends to the audit chain.
AUDIT_CHAIN_LOCK = zlib.crc32(b"mbt-audit-chain")


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
    # The teaching card served with it (TeachingCard's fields), null for most activities.
    card: Mapped[dict | None] = mapped_column(JSON)
    # expiration activities: expired_worthless, exercised, assigned or cash_settled.
    subtype: Mapped[str] = mapped_column(String(24), default="", server_default="")


class AuditLogRow(Base):
    """Append-only: rows are inserted, never updated (erasure only blanks the clear actor and
    user ids, which the chain holds as keyed hashes)."""

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
    # The hash chain (services/activities/audit_chain.py): the row's position in insertion
    # order, the keyed hashes of actor and user, the previous row's hash and its own.
    chain_seq: Mapped[int] = mapped_column(BigInteger, index=True, unique=True)
    actor_hash: Mapped[str] = mapped_column(String(64))
    user_hash: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


def chain_entry(row: AuditLogRow) -> audit_chain.Entry:
    """The row as the chain sees it (a row not yet sealed: position 0, empty hashes)."""
    return audit_chain.Entry(
        sequence=row.chain_seq or 0,
        audit_id=row.audit_id,
        actor_type=row.actor_type,
        actor_id=row.actor_id,
        actor_hash=row.actor_hash or "",
        action=row.action,
        entity_type=row.entity_type,
        entity_id=row.entity_id,
        user_id=row.user_id,
        user_hash=row.user_hash or "",
        before=row.before,
        after=row.after,
        request_id=row.request_id,
        service=row.service,
        occurred_at=row.occurred_at,
        recorded_at=row.recorded_at,
        prev_hash=row.prev_hash or "",
        row_hash=row.row_hash or "",
    )


class NotificationRow(Base):
    """One user notification (one per fill: its id derives from the fill's)."""

    __tablename__ = "mbt_notifications"
    __table_args__ = (Index("ix_mbt_notifications_user_time", "user_id", "occurred_at", "notification_id"),)

    notification_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(24))
    symbol: Mapped[str] = mapped_column(String(32))
    fill_id: Mapped[str] = mapped_column(String(40), unique=True)
    order_id: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    webhook_state: Mapped[str] = mapped_column(String(16))
    webhook_attempts: Mapped[int]
    # Not yet in the inbox or its webhook not yet posted: what the offer loop looks for.
    outstanding: Mapped[bool] = mapped_column(Boolean, index=True)


class GoalStreakRow(Base):
    """One account's weekly goal verdict: the week (its last session's date), met or not,
    and the streak of consecutive weeks met it makes."""

    __tablename__ = "mbt_goal_streaks"

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    week_end: Mapped[date] = mapped_column(Date, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    met: Mapped[bool] = mapped_column(Boolean)
    streak: Mapped[int]
    activity_id: Mapped[str] = mapped_column(String(40))
    evaluated_at: Mapped[datetime]


OUTBOX = define_outbox_tables(Base.metadata, SERVICE)


def _audit_rows_of(user_id: str):
    return or_(AuditLogRow.user_id == user_id, and_(AuditLogRow.actor_type == "user", AuditLogRow.actor_id == user_id))


def _blank_audit_ids(user_id: str):
    """Audit rows outlive the user: only the clear ids go; the chain keeps their keyed hashes
    (``actor_hash``, ``user_hash``), so it still verifies."""
    return [
        update(AuditLogRow).where(AuditLogRow.user_id == user_id).values(user_id=""),
        update(AuditLogRow)
        .where(AuditLogRow.actor_id == user_id, AuditLogRow.actor_type == "user")
        .values(actor_id=""),
    ]


# GDPR export and erasure (services.common.persistence.user_data).
USER_TABLES = UserTables(
    SERVICE,
    [
        by_user_id(ActivityRow.__table__),
        by_user_id(NotificationRow.__table__),
        by_user_id(GoalStreakRow.__table__),
        UserTable(cast(Table, AuditLogRow.__table__), _audit_rows_of, _blank_audit_ids),
        *OUTBOX.user_tables(),
    ],
)


_ACTIVITY_FIELDS = (
    "activity_id",
    "user_id",
    "account_id",
    "activity_type",
    "symbol",
    "order_id",
    "fill_id",
    "qty",
    "price",
    "net_amount",
    "description",
    "occurred_at",
    "created_at",
    "subtype",
)
_AUDIT_FIELDS = (
    "audit_id",
    "actor_type",
    "actor_id",
    "action",
    "entity_type",
    "entity_id",
    "user_id",
    "before",
    "after",
    "request_id",
    "service",
    "occurred_at",
    "recorded_at",
)


_NOTIFICATION_FIELDS = (
    "notification_id",
    "user_id",
    "account_id",
    "kind",
    "symbol",
    "fill_id",
    "order_id",
    "message",
    "occurred_at",
    "created_at",
    "delivered_at",
    "read_at",
    "webhook_state",
    "webhook_attempts",
)


def _notification(row: NotificationRow) -> Notification:
    return Notification(**{f: getattr(row, f) for f in _NOTIFICATION_FIELDS})


def _activity(row: ActivityRow) -> Activity:
    return Activity(
        side=Side(row.side) if row.side else None,
        card=TeachingCard(**row.card) if row.card else None,
        **{f: getattr(row, f) for f in _ACTIVITY_FIELDS},
    )


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
        self.session.add(
            ActivityRow(
                side=activity.side.value if activity.side else "",
                card=asdict(activity.card) if activity.card else None,
                **{f: getattr(activity, f) for f in _ACTIVITY_FIELDS},
            )
        )
        await self.session.flush()
        return True

    async def add_audit(self, entry: AuditEntry, actor_key: bytes) -> bool:
        """Append ``entry`` to the audit chain (``actor_key``: MBT_AUDIT_ACTOR_KEY); False when
        an entry with its id is already there."""
        if await self.session.get(AuditLogRow, entry.audit_id) is not None:
            return False
        # Appends are serialised until the transaction ends: on PostgreSQL by a transaction-scoped
        # advisory lock, on SQLite by the write transaction itself (it holds the database's write lock).
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_CHAIN_LOCK})
        head = (
            await self.session.execute(
                select(AuditLogRow.chain_seq, AuditLogRow.audit_id, AuditLogRow.row_hash)
                .order_by(AuditLogRow.chain_seq.desc())
                .limit(1)
            )
        ).first()
        row = AuditLogRow(**{f: getattr(entry, f) for f in _AUDIT_FIELDS})
        sealed = audit_chain.seal(actor_key, chain_entry(row), audit_chain.Link(*head) if head else None)
        row.chain_seq, row.actor_hash, row.user_hash = sealed.sequence, sealed.actor_hash, sealed.user_hash
        row.prev_hash, row.row_hash = sealed.prev_hash, sealed.row_hash
        self.session.add(row)
        await self.session.flush()
        return True

    async def chain_link(self, sequence: int) -> audit_chain.Link | None:
        found = (
            await self.session.execute(
                select(AuditLogRow.chain_seq, AuditLogRow.audit_id, AuditLogRow.row_hash).where(
                    AuditLogRow.chain_seq == sequence
                )
            )
        ).first()
        return audit_chain.Link(*found) if found else None

    async def chain_entries(self, from_sequence: int, limit: int) -> list[audit_chain.Entry]:
        """Rows of the chain from position ``from_sequence`` on, in chain order."""
        query = (
            select(AuditLogRow)
            .where(AuditLogRow.chain_seq >= from_sequence)
            .order_by(AuditLogRow.chain_seq)
            .limit(limit)
        )
        return [chain_entry(row) for row in (await self.session.execute(query)).scalars()]

    async def activity(self, activity_id: str, user_id: str) -> Activity | None:
        row = (
            await self.session.execute(
                select(ActivityRow).where(ActivityRow.activity_id == activity_id, ActivityRow.user_id == user_id)
            )
        ).scalar_one_or_none()
        return None if row is None else _activity(row)

    async def activities(
        self,
        user_id: str,
        *,
        activity_type: str | None,
        start: datetime | None,
        end: datetime | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Activity]:
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
            query = query.where(
                or_(
                    ActivityRow.occurred_at < at,
                    and_(ActivityRow.occurred_at == at, ActivityRow.activity_id < activity_id),
                )
            )
        query = query.order_by(ActivityRow.occurred_at.desc(), ActivityRow.activity_id.desc()).limit(limit)
        return [_activity(row) for row in (await self.session.execute(query)).scalars()]

    async def fills_between(self, account_id: str, start: datetime, end: datetime) -> list[Activity]:
        """The account's fill activities in [start, end), oldest first."""
        query = (
            select(ActivityRow)
            .where(
                ActivityRow.account_id == account_id,
                ActivityRow.activity_type == "fill",
                ActivityRow.occurred_at >= start,
                ActivityRow.occurred_at < end,
            )
            .order_by(ActivityRow.occurred_at, ActivityRow.activity_id)
        )
        return [_activity(row) for row in (await self.session.execute(query)).scalars()]

    async def goal_week(self, account_id: str, week_end: date) -> GoalStreakRow | None:
        return await self.session.get(GoalStreakRow, (account_id, week_end))

    async def streak_before(self, account_id: str, week_end: date) -> int:
        """The streak of the account's latest judged week before ``week_end`` (0: none)."""
        streak = (
            await self.session.execute(
                select(GoalStreakRow.streak)
                .where(GoalStreakRow.account_id == account_id, GoalStreakRow.week_end < week_end)
                .order_by(GoalStreakRow.week_end.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        return streak or 0

    async def add_goal_week(self, row: GoalStreakRow) -> None:
        self.session.add(row)
        await self.session.flush()

    async def audit_entries(
        self, *, user_id: str, entity_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[AuditEntry]:
        """Oldest first: an audit trail reads forward."""
        query = select(AuditLogRow)
        if user_id:
            query = query.where(AuditLogRow.user_id == user_id)
        if entity_id:
            query = query.where(AuditLogRow.entity_id == entity_id)
        if after is not None:
            at, audit_id = after
            query = query.where(
                or_(AuditLogRow.occurred_at > at, and_(AuditLogRow.occurred_at == at, AuditLogRow.audit_id > audit_id))
            )
        query = query.order_by(AuditLogRow.occurred_at, AuditLogRow.audit_id).limit(limit)
        return [_audit(row) for row in (await self.session.execute(query)).scalars()]


class NotificationRepository:
    """The users' notifications, in one transaction (``session``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, notification: Notification) -> bool:
        """False when the fill already has its notification."""
        found = await self.session.execute(
            select(NotificationRow.notification_id).where(NotificationRow.fill_id == notification.fill_id)
        )
        if found.first() is not None:
            return False
        self.session.add(
            NotificationRow(
                outstanding=notification.outstanding, **{f: getattr(notification, f) for f in _NOTIFICATION_FIELDS}
            )
        )
        await self.session.flush()
        return True

    async def for_fill(self, fill_id: str, *, for_update: bool = False) -> Notification | None:
        query = select(NotificationRow).where(NotificationRow.fill_id == fill_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).scalar_one_or_none()
        return None if row is None else _notification(row)

    async def owned(self, notification_id: str, user_id: str) -> Notification | None:
        row = (
            await self.session.execute(
                select(NotificationRow).where(
                    NotificationRow.notification_id == notification_id, NotificationRow.user_id == user_id
                )
            )
        ).scalar_one_or_none()
        return None if row is None else _notification(row)

    async def save(self, notification: Notification) -> None:
        """Store the delivery and read state of ``notification`` (its content never changes)."""
        await self.session.execute(
            update(NotificationRow)
            .where(NotificationRow.notification_id == notification.notification_id)
            .values(
                delivered_at=notification.delivered_at,
                read_at=notification.read_at,
                webhook_state=notification.webhook_state,
                webhook_attempts=notification.webhook_attempts,
                outstanding=notification.outstanding,
            )
        )

    async def delivered(
        self, user_id: str, *, unread_only: bool, after: tuple[datetime, str] | None, limit: int
    ) -> list[Notification]:
        """A user's notifications in their inbox, newest first."""
        query = select(NotificationRow).where(
            NotificationRow.user_id == user_id, NotificationRow.delivered_at.is_not(None)
        )
        if unread_only:
            query = query.where(NotificationRow.read_at.is_(None))
        if after is not None:
            at, notification_id = after
            query = query.where(
                or_(
                    NotificationRow.occurred_at < at,
                    and_(NotificationRow.occurred_at == at, NotificationRow.notification_id < notification_id),
                )
            )
        query = query.order_by(NotificationRow.occurred_at.desc(), NotificationRow.notification_id.desc()).limit(limit)
        return [_notification(row) for row in (await self.session.execute(query)).scalars()]

    async def outstanding_fills(self, limit: int) -> list[str]:
        """Fill ids whose notification is not yet fully delivered, oldest first."""
        query = (
            select(NotificationRow.fill_id)
            .where(NotificationRow.outstanding.is_(True))
            .order_by(NotificationRow.created_at, NotificationRow.notification_id)
            .limit(limit)
        )
        return list((await self.session.execute(query)).scalars())
