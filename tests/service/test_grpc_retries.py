"""MBT's channels repeat a call that ends UNAVAILABLE only when repeating it cannot change
the outcome: reads and the calls the contracts mark idempotent; a submit, a replace or a
clock step is tried once."""

import grpc
import pytest

from mbt.accounts.v1 import accounts_pb2
from mbt.marketdata.v1 import marketdata_pb2
from mbt.orders.v1 import orders_pb2
from services.common.rpc.channels import open_channel

CALLS = {
    "/mbt.orders.v1.OrdersService/RecordFill": (orders_pb2.RecordFillRequest, orders_pb2.RecordFillResponse),
    "/mbt.accounts.v1.AccountsService/ReserveBuyingPower": (
        accounts_pb2.ReserveBuyingPowerRequest,
        accounts_pb2.ReserveBuyingPowerResponse,
    ),
    "/mbt.orders.v1.OrdersService/GetOrder": (orders_pb2.GetOrderRequest, orders_pb2.GetOrderResponse),
    "/mbt.orders.v1.OrdersService/SubmitOrder": (orders_pb2.SubmitOrderRequest, orders_pb2.SubmitOrderResponse),
    "/mbt.orders.v1.OrdersService/ReplaceOrder": (orders_pb2.ReplaceOrderRequest, orders_pb2.ReplaceOrderResponse),
    "/mbt.marketdata.v1.MarketDataService/StepClock": (
        marketdata_pb2.StepClockRequest,
        marketdata_pb2.StepClockResponse,
    ),
}


class FailsOnce(grpc.GenericRpcHandler):
    """Answers every call UNAVAILABLE the first time, then succeeds; counts attempts."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}

    def service(self, details):
        if details.method not in CALLS:
            return None
        request_class, response_class = CALLS[details.method]

        async def handle(request, context):
            self.attempts[details.method] = self.attempts.get(details.method, 0) + 1
            if self.attempts[details.method] == 1:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
            return response_class()

        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=request_class.FromString, response_serializer=response_class.SerializeToString
        )


@pytest.fixture
async def upstream():
    handler = FailsOnce()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = open_channel(f"127.0.0.1:{port}")
    yield handler, channel
    await channel.close()
    await server.stop(0)


async def call(channel, method: str):
    request_class, response_class = CALLS[method]
    stub = channel.unary_unary(
        method, request_serializer=request_class.SerializeToString, response_deserializer=response_class.FromString
    )
    return await stub(request_class(), timeout=10)


@pytest.mark.parametrize(
    "method",
    [
        "/mbt.orders.v1.OrdersService/RecordFill",
        "/mbt.accounts.v1.AccountsService/ReserveBuyingPower",
        "/mbt.orders.v1.OrdersService/GetOrder",
    ],
)
async def test_an_idempotent_call_is_repeated_after_unavailable(upstream, method):
    handler, channel = upstream
    await call(channel, method)
    assert handler.attempts[method] == 2


@pytest.mark.parametrize(
    "method",
    [
        "/mbt.orders.v1.OrdersService/SubmitOrder",
        "/mbt.orders.v1.OrdersService/ReplaceOrder",
        "/mbt.marketdata.v1.MarketDataService/StepClock",
    ],
)
async def test_a_call_that_may_change_state_twice_is_tried_once(upstream, method):
    handler, channel = upstream
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call(channel, method)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert handler.attempts[method] == 1
