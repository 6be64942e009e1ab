"""The transactional outbox (DESIGN §4): events are written in the same local
transaction as the state change that causes them, then a relay delivers them, in
order and at least once, to each subscriber's ``EventSinkService.Deliver``.

Tables (per service, prefixed with its name so services may share a database):
``<svc>_outbox`` the events; ``<svc>_outbox_pending`` one row per (event, subscriber)
still to deliver; ``<svc>_outbox_lease`` which relay replica may deliver right now (one
at a time keeps the order); ``<svc>_inbox`` event ids this service has applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from google.protobuf import any_pb2, json_format, struct_pb2
from google.protobuf.message import Message
from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mbt.common.v1 import audit_pb2, events_pb2, events_pb2_grpc
from services.common.clock import Clock, WallClock
from services.common.ids import derived_id, new_id
from services.common.messaging import topology
from services.common.persistence.db import Database, changed
from services.common.persistence.sqltypes import UtcDateTime
from services.common.persistence.user_data import UserTable, by_parent, by_user_id
from services.common.rpc import context
from services.common.wire.conv import to_timestamp

log = logging.getLogger(__name__)

SEQUENCE = BigInteger().with_variant(Integer, "sqlite")


@dataclass(frozen=True)
class OutboxTables:
    outbox: Table
    pending: Table
    lease: Table
    inbox: Table

    def user_tables(self) -> list[UserTable]:
        """The user's events and their deliveries, for GDPR export and erasure (parents first).
        By erasure, 30 days of a read-only account later, they are delivered history."""
        return [by_user_id(self.outbox), by_parent(self.pending, "sequence", self.outbox, "sequence")]


def define_outbox_tables(metadata: MetaData, service: str) -> OutboxTables:
    outbox = Table(
        f"{service}_outbox",
        metadata,
        Column("sequence", SEQUENCE, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("event_type", String(128), nullable=False),
        Column("aggregate_id", String(64), nullable=False),
        Column("user_id", String(128), nullable=False),
        Column("request_id", String(64), nullable=False),
        Column("occurred_at", UtcDateTime(), nullable=False),
        Column("payload", LargeBinary, nullable=False),
    )
    pending = Table(
        f"{service}_outbox_pending",
        metadata,
        Column("sequence", SEQUENCE, ForeignKey(outbox.c.sequence, ondelete="CASCADE"), primary_key=True),
        Column("subscriber", String(32), primary_key=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text),
    )
    lease = Table(
        f"{service}_outbox_lease",
        metadata,
        Column("name", String(32), primary_key=True),
        Column("holder", String(128), nullable=False),
        Column("expires_at", UtcDateTime(), nullable=False),
    )
    inbox = Table(
        f"{service}_inbox",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("producer", String(32), nullable=False),
        Column("event_type", String(128), nullable=False),
        Column("received_at", UtcDateTime(), nullable=False),
        # SHA-256 of the event's payload: the same id arriving with another payload is refused.
        Column("payload_sha256", String(64)),
    )
    return OutboxTables(outbox, pending, lease, inbox)


def jsonable(value: object) -> object:
    """Domain values as JSON-safe values for audit snapshots (money stays a string)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, bool, int)):
        return value
    return str(value)


def _struct(value: Mapping | None) -> struct_pb2.Struct | None:
    if value is None:
        return None
    result = struct_pb2.Struct()
    json_format.ParseDict(jsonable(value), result)
    return result


class Outbox:
    """Writes events into the outbox inside the caller's transaction."""

    def __init__(self, service: str, tables: OutboxTables, clock: Clock) -> None:
        self.service = service
        self.tables = tables
        self.clock = clock
        self._listeners: list = []

    def on_commit(self, callback) -> None:
        """``callback(subscribers)`` runs after a transaction that wrote events for those
        subscribers commits (on any thread)."""
        self._listeners.append(callback)

    def notify(self, subscribers: frozenset[str]) -> None:
        for callback in self._listeners:
            callback(subscribers)

    async def add(
        self,
        session: AsyncSession,
        payload: Message,
        *,
        aggregate_id: str,
        user_id: str = "",
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> tuple[str, ...]:
        """Write one event; returns the subscribers it is pending for."""
        event_type = payload.DESCRIPTOR.full_name
        event_id = event_id or new_id("evt")
        packed = any_pb2.Any()
        packed.Pack(payload)
        result = await session.execute(
            insert(self.tables.outbox).values(
                event_id=event_id,
                event_type=event_type,
                aggregate_id=aggregate_id,
                user_id=user_id,
                request_id=context.request_id(),
                occurred_at=occurred_at or self.clock.now(),
                payload=packed.SerializeToString(),
            )
        )
        inserted = changed(result).inserted_primary_key
        if inserted is None:
            raise RuntimeError("the outbox insert returned no sequence")
        sequence = inserted[0]
        subscribers = topology.subscribers(event_type)
        if subscribers:
            await session.execute(
                insert(self.tables.pending), [{"sequence": sequence, "subscriber": name} for name in subscribers]
            )
        return subscribers

    async def audit(
        self,
        session: AsyncSession,
        *,
        action: str,
        entity_type: str,
        entity_id: str,
        user_id: str,
        before: Mapping | None,
        after: Mapping | None,
        occurred_at: datetime | None = None,
        cause: str | None = None,
    ) -> tuple[str, ...]:
        """Record one audit message; ``cause`` makes its id deterministic (a retry of the
        same change gives the same audit id, deduplicated downstream)."""
        caller = context.identity()
        actor_type = {"user": audit_pb2.ACTOR_TYPE_USER, "ops": audit_pb2.ACTOR_TYPE_OPS}.get(
            caller.kind, audit_pb2.ACTOR_TYPE_SYSTEM
        )
        actor_id = caller.subject or self.service
        occurred_at = occurred_at or self.clock.now()
        audit_id = derived_id("aud", self.service, cause) if cause else new_id("aud")
        message = audit_pb2.AuditRecorded(
            audit_id=audit_id,
            actor_type=actor_type,
            actor_id=actor_id,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            user_id=user_id,
            before=_struct(before),
            after=_struct(after),
            request_id=context.request_id(),
            occurred_at=to_timestamp(occurred_at),
            service=self.service,
        )
        return await self.add(
            session,
            message,
            aggregate_id=entity_id,
            user_id=user_id,
            event_id=derived_id("evt", audit_id),
            occurred_at=occurred_at,
        )


def envelope(producer: str, row) -> events_pb2.Event:
    payload = any_pb2.Any.FromString(row.payload)
    return events_pb2.Event(
        event_id=row.event_id,
        event_type=row.event_type,
        producer=producer,
        aggregate_id=row.aggregate_id,
        user_id=row.user_id,
        occurred_at=to_timestamp(row.occurred_at),
        request_id=row.request_id,
        sequence=row.sequence,
        payload=payload,
    )


@dataclass
class _SubscriberState:
    name: str
    stub: events_pb2_grpc.EventSinkServiceStub
    failures: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class OutboxRelay:
    """Delivers pending outbox rows to each subscriber, in sequence order, at least once.

    Only the replica holding the lease delivers. A row leaves ``pending`` only after the
    subscriber acknowledged it; a crash in between means one redelivery, which the
    subscriber's inbox turns into a no-op.
    """

    LEASE_NAME = "relay"

    def __init__(
        self,
        db: Database,
        service: str,
        tables: OutboxTables,
        sinks: Mapping[str, events_pb2_grpc.EventSinkServiceStub],
        *,
        batch_size: int = 200,
        poll_seconds: float = 0.2,
        rpc_timeout: float = 10.0,
        lease_seconds: float = 10.0,
        wall: Clock | None = None,
    ) -> None:
        self.db = db
        self.service = service
        self.tables = tables
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.rpc_timeout = rpc_timeout
        self.lease_seconds = lease_seconds
        self.wall = wall or WallClock()
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._subscribers = {name: _SubscriberState(name, stub) for name, stub in sinks.items()}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.delivered = 0

    # -- waking -------------------------------------------------------------------

    def wake(self, subscribers: frozenset[str]) -> None:
        """Events for ``subscribers`` were committed (safe from any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for name in subscribers:
            state = self._subscribers.get(name)
            if state is not None:
                loop.call_soon_threadsafe(state.wake.set)

    # -- lease --------------------------------------------------------------------

    async def _acquire_lease(self) -> bool:
        now = self.wall.now()
        expires = now + timedelta(seconds=self.lease_seconds)
        lease = self.tables.lease
        async with self.db.writing() as session:
            taken = changed(
                await session.execute(
                    update(lease)
                    .where(lease.c.name == self.LEASE_NAME)
                    .where((lease.c.holder == self.holder) | (lease.c.expires_at < now))
                    .values(holder=self.holder, expires_at=expires)
                )
            ).rowcount
            if taken:
                return True
            if (await session.execute(select(lease.c.name).where(lease.c.name == self.LEASE_NAME))).first():
                return False
        try:
            async with self.db.writing() as session:
                await session.execute(
                    insert(lease).values(name=self.LEASE_NAME, holder=self.holder, expires_at=expires)
                )
            return True
        except IntegrityError:
            return False

    async def _release_lease(self) -> None:
        lease = self.tables.lease
        async with self.db.writing() as session:
            await session.execute(
                delete(lease).where(lease.c.name == self.LEASE_NAME).where(lease.c.holder == self.holder)
            )

    # -- delivery -----------------------------------------------------------------

    async def _pending_batch(self, subscriber: str) -> list[events_pb2.Event]:
        o, p = self.tables.outbox, self.tables.pending
        async with self.db.reading() as session:
            rows = (
                await session.execute(
                    select(o)
                    .join(p, p.c.sequence == o.c.sequence)
                    .where(p.c.subscriber == subscriber)
                    .order_by(o.c.sequence)
                    .limit(self.batch_size)
                )
            ).all()
        return [envelope(self.service, row) for row in rows]

    async def _acknowledge(self, subscriber: str, sequences: list[int]) -> None:
        p = self.tables.pending
        async with self.db.writing() as session:
            await session.execute(delete(p).where(p.c.subscriber == subscriber).where(p.c.sequence.in_(sequences)))

    async def _record_failure(self, subscriber: str, sequence: int, error: str) -> None:
        p = self.tables.pending
        async with self.db.writing() as session:
            await session.execute(
                update(p)
                .where(p.c.subscriber == subscriber)
                .where(p.c.sequence == sequence)
                .values(attempts=p.c.attempts + 1, last_error=error[:1000])
            )

    async def deliver_once(self, subscriber: str) -> int:
        """Deliver one batch to ``subscriber``; returns how many were acknowledged."""
        state = self._subscribers[subscriber]
        events = await self._pending_batch(subscriber)
        if not events:
            return 0
        response = await state.stub.Deliver(events_pb2.DeliverRequest(events=events), timeout=self.rpc_timeout)
        acknowledged = set(response.acknowledged_event_ids)
        sequences = [e.sequence for e in events if e.event_id in acknowledged]
        if sequences:
            await self._acknowledge(subscriber, sequences)
        self.delivered += len(sequences)
        return len(sequences)

    async def drain(self) -> int:
        """Deliver everything pending now to every subscriber (tests, shutdown)."""
        total = 0
        for name in self._subscribers:
            while count := await self.deliver_once(name):
                total += count
        return total

    async def _run_subscriber(self, state: _SubscriberState, leased: asyncio.Event) -> None:
        while True:
            await leased.wait()
            state.wake.clear()
            try:
                count = await self.deliver_once(state.name)
                state.failures = 0
                if count:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                state.failures += 1
                delay = min(5.0, 0.05 * 2 ** min(state.failures, 7))
                log.warning(
                    "event delivery failed; will retry",
                    extra={
                        "fields": {
                            "subscriber": state.name,
                            "attempt": state.failures,
                            "retry_in_s": delay,
                            "error": str(exc)[:300],
                        }
                    },
                )
                events = await self._pending_batch(state.name)
                if events:
                    await self._record_failure(state.name, events[0].sequence, str(exc))
                await asyncio.sleep(delay)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), self.poll_seconds)

    async def run(self) -> None:
        """Run until cancelled."""
        self._loop = asyncio.get_running_loop()
        leased = asyncio.Event()
        tasks = [
            asyncio.create_task(self._run_subscriber(s, leased), name=f"relay-{s.name}")
            for s in self._subscribers.values()
        ]
        try:
            while True:
                try:
                    holding = await self._acquire_lease()
                except Exception as exc:
                    log.warning("outbox lease check failed", extra={"fields": {"error": str(exc)[:300]}})
                    holding = False
                if holding:
                    leased.set()
                else:
                    leased.clear()
                await asyncio.sleep(self.lease_seconds / 3)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await self._release_lease()
            except Exception:
                log.info("could not release the outbox lease; it will expire")
