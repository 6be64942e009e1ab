"""A submit request as sent: a multi-leg order names its contracts and sides in its legs only,
so an order-level symbol or side is refused (a side was dropped silently before: a user who
sent side sell thinking it made the spread a credit got whatever the legs said)."""

import pytest

from mbt.common.v1 import trading_pb2
from mbt.orders.v1 import orders_pb2
from services.common.errors import DomainError
from services.orders.wire import spec_from_request

LEGS = [
    trading_pb2.OrderLeg(symbol="AMZN120629C00220000", side=trading_pb2.ORDER_SIDE_SELL, ratio=1),
    trading_pb2.OrderLeg(symbol="AMZN120629C00230000", side=trading_pb2.ORDER_SIDE_BUY, ratio=1),
]


def spread(**fields) -> orders_pb2.SubmitOrderRequest:
    return orders_pb2.SubmitOrderRequest(
        legs=LEGS,
        qty="1",
        order_type=trading_pb2.ORDER_TYPE_LIMIT,
        limit_price="-4.00",
        time_in_force=trading_pb2.TIME_IN_FORCE_DAY,
        **fields,
    )


def test_a_multi_leg_order_takes_its_sides_from_its_legs():
    spec = spec_from_request(spread())
    assert [(leg.symbol, leg.side.value) for leg in spec.legs] == [
        ("AMZN120629C00220000", "sell"),
        ("AMZN120629C00230000", "buy"),
    ]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"side": trading_pb2.ORDER_SIDE_SELL}, "side", "no side of its own"),
        ({"side": trading_pb2.ORDER_SIDE_BUY}, "side", "no side of its own"),
        ({"symbol": "AMZN"}, "symbol", "names its contracts in legs"),
    ],
)
def test_an_order_level_side_or_symbol_on_a_multi_leg_order_is_refused(fields, field, words):
    with pytest.raises(DomainError) as refused:
        spec_from_request(spread(**fields))
    assert (refused.value.reason, refused.value.metadata.get("field")) == ("INVALID_ARGUMENT", field)
    assert words in refused.value.message


def test_a_single_leg_order_still_needs_its_side():
    request = orders_pb2.SubmitOrderRequest(
        symbol="AMZN", qty="1", order_type=trading_pb2.ORDER_TYPE_MARKET, time_in_force=trading_pb2.TIME_IN_FORCE_DAY
    )
    with pytest.raises(DomainError) as refused:
        spec_from_request(request)
    assert (refused.value.reason, refused.value.metadata.get("field")) == ("INVALID_ARGUMENT", "side")
