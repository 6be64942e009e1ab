"""What the orders service tells others: each domain event an order records becomes one audit
row and, when the topology routes it to someone, one outbox message carrying the order as it
is after the change — all in the transaction of the change. (A rejection, a stop reached or a
held exit stored is audited only.) The orders service consumes no events."""

from __future__ import annotations

from mbt.orders.v1 import events_pb2
from services.common.ids import derived_id
from services.common.persistence.uow import UnitOfWork
from services.common.wire.conv import decimal_str
from services.orders.domain.model import (
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderClass,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderHeld,
    OrderRejected,
    OrderReplaced,
    OrderTriggered,
)
from services.orders.wire import fill_to_proto, order_to_proto

# The audit action of each event; a submit is audited once, however it ended.
AUDIT_ACTIONS: dict[type, str] = {
    # An exit of a bracket or oto order, stored held until its entry fills (its submit,
    # when it is accepted, is audited as every submit is).
    OrderHeld: "hold",
    OrderAccepted: "submit",
    OrderRejected: "submit",
    OrderTriggered: "trigger",
    OrderReplaced: "replace",
    OrderFilled: "fill",
    OrderCanceled: "cancel",
    OrderExpired: "expire",
}


async def publish(uow: UnitOfWork, event: OrderEvent) -> None:
    order = event.order
    common = {"aggregate_id": order.order_id, "user_id": order.user_id, "occurred_at": order.updated_at}
    match event:
        case OrderAccepted():
            await uow.emit(events_pb2.OrderAccepted(order=order_to_proto(order)), **common)
        case OrderReplaced(previous=previous):
            await uow.emit(
                events_pb2.OrderReplaced(order=order_to_proto(order), previous=order_to_proto(previous)), **common
            )
        case OrderFilled(fill=fill):
            # The event id derives from the fill id: a fill can only ever produce one OrderFilled.
            await uow.emit(
                events_pb2.OrderFilled(order=order_to_proto(order), fill=fill_to_proto(fill)),
                **{**common, "occurred_at": fill.filled_at},
                event_id=derived_id("evt", fill.fill_id),
            )
        case OrderCanceled():
            await uow.emit(events_pb2.OrderCanceled(order=order_to_proto(order)), **common)
        case OrderExpired():
            await uow.emit(events_pb2.OrderExpired(order=order_to_proto(order)), **common)
    action = AUDIT_ACTIONS[type(event)]
    prior = getattr(event, "previous", None)
    cause = event.fill.fill_id if isinstance(event, OrderFilled) else f"{order.order_id}:{action}:{order.version}"
    await uow.audit(
        action=action,
        entity_type="order",
        entity_id=order.order_id,
        user_id=order.user_id,
        before=None if prior is None else audit_snapshot(prior),
        after=audit_snapshot(order),
        occurred_at=order.updated_at,
        cause=cause,
    )


def audit_snapshot(order: Order) -> dict:
    """The order as audit before/after state (proto field names, decimal strings)."""
    spec = order.spec
    return {
        "order_id": order.order_id,
        "client_order_id": spec.client_order_id,
        "symbol": spec.symbol,
        "side": spec.side.value,
        "qty": decimal_str(spec.qty),
        "order_type": spec.order_type.value,
        "time_in_force": spec.time_in_force.value,
        "limit_price": decimal_str(spec.limit_price),
        "stop_price": decimal_str(spec.stop_price),
        "status": order.status.value,
        "version": order.version,
        "reject_reason": order.reject_reason,
        "cancel_reason": order.cancel_reason,
        "filled_qty": decimal_str(order.filled_qty),
        "filled_avg_price": decimal_str(order.filled_avg_price),
        **(
            {"order_class": spec.order_class.value, "parent_order_id": order.parent_order_id or ""}
            if order.parent_order_id or spec.order_class is not OrderClass.SIMPLE
            else {}
        ),
    }
