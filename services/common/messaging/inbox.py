"""The consumer side of the outbox: ``EventSinkService.Deliver``.

Each event is applied in its own unit of work together with its id in the inbox, so a
redelivered event is acknowledged without being applied again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mbt.common.v1 import events_pb2, events_pb2_grpc
from services.common.clock import Clock
from services.common.errors import DomainError
from services.common.messaging import topology
from services.common.messaging.outbox import Outbox, OutboxTables
from services.common.observability.metrics import LEDGER_REFUSALS
from services.common.persistence.db import Database
from services.common.persistence.uow import UnitOfWork, unit_of_work
from services.common.rpc import context
from services.common.rpc.protoregistry import message_class

log = logging.getLogger(__name__)

# handler(uow, event, payload): apply the event's effect in the unit of work (its session, its
# repositories); what the handler's aggregates record is published with it.
EventHandler = Callable[[UnitOfWork, events_pb2.Event, Message], Awaitable[None]]


def payload_digest(event: events_pb2.Event) -> str:
    return hashlib.sha256(event.payload.SerializeToString(deterministic=True)).hexdigest()


async def record_once(session: AsyncSession, tables: OutboxTables, event: events_pb2.Event, received_at) -> bool:
    """Insert the event id into the inbox; False when it was already there with the same
    producer, type and payload. The same id with anything else is refused
    (IDEMPOTENCY_KEY_REUSED): an event id names one event, never two."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    inbox = tables.inbox
    digest = payload_digest(event)
    statement = (
        module.insert(inbox)
        .values(
            event_id=event.event_id,
            producer=event.producer,
            event_type=event.event_type,
            received_at=received_at,
            payload_sha256=digest,
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(inbox.c.event_id)
    )
    # RETURNING rather than rowcount: psycopg reports no rowcount for this statement.
    if (await session.execute(statement)).first() is not None:
        return True
    first = (
        await session.execute(
            select(inbox.c.producer, inbox.c.event_type, inbox.c.payload_sha256).where(
                inbox.c.event_id == event.event_id
            )
        )
    ).one()
    if (first.producer, first.event_type) != (event.producer, event.event_type) or first.payload_sha256 not in (
        None,
        digest,
    ):
        LEDGER_REFUSALS.labels(service=tables.inbox.name.removesuffix("_inbox"), reason="idempotency_key_reused").inc()
        log.error(
            "event id reused for another event; refused",
            extra={
                "fields": {
                    "event_id": event.event_id,
                    "producer": event.producer,
                    "event_type": event.event_type,
                    "first_producer": first.producer,
                    "first_event_type": first.event_type,
                }
            },
        )
        raise DomainError(
            "IDEMPOTENCY_KEY_REUSED",
            f"event {event.event_id} was delivered before with another payload; it is not applied",
        )
    return False


class EventSink(events_pb2_grpc.EventSinkServiceServicer):
    """``Deliver``: each event applied in its own unit of work with its id in the inbox.

    ``handlers`` must cover exactly the events the topology routes to ``service``: a handler
    for an event nobody sends it, or an event sent it that nothing handles, is a wiring error
    found when the service is built."""

    def __init__(
        self,
        service: str,
        db: Database,
        outbox: Outbox,
        clock: Clock,
        handlers: Mapping[str, EventHandler],
        publish: Callable[[UnitOfWork, Any], Awaitable[None]] | None = None,
        *,
        routed: set[str] | None = None,
    ) -> None:
        """``routed``: the event types delivered to this sink (default: the topology's for
        ``service``; a test consumer names its own)."""
        routed = topology.routed_to(service) if routed is None else routed
        if set(handlers) != routed:
            raise ValueError(
                f"{service}'s event handlers disagree with the topology: handled but not routed "
                f"{sorted(set(handlers) - routed)}, routed but not handled {sorted(routed - set(handlers))}"
            )
        self.db = db
        self.outbox = outbox
        self.clock = clock
        self.handlers = dict(handlers)
        self.publish = publish

    async def apply(self, event: events_pb2.Event) -> bool:
        """Apply one event exactly once in effect; True if it was new."""
        context.set_request_id(event.request_id or context.request_id())
        async with unit_of_work(self.db, self.outbox, self.publish) as uow:
            if not await record_once(uow.session, self.outbox.tables, event, self.clock.now()):
                return False
            handler = self.handlers.get(event.event_type)
            if handler is None:  # written before the topology stopped routing it here
                log.info(
                    "event type not handled here; recorded and skipped",
                    extra={"fields": {"event_type": event.event_type, "event_id": event.event_id}},
                )
                return True
            payload = message_class(event.event_type)()
            event.payload.Unpack(payload)
            await handler(uow, event, payload)
            return True

    async def Deliver(self, request, context_):
        acknowledged = []
        for event in request.events:
            await self.apply(event)
            acknowledged.append(event.event_id)
        return events_pb2.DeliverResponse(acknowledged_event_ids=acknowledged)
