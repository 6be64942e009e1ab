"""Native gRPC refuses what REST refuses: the services check every request with the same
decimal parser and enum check as the gateway (``services.common.wire.conv``), and a message that
does not decode (a string that is not UTF-8) is bad input too — each an INVALID_ARGUMENT
naming the field, before anything is stored."""

import grpc
import pytest

from mbt.activities.v1 import activities_pb2
from mbt.common.v1 import trading_pb2
from mbt.orders.v1 import orders_pb2
from services.common.rpc.remote import error_info
from tests.conftest import BACKENDS
from tests.support.databases import DatabaseFactory
from tests.support.hostile import MALFORMED_DECIMALS
from tests.support.identity import as_user
from tests.support.trading import Trading, start_trading_mesh

GOOD_ORDER = {
    "symbol": "AMZN",
    "side": trading_pb2.ORDER_SIDE_BUY,
    "qty": "1",
    "order_type": trading_pb2.ORDER_TYPE_LIMIT,
    "limit_price": "1.00",
    "time_in_force": trading_pb2.TIME_IN_FORCE_GTC,
}
SUBMIT = "/mbt.orders.v1.OrdersService/SubmitOrder"
USER = "native-input"


@pytest.fixture(scope="module", params=BACKENDS)
async def trading(request, tmp_path_factory):
    databases = DatabaseFactory(request.param, tmp_path_factory.mktemp("mesh"))
    mesh = await start_trading_mesh(databases, tmp_path_factory.mktemp("data"))
    trading = Trading(mesh)
    yield trading
    await trading.close()
    await mesh.stop()
    databases.drop_all()


async def refusal(call) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    info = error_info(caught.value)
    return caught.value.code(), info.reason, info.metadata.get("field", "")


async def orders_of(trading: Trading, user: str) -> list:
    reply = await trading.orders().ListOrders(orders_pb2.ListOrdersRequest(), metadata=as_user(user))
    return list(reply.orders)


def submit(**changes) -> orders_pb2.SubmitOrderRequest:
    return orders_pb2.SubmitOrderRequest(**{**GOOD_ORDER, **changes})


@pytest.mark.parametrize("bad", MALFORMED_DECIMALS)
async def test_a_malformed_decimal_is_refused_on_submit_and_replace(trading, bad):
    user = f"{USER}-decimal-{MALFORMED_DECIMALS.index(bad)}"
    for field in ("qty", "limit_price"):
        submitted = trading.orders().SubmitOrder(
            submit(client_order_id=f"c-{field}", **{field: bad}), metadata=as_user(user)
        )
        assert await refusal(submitted) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", field)
    assert await orders_of(trading, user) == []
    order = (await trading.orders().SubmitOrder(submit(client_order_id="good"), metadata=as_user(user))).order
    replaced = trading.orders().ReplaceOrder(
        orders_pb2.ReplaceOrderRequest(order_id=order.order_id, qty=bad), metadata=as_user(user)
    )
    assert await refusal(replaced) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "qty")
    [still] = await orders_of(trading, user)
    assert (still.version, still.qty) == (1, "1")


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"fill_preference": 99}, "fill_preference"),
        ({"side": 7}, "side"),
        ({"order_type": 42}, "order_type"),
        ({"time_in_force": -1}, "time_in_force"),
        ({"asset_class": 9}, "asset_class"),
        ({"legs": [trading_pb2.OrderLeg(symbol="X", side=5, ratio=1)]}, "legs[0].side"),
    ],
)
async def test_an_enum_value_the_contract_does_not_define_is_refused(trading, changes, field):
    user = f"{USER}-enum-{field}"
    submitted = trading.orders().SubmitOrder(submit(client_order_id="c-1", **changes), metadata=as_user(user))
    assert await refusal(submitted) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", field)
    assert await orders_of(trading, user) == []


async def test_unknown_enum_values_are_refused_on_reads_too(trading):
    listed = trading.orders().ListOrders(orders_pb2.ListOrdersRequest(status=55), metadata=as_user(USER))
    assert await refusal(listed) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "status")
    activities = trading.activities().ListActivities(
        activities_pb2.ListActivitiesRequest(activity_type=77), metadata=as_user(USER)
    )
    assert (await refusal(activities))[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")


@pytest.mark.parametrize("raw", [b"\xed\xa0\x80", b"\xff", b"a\xc0\xafb"], ids=["lone surrogate", "xff", "overlong"])
async def test_a_string_that_is_not_utf8_is_invalid_argument_not_a_crash(trading, raw):
    user = f"{USER}-utf8-{raw.hex()}"
    good = submit(client_order_id="PLACEHOLDER").SerializeToString()
    payload = good.replace(bytes([len("PLACEHOLDER")]) + b"PLACEHOLDER", bytes([len(raw)]) + raw)
    assert payload != good
    call = trading.channel("orders").unary_unary(
        SUBMIT, request_serializer=lambda b: b, response_deserializer=orders_pb2.SubmitOrderResponse.FromString
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(payload, metadata=as_user(user), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).reason == "INVALID_ARGUMENT"
    assert await orders_of(trading, user) == []
