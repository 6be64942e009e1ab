"""What the activities service does: record the user's activity stream and the append-only
audit trail (each once, by id, in the unit of work of the event that caused it), and answer
reads of both."""

from __future__ import annotations

from datetime import datetime

from services.activities.domain import Activity, AuditEntry
from services.activities.store import ActivityRepository
from services.common.errors import invalid_argument, not_found
from services.common.persistence.db import Database
from services.common.persistence.pagination import page
from services.common.persistence.uow import UnitOfWork


class Activities:
    def __init__(self, db: Database, audit_key: bytes) -> None:
        self.db = db
        self.audit_key = audit_key

    async def record_activity(self, uow: UnitOfWork, activity: Activity) -> None:
        await ActivityRepository(uow.session).add_activity(activity)

    async def record_audit(self, uow: UnitOfWork, entry: AuditEntry) -> None:
        await ActivityRepository(uow.session).add_audit(entry, self.audit_key)

    async def list_for(
        self,
        user_id: str,
        activity_type: str | None,
        start: datetime | None,
        end: datetime | None,
        size: int,
        token: str,
    ) -> tuple[list[Activity], str]:
        """A user's activities in [start, end), newest first, optionally of one type."""
        if start and end and start >= end:
            raise invalid_argument("from must be before to", "from")

        async def fetch(after: tuple[datetime, str] | None, limit: int) -> list[Activity]:
            async with self.db.reading() as session:
                return await ActivityRepository(session).activities(
                    user_id, activity_type=activity_type, start=start, end=end, after=after, limit=limit
                )

        return await page(
            size, token, (user_id, activity_type, start, end), fetch, lambda a: (a.occurred_at, a.activity_id)
        )

    async def get(self, user_id: str, activity_id: str) -> Activity:
        async with self.db.reading() as session:
            activity = await ActivityRepository(session).activity(activity_id, user_id)
        if activity is None:
            raise not_found("activity", activity_id)
        return activity

    async def audit_log(self, user_id: str, entity_id: str, size: int, token: str) -> tuple[list[AuditEntry], str]:
        """Audit entries of a user or an entity, oldest first."""
        if not user_id and not entity_id:
            raise invalid_argument("filter the audit log by user_id or entity_id")

        async def fetch(after: tuple[datetime, str] | None, limit: int) -> list[AuditEntry]:
            async with self.db.reading() as session:
                return await ActivityRepository(session).audit_entries(
                    user_id=user_id, entity_id=entity_id, after=after, limit=limit
                )

        return await page(size, token, ("audit", user_id, entity_id), fetch, lambda e: (e.occurred_at, e.audit_id))
