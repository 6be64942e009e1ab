"""build(settings): wires the activities service."""

from __future__ import annotations

from services.activities.audit_service import AuditChainServicer
from services.activities.audit_trail import AuditTrail, actor_key
from services.activities.events import Handlers
from services.activities.notifier import WebhookNotifier
from services.activities.service import ActivitiesServicer, GoalStreakServicer, NotificationsServicer
from services.activities.store import OUTBOX, SERVICE, USER_TABLES
from services.activities.usecases import Activities, ActivityRetention, GoalStreaks, Notifications
from services.common.clock import Clock, WallClock
from services.common.config import Settings
from services.common.kit import ServiceKit
from services.common.messaging.inbox import EventSink
from services.common.rpc.server import Registration, ServiceRuntime
from services.common.rpc.user_data import UserDataServicer
from services.jobs.queue import JobQueue


def build(settings: Settings, *, clock: Clock | None = None) -> ServiceRuntime:
    kit = ServiceKit.create(SERVICE, settings, tables=OUTBOX, clock=clock)
    audit_key = actor_key(settings)
    activities = Activities(kit.database, audit_key)
    webhook = (
        WebhookNotifier(
            settings.notify_webhook_url,
            settings.notify_webhook_secret,
            settings.notify_webhook_timeout_seconds,
            WallClock(),
        )
        if settings.notify_webhook_url
        else None
    )
    notifications = Notifications(kit.database, kit.clock, webhook)
    handlers = Handlers(activities, notifications, kit.clock).by_event_type()
    queue = JobQueue(settings)
    runtime = kit.runtime(
        [
            Registration.of(ActivitiesServicer(activities, ActivityRetention(kit.database, audit_key, kit.clock))),
            Registration.of(NotificationsServicer(notifications)),
            Registration.of(GoalStreakServicer(GoalStreaks(kit.database, kit.clock))),
            Registration.of(EventSink(SERVICE, kit.database, kit.event_outbox, kit.clock, handlers)),
            Registration.of(UserDataServicer(USER_TABLES, kit.database, kit.clock)),
            Registration.of(AuditChainServicer(AuditTrail(kit.database, audit_key))),
        ],
        background=[lambda: notifications.offer_outstanding(queue)],
    )
    runtime.closers.append(queue.close)
    return runtime
