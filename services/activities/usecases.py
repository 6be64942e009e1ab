"""What the activities service does: record the user's activity stream and the append-only
audit trail (each once, by id, in the unit of work of the event that caused it), and answer
reads of both; record a notification per fill, deliver it (the ``mbt.send_fill_notification``
job) to the user's inbox and the signed webhook, and answer the inbox."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from services.activities.domain import (
    WEBHOOK_DELIVERED,
    WEBHOOK_NONE,
    WEBHOOK_PENDING,
    Activity,
    AuditEntry,
    DeliveryFailed,
    Notification,
    Notifier,
    judge_week,
    next_streak,
    nudge_activity,
    nudge_text,
    summarize_week,
)
from services.activities.store import SERVICE, ActivityRepository, GoalStreakRow, NotificationRepository
from services.common.clock import Clock
from services.common.errors import DomainError, invalid_argument, not_found
from services.common.ids import new_id
from services.common.persistence.db import Database
from services.common.persistence.pagination import page
from services.common.persistence.uow import UnitOfWork
from services.common.retention import UserCutoff, batch_size
from services.common.rpc import context
from services.jobs.pending import PendingOffers

log = logging.getLogger("mbt.activities")
SEND_FILL_NOTIFICATION = "mbt.send_fill_notification"
# How often the offer loop looks for notifications to offer without being woken, and how
# often it offers again the ones still outstanding (a job that failed for good is reopened).
OFFER_POLL_SECONDS = 1.0
REOFFER_SECONDS = 60.0
OFFER_BATCH = 500


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


class JobOffers(Protocol):
    """The jobs' queue as activities uses it (``services.jobs.queue.JobQueue``; blocking)."""

    def rerun(self, name: str, key: str) -> object: ...


class Notifications:
    """Notifications: one per fill, recorded with the fill's event, delivered by the
    ``mbt.send_fill_notification`` job (keyed by fill id) to the user's inbox and to
    ``webhook`` (a ``Notifier``; None when ``MBT_NOTIFY_WEBHOOK_URL`` is unset)."""

    def __init__(self, db: Database, clock: Clock, webhook: Notifier | None) -> None:
        self.db = db
        self.clock = clock
        self.webhook = webhook
        self._offers = PendingOffers(
            SEND_FILL_NOTIFICATION,
            "notifications",
            log,
            retry_seconds=OFFER_POLL_SECONDS,
            poll_seconds=OFFER_POLL_SECONDS,
            reoffer_seconds=REOFFER_SECONDS,
        )

    async def record(self, uow: UnitOfWork, notification: Notification) -> None:
        """Store ``notification`` once per fill (a fill event delivered again adds nothing)."""
        if await NotificationRepository(uow.session).add(notification):
            self._offers.wake()

    async def list_for(self, user_id: str, unread_only: bool, size: int, token: str) -> tuple[list[Notification], str]:
        """The user's delivered notifications, newest first (``unread_only``: not yet read)."""

        async def fetch(after: tuple[datetime, str] | None, limit: int) -> list[Notification]:
            async with self.db.reading() as session:
                return await NotificationRepository(session).delivered(
                    user_id, unread_only=unread_only, after=after, limit=limit
                )

        return await page(
            size, token, ("notifications", user_id, unread_only), fetch, lambda n: (n.occurred_at, n.notification_id)
        )

    async def mark_read(self, user_id: str, notification_id: str) -> Notification:
        """Mark one of the user's delivered notifications read; marking it again keeps the
        first read time. not_found for another user's or an undelivered one."""
        async with self.db.writing() as session:
            repo = NotificationRepository(session)
            notification = await repo.owned(notification_id, user_id)
            if notification is None or notification.delivered_at is None:
                raise not_found("notification", notification_id)
            if notification.read_at is None:
                notification = replace(notification, read_at=self.clock.now())
                await repo.save(notification)
        return notification

    async def deliver(self, fill_id: str) -> Notification:
        """Deliver the fill's notification: into the inbox (once), then to the webhook if it
        is to be posted there. Idempotent: a delivered notification is answered as it is.
        Raises not_found for a fill without a notification, and UNAVAILABLE (after counting
        the attempt) when the webhook cannot take it, so the job retries with backoff."""
        async with self.db.writing() as session:
            repo = NotificationRepository(session)
            notification = await repo.for_fill(fill_id, for_update=True)
            if notification is None:
                raise not_found("notification of fill", fill_id)
            if notification.delivered_at is None:
                notification = replace(notification, delivered_at=self.clock.now())
            if notification.webhook_state == WEBHOOK_PENDING and self.webhook is None:
                notification = replace(notification, webhook_state=WEBHOOK_NONE)  # nowhere to post it any more
            await repo.save(notification)
        if notification.webhook_state != WEBHOOK_PENDING or self.webhook is None:
            return notification
        failure: DeliveryFailed | None = None
        try:
            await self.webhook.deliver(notification)
        except DeliveryFailed as exc:
            failure = exc
        notification = replace(
            notification,
            webhook_attempts=notification.webhook_attempts + 1,
            webhook_state=WEBHOOK_PENDING if failure else WEBHOOK_DELIVERED,
        )
        async with self.db.writing() as session:
            await NotificationRepository(session).save(notification)
        if failure is not None:
            raise DomainError(
                "UNAVAILABLE",
                f"the notification webhook did not take {notification.notification_id} "
                f"(attempt {notification.webhook_attempts}): {failure}",
            )
        return notification

    async def offer_outstanding(self, queue: JobOffers) -> None:
        """Background: offer each notification not yet fully delivered to the
        ``mbt.send_fill_notification`` job — when one is recorded, and every
        ``REOFFER_SECONDS`` again for those still outstanding (after a restart, or a job that
        failed for good: a webhook down for longer than the job's retries), so none is lost.
        Offering a key that is pending or done sends nothing."""
        await self._offers.run(self._outstanding, queue.rerun)

    async def _outstanding(self) -> dict[str, dict[str, object]]:
        async with self.db.reading() as session:
            return {fill_id: {} for fill_id in await NotificationRepository(session).outstanding_fills(OFFER_BATCH)}


class GoalStreaks:
    """Weekly goals (``domain.judge_week``): each account's week judged once, its streak
    kept, and a ``system_nudge`` activity saying so."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def evaluate(
        self, week_end: date, account_id: str, user_id: str, profile: str, open_symbols: list[str]
    ) -> tuple[bool, int, Activity]:
        """Judge the ISO week of ``week_end`` (its last session) for the account: its fills
        from that Monday 00:00 UTC to the day after ``week_end``, and ``open_symbols`` (its open
        positions at the close). Returns (met, streak, the nudge). Idempotent per (account,
        week): a week judged already is answered as it was. invalid_argument for an unknown
        profile."""
        try:
            judge_week(profile, summarize_week([], []))
        except ValueError as exc:
            raise invalid_argument(str(exc), "investor_profile") from None
        monday = week_end - timedelta(days=week_end.weekday())
        start = datetime.combine(monday, time(), UTC)
        end = datetime.combine(week_end + timedelta(days=1), time(), UTC)
        async with self.db.writing() as session:
            repo = ActivityRepository(session)
            judged = await repo.goal_week(account_id, week_end)
            if judged is not None:
                nudge = await repo.activity(judged.activity_id, judged.user_id)
                if nudge is None:
                    raise not_found("nudge", judged.activity_id)
                return judged.met, judged.streak, nudge
            verdict = judge_week(
                profile, summarize_week(await repo.fills_between(account_id, start, end), open_symbols)
            )
            previous = await repo.streak_before(account_id, week_end)
            streak = next_streak(previous, verdict.met)
            now = self.clock.now()
            nudge = nudge_activity(
                account_id=account_id,
                user_id=user_id,
                week_end=week_end,
                text=nudge_text(verdict, streak, previous),
                at=now,
                now=now,
            )
            await repo.add_activity(nudge)
            await repo.add_goal_week(
                GoalStreakRow(
                    account_id=account_id,
                    week_end=week_end,
                    user_id=user_id,
                    met=verdict.met,
                    streak=streak,
                    activity_id=nudge.activity_id,
                    evaluated_at=now,
                )
            )
        return verdict.met, streak, nudge


class ActivityRetention:
    """The retention purge of activities (``PurgeExpiredActivities``, run by the
    ``mbt.purge_expired`` job): a user's activities before the user's cutoff are deleted, a
    batch per transaction, their net amount added to the account's ``carried_forward``
    activity so that the activities still add up to the cash; each batch is one audit row
    with its count. Audit rows themselves are not purged here."""

    def __init__(self, db: Database, audit_key: bytes, clock: Clock) -> None:
        self.db = db
        self.audit_key = audit_key
        self.clock = clock

    async def purge(self, users: Sequence[UserCutoff], requested_batch: int) -> tuple[int, int]:
        """(activities deleted, batches); InvalidArgument for a bad batch size, before
        anything is deleted."""
        limit = batch_size(requested_batch)
        purged = batches = 0
        for user in users:
            while True:
                async with self.db.writing() as session:
                    repo = ActivityRepository(session)
                    now = self.clock.now()
                    count = await repo.fold_activities_before(user.user_id, user.cutoff, limit, now)
                    if not count:
                        break
                    caller = context.identity()
                    await repo.add_audit(
                        AuditEntry(
                            audit_id=new_id("aud"),
                            actor_type="system",
                            actor_id=caller.subject or SERVICE,
                            action="retention_purge",
                            entity_type="activity",
                            entity_id=user.user_id,
                            user_id=user.user_id,
                            before={"activities": count, "cutoff": user.cutoff.isoformat()},
                            after=None,
                            request_id=context.request_id(),
                            service=SERVICE,
                            occurred_at=now,
                            recorded_at=now,
                        ),
                        self.audit_key,
                    )
                purged, batches = purged + count, batches + 1
        return purged, batches
