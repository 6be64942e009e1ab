"""build(settings): wires the activities service."""

from __future__ import annotations

from services.activities.audit_service import AuditChainServicer
from services.activities.audit_trail import AuditTrail, actor_key
from services.activities.events import Handlers
from services.activities.service import ActivitiesServicer
from services.activities.store import OUTBOX, SERVICE, USER_TABLES
from services.activities.usecases import Activities
from services.common.clock import Clock
from services.common.config import Settings
from services.common.kit import ServiceKit
from services.common.messaging.inbox import EventSink
from services.common.rpc.server import Registration, ServiceRuntime
from services.common.rpc.user_data import UserDataServicer


def build(settings: Settings, *, clock: Clock | None = None) -> ServiceRuntime:
    kit = ServiceKit.create(SERVICE, settings, tables=OUTBOX, clock=clock)
    audit_key = actor_key(settings)
    activities = Activities(kit.database, audit_key)
    handlers = Handlers(activities, kit.clock).by_event_type()
    return kit.runtime(
        [
            Registration.of(ActivitiesServicer(activities)),
            Registration.of(EventSink(SERVICE, kit.database, kit.event_outbox, kit.clock, handlers)),
            Registration.of(UserDataServicer(USER_TABLES, kit.database, kit.clock)),
            Registration.of(AuditChainServicer(AuditTrail(kit.database, audit_key))),
        ]
    )
