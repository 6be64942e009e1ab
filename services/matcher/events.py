"""The events the matcher consumes — the orders service's, as the topology routes them —
and its event sink. An accepted or replaced order is admitted to the book (if it is still
accepted); one that ended (filled, canceled, expired) leaves it. The matcher emits no
events: its decisions go to the orders service as calls.

The sink keeps no inbox: the book is in memory and rebuilt from orders on start, and
admitting or removing an order twice changes nothing, so a redelivery is harmless."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mbt.common.v1 import events_pb2, events_pb2_grpc
from services.common.messaging import topology
from services.common.rpc.protoregistry import message_class
from services.matcher import wire
from services.matcher.store import SERVICE
from services.matcher.usecases.matching import Engine

log = logging.getLogger(__name__)


async def _admit(engine: Engine, payload: Any) -> None:
    if wire.is_working(payload.order):
        await engine.admit(wire.open_order(payload.order))


async def _remove(engine: Engine, payload: Any) -> None:
    engine.remove(payload.order.order_id)


HANDLED: Mapping[str, Callable[[Engine, Any], Awaitable[None]]] = {
    "mbt.orders.v1.OrderAccepted": _admit,
    "mbt.orders.v1.OrderReplaced": _admit,
    "mbt.orders.v1.OrderCanceled": _remove,
    "mbt.orders.v1.OrderExpired": _remove,
    "mbt.orders.v1.OrderFilled": _remove,
}


class MatcherEvents(events_pb2_grpc.EventSinkServiceServicer):
    """``Deliver``: each event handled in order. ``HANDLED`` must cover exactly what the
    topology routes to the matcher: anything else is a wiring error found at build."""

    def __init__(self, engine: Engine) -> None:
        routed = topology.routed_to(SERVICE)
        if set(HANDLED) != routed:
            raise ValueError(
                f"the matcher's event handlers disagree with the topology: handled but not routed "
                f"{sorted(set(HANDLED) - routed)}, routed but not handled "
                f"{sorted(routed - set(HANDLED))}"
            )
        self.engine = engine

    async def Deliver(self, request, context):
        await self.engine.ready()  # an event older than the book must not overtake its rebuild
        for event in request.events:
            handler = HANDLED.get(event.event_type)
            if handler is None:  # written before the topology stopped routing it here
                log.info(
                    "event type not handled here; skipped",
                    extra={"fields": {"event_type": event.event_type, "event_id": event.event_id}},
                )
                continue
            payload = message_class(event.event_type)()
            event.payload.Unpack(payload)
            await handler(self.engine, payload)
        return events_pb2.DeliverResponse(acknowledged_event_ids=[e.event_id for e in request.events])
