"""OrdersService servicer: thin — wire in, use case, wire out (errors map in the interceptor)."""

from __future__ import annotations

from mbt.orders.v1 import orders_pb2, orders_pb2_grpc
from services.common.errors import invalid_argument
from services.common.ids import requested_id
from services.common.rpc.context import require_user_id
from services.common.wire.conv import from_timestamp
from services.common.wire.retention import user_cutoffs_from_proto
from services.orders import wire
from services.orders.usecases.lifecycle import ACCOUNT_ERASED, Lifecycle
from services.orders.usecases.reads import OrderReads
from services.orders.usecases.replace import ReplaceSaga
from services.orders.usecases.retention import OrderRetention
from services.orders.usecases.submit import SubmitSaga


class OrdersServicer(orders_pb2_grpc.OrdersServiceServicer):
    def __init__(
        self,
        submits: SubmitSaga,
        replaces: ReplaceSaga,
        lifecycle: Lifecycle,
        reads: OrderReads,
        retention: OrderRetention,
    ) -> None:
        self.submits = submits
        self.replaces = replaces
        self.lifecycle = lifecycle
        self.reads = reads
        self.retention = retention

    async def SubmitOrder(self, request, context):
        order, replay = await self.submits.submit(require_user_id(), wire.spec_from_request(request))
        return orders_pb2.SubmitOrderResponse(order=wire.order_to_proto(order), idempotent_replay=replay)

    async def SubmitOrderForUser(self, request, context):
        if not request.user_id:
            raise invalid_argument("user_id is required", "user_id")
        if not request.order.client_order_id.strip():
            raise invalid_argument("client_order_id is required: it makes a rerun harmless", "order.client_order_id")
        order, replay = await self.submits.submit(request.user_id, wire.spec_from_request(request.order))
        return orders_pb2.SubmitOrderForUserResponse(order=wire.order_to_proto(order), idempotent_replay=replay)

    async def ListOrders(self, request, context):
        orders, token = await self.reads.list_for(
            require_user_id(),
            wire.status_filter(request.status),
            request.symbol.strip().upper(),
            request.page_size,
            request.page_token,
        )
        return orders_pb2.ListOrdersResponse(orders=[wire.order_to_proto(o) for o in orders], next_page_token=token)

    async def GetOrder(self, request, context):
        order = await self.reads.get(require_user_id(), _order_id(request.order_id))
        return orders_pb2.GetOrderResponse(order=wire.order_to_proto(order))

    async def CancelOrder(self, request, context):
        order = await self.lifecycle.cancel(require_user_id(), _order_id(request.order_id))
        return orders_pb2.CancelOrderResponse(order=wire.order_to_proto(order))

    async def ReplaceOrder(self, request, context):
        order = await self.replaces.replace(require_user_id(), _order_id(request.order_id), wire.replace_terms(request))
        return orders_pb2.ReplaceOrderResponse(order=wire.order_to_proto(order))

    async def ListOpenOrders(self, request, context):
        orders, token = await self.reads.list_working(
            request.symbol.strip().upper(), request.page_size, request.page_token
        )
        return orders_pb2.ListOpenOrdersResponse(orders=[wire.order_to_proto(o) for o in orders], next_page_token=token)

    async def RecordFill(self, request, context):
        order, duplicate = await self.lifecycle.record_fill(wire.fill_from_proto(request.fill))
        return orders_pb2.RecordFillResponse(order=wire.order_to_proto(order), duplicate=duplicate)

    async def MarkOrderTriggered(self, request, context):
        at = from_timestamp(request.triggered_at)
        if at is None:
            raise invalid_argument("triggered_at is required", "triggered_at")
        order = await self.lifecycle.mark_triggered(_order_id(request.order_id), at)
        return orders_pb2.MarkOrderTriggeredResponse(order=wire.order_to_proto(order))

    async def CancelUnfilledOrder(self, request, context):
        order = await self.lifecycle.cancel(None, _order_id(request.order_id), request.reason or "not_filled")
        return orders_pb2.CancelUnfilledOrderResponse(order=wire.order_to_proto(order))

    async def ExpireOrders(self, request, context):
        count = await self.lifecycle.expire_due(from_timestamp(request.as_of))
        return orders_pb2.ExpireOrdersResponse(expired_count=count)

    async def PurgeExpiredOrders(self, request, context):
        purged = await self.retention.purge(user_cutoffs_from_proto(request.users), request.batch_size)
        return orders_pb2.PurgeExpiredOrdersResponse(
            orders_purged=purged.orders, fills_purged=purged.fills, batches=purged.batches
        )

    async def CancelUserOrders(self, request, context):
        done = await self.lifecycle.cancel_user_orders(request.user_id, request.reason or ACCOUNT_ERASED)
        return orders_pb2.CancelUserOrdersResponse(
            canceled_orders=done.canceled, working_orders=done.working, undelivered_events=done.undelivered_events
        )

    async def GetFill(self, request, context):
        fill, order = await self.reads.get_fill(_fill_id(request.fill_id))
        return orders_pb2.GetFillResponse(fill=wire.fill_to_proto(fill), order=wire.order_to_proto(order))


def _order_id(raw: str) -> str:
    return requested_id(raw, "ord", "order_id", "order")


def _fill_id(raw: str) -> str:
    return requested_id(raw, "fill", "fill_id", "fill")
