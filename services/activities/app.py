"""build(settings): wires the activities service."""

from __future__ import annotations

from mbt.common.v1 import user_data_pb2_grpc
from services.activities.audit_service import AuditChainServicer
from services.activities.audit_trail import AuditTrail, actor_key
from services.activities.events import Handlers
from services.activities.service import ActivitiesServicer
from services.activities.store import OUTBOX, SERVICE
from services.activities.usecases import Activities
from services.common.clock import Clock
from services.common.config import Settings
from services.common.kit import ServiceKit
from services.common.messaging.inbox import EventSink
from services.common.rpc.server import Registration, ServiceRuntime


def build(settings: Settings, *, clock: Clock | None = None) -> ServiceRuntime:
    kit = ServiceKit.create(SERVICE, settings, tables=OUTBOX, clock=clock)
    audit_key = actor_key(settings)
    activities = Activities(kit.database, audit_key)
    handlers = Handlers(activities, kit.clock).by_event_type()
    return kit.runtime(
        [
            Registration.of(ActivitiesServicer(activities)),
            Registration.of(EventSink(SERVICE, kit.database, kit.event_outbox, kit.clock, handlers)),
            Registration.of(user_data_pb2_grpc.UserDataServiceServicer()),
            Registration.of(AuditChainServicer(AuditTrail(kit.database, audit_key))),
        ]
    )
