"""Events the orders service emits (each carries the order as it is after the change)."""

from __future__ import annotations

from mbt.orders.v1 import events_pb2
from services.common.wire.conv import decimal_str
from services.common.ids import derived_id
from services.common.messaging.outbox import UnitOfWork
from services.orders.domain import Fill, Order
from services.orders.wire import fill_to_proto, order_to_proto

_KINDS = {
    "accepted": events_pb2.OrderAccepted,
    "rejected": events_pb2.OrderRejected,
    "triggered": events_pb2.OrderTriggered,
    "canceled": events_pb2.OrderCanceled,
    "expired": events_pb2.OrderExpired,
}


def emit_order_event(uow: UnitOfWork, kind: str, order: Order) -> None:
    uow.emit(_KINDS[kind](order=order_to_proto(order)), aggregate_id=order.order_id, user_id=order.user_id,
             occurred_at=order.updated_at)


def emit_replaced(uow: UnitOfWork, order: Order, previous: Order) -> None:
    uow.emit(events_pb2.OrderReplaced(order=order_to_proto(order), previous=order_to_proto(previous)),
             aggregate_id=order.order_id, user_id=order.user_id, occurred_at=order.updated_at)


def emit_filled(uow: UnitOfWork, order: Order, fill: Fill) -> None:
    # The event id derives from the fill id: a fill can only ever produce one OrderFilled.
    uow.emit(events_pb2.OrderFilled(order=order_to_proto(order), fill=fill_to_proto(fill)),
             aggregate_id=order.order_id, user_id=order.user_id, occurred_at=fill.filled_at,
             event_id=derived_id("evt", fill.fill_id))


def audit_snapshot(order: Order) -> dict:
    """The order as audit before/after state (proto field names, decimal strings)."""
    spec = order.spec
    return {
        "order_id": order.order_id, "client_order_id": spec.client_order_id, "symbol": spec.symbol,
        "side": spec.side.value, "qty": decimal_str(spec.qty), "order_type": spec.order_type.value,
        "time_in_force": spec.time_in_force.value, "limit_price": decimal_str(spec.limit_price),
        "stop_price": decimal_str(spec.stop_price), "status": order.status.value, "version": order.version,
        "reject_reason": order.reject_reason, "cancel_reason": order.cancel_reason,
        "filled_qty": decimal_str(order.filled_qty), "filled_avg_price": decimal_str(order.filled_avg_price),
    }
