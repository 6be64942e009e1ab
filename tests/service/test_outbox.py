"""The outbox + relay + inbox deliver every committed event exactly once in effect:
through a relay crash between delivery and acknowledgement, a duplicate delivery,
a consumer that is down for a while, and never for a rolled-back transaction."""

import asyncio
from datetime import UTC, datetime

import pytest
from google.protobuf import any_pb2
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, func, insert, select

from mbt.common.v1 import audit_pb2, events_pb2, events_pb2_grpc
from services.common.clock import ManualClock
from services.common.messaging.inbox import EventSink
from services.common.messaging.outbox import Outbox, OutboxRelay, define_outbox_tables
from services.common.persistence.db import Database, normalize_url
from services.common.persistence.uow import unit_of_work
from services.common.rpc.channels import open_channel
from services.common.rpc.server import Registration, ServiceRuntime, start
from tests.support.identity import as_service
from tests.support.mesh import free_port

CLOCK = ManualClock(datetime(2012, 6, 21, 14, 0, tzinfo=UTC))


class Side:
    """A database with an outbox, plus (consumer side) an effects table."""

    def __init__(self, url: str, name: str) -> None:
        self.metadata = MetaData()
        self.tables = define_outbox_tables(self.metadata, name)
        self.effects = Table(
            "effects",
            self.metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("audit_id", String(64), nullable=False),
        )
        self.db = Database(url)
        schema = create_engine(normalize_url(url))
        self.metadata.create_all(schema)
        schema.dispose()
        self.outbox = Outbox(name, self.tables, CLOCK)

    async def count(self, table) -> int:
        async with self.db.reading() as session:
            return (await session.execute(select(func.count()).select_from(table))).scalar_one()

    async def effect_ids(self) -> list[str]:
        async with self.db.reading() as session:
            return list((await session.execute(select(self.effects.c.audit_id).order_by(self.effects.c.id))).scalars())


def record_effect(consumer: Side):
    async def handler(uow, event, payload: audit_pb2.AuditRecorded) -> None:
        await uow.session.execute(insert(consumer.effects).values(audit_id=payload.audit_id))

    return handler


async def write_events(producer: Side, count: int) -> list[str]:
    ids = []
    for index in range(count):
        async with unit_of_work(producer.db, producer.outbox) as uow:
            await uow.audit(
                action="submit",
                entity_type="order",
                entity_id=f"ord_{index}",
                user_id="u1",
                before=None,
                after={"n": index},
                cause=f"cause-{index}",
            )
        async with producer.db.reading() as session:
            ids.append(
                (
                    await session.execute(
                        select(producer.tables.outbox.c.event_id)
                        .order_by(producer.tables.outbox.c.sequence.desc())
                        .limit(1)
                    )
                ).scalar_one()
            )
    return ids


@pytest.fixture
async def producer(databases):
    side = Side(databases.new("producer"), "producer")
    yield side
    await side.db.aclose()


@pytest.fixture
async def consumer(databases):
    side = Side(databases.new("consumer"), "consumer")
    yield side
    await side.db.aclose()


async def serve_consumer(consumer: Side, port: int = 0):
    sink = EventSink(
        "consumer",
        consumer.db,
        consumer.outbox,
        CLOCK,
        handlers={"mbt.common.v1.AuditRecorded": record_effect(consumer)},
        routed={"mbt.common.v1.AuditRecorded"},
    )
    return await start(ServiceRuntime("consumer", [Registration.of(sink)]), port=port)


def relay_to(producer: Side, target: str, relay_class=OutboxRelay) -> tuple[OutboxRelay, object]:
    channel = open_channel(target, lambda: as_service("producer"))
    relay = relay_class(
        producer.db,
        "producer",
        producer.tables,
        {"activities": events_pb2_grpc.EventSinkServiceStub(channel)},
        poll_seconds=0.05,
    )
    return relay, channel


class CrashBeforeAcknowledge(OutboxRelay):
    """Delivers, then 'crashes' before recording the acknowledgement."""

    async def _acknowledge(self, subscriber, sequences):
        raise RuntimeError("relay crashed after delivery, before acknowledgement")


async def test_relay_crash_between_delivery_and_ack_applies_each_event_once(producer, consumer):
    server = await serve_consumer(consumer)
    try:
        await write_events(producer, 3)
        crashing, channel = relay_to(producer, server.address, CrashBeforeAcknowledge)
        with pytest.raises(RuntimeError):
            await crashing.deliver_once("activities")
        await channel.close()
        applied = await consumer.effect_ids()
        assert len(applied) == 3  # delivered and applied ...
        assert await producer.count(producer.tables.pending) == 3  # ... but never acknowledged

        restarted, channel = relay_to(producer, server.address)
        assert await restarted.drain() == 3
        await channel.close()
        assert await producer.count(producer.tables.pending) == 0
        assert await consumer.effect_ids() == applied  # redelivered, not re-applied
        assert await consumer.count(consumer.tables.inbox) == 3
    finally:
        await server.stop(0)


async def test_a_duplicate_delivery_is_acknowledged_without_a_second_effect(producer, consumer):
    server = await serve_consumer(consumer)
    try:
        await write_events(producer, 1)
        relay, channel = relay_to(producer, server.address)
        events = await relay._pending_batch("activities")
        stub = events_pb2_grpc.EventSinkServiceStub(channel)
        for _ in range(2):
            reply = await stub.Deliver(events_pb2.DeliverRequest(events=events))
            assert list(reply.acknowledged_event_ids) == [events[0].event_id]
        await channel.close()
        assert len(await consumer.effect_ids()) == 1
    finally:
        await server.stop(0)


async def test_events_arrive_in_outbox_order(producer, consumer):
    server = await serve_consumer(consumer)
    try:
        await write_events(producer, 25)
        relay, channel = relay_to(producer, server.address)
        relay.batch_size = 7
        assert await relay.drain() == 25
        await channel.close()
        async with producer.db.reading() as session:
            rows = (
                (
                    await session.execute(
                        select(producer.tables.outbox.c.payload).order_by(producer.tables.outbox.c.sequence)
                    )
                )
                .scalars()
                .all()
            )
        expected = []
        for raw in rows:
            message = audit_pb2.AuditRecorded()
            any_pb2.Any.FromString(raw).Unpack(message)
            expected.append(message.audit_id)
        assert await consumer.effect_ids() == expected
    finally:
        await server.stop(0)


async def test_the_relay_keeps_retrying_until_the_consumer_comes_up(producer, consumer):
    port = free_port()
    await write_events(producer, 2)
    relay, channel = relay_to(producer, f"127.0.0.1:{port}")
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(0.5)
    assert await consumer.effect_ids() == []
    server = await serve_consumer(consumer, port=port)
    try:
        for _ in range(200):
            if await producer.count(producer.tables.pending) == 0:
                break
            await asyncio.sleep(0.05)
        assert len(await consumer.effect_ids()) == 2
        assert await producer.count(producer.tables.pending) == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await channel.close()
        await server.stop(0)


async def test_a_rolled_back_change_emits_nothing(producer):
    with pytest.raises(RuntimeError, match="the use case failed"):
        async with unit_of_work(producer.db, producer.outbox) as uow:
            await uow.audit(
                action="submit", entity_type="order", entity_id="ord_x", user_id="u1", before=None, after={}
            )
            raise RuntimeError("the use case failed")
    assert await producer.count(producer.tables.outbox) == 0
    assert await producer.count(producer.tables.pending) == 0
