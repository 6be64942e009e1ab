from datetime import UTC, datetime

import pytest

from gateway.transcoding import InvalidInput, json_to_message, message_to_json, set_path
from mbt.accounts.v1 import accounts_pb2
from mbt.common.v1 import trading_pb2
from mbt.marketdata.v1 import marketdata_pb2
from mbt.orders.v1 import orders_pb2
from services.common.wire.conv import is_decimal_field, to_timestamp


def test_enums_are_short_lower_case_and_unspecified_is_null():
    order = orders_pb2.Order(
        order_type=trading_pb2.ORDER_TYPE_STOP_LIMIT,
        side=trading_pb2.ORDER_SIDE_BUY,
        time_in_force=trading_pb2.TIME_IN_FORCE_GTC,
        status=orders_pb2.ORDER_STATUS_ACCEPTED,
    )
    data = message_to_json(order)
    assert (data["order_type"], data["side"], data["time_in_force"], data["status"]) == (
        "stop_limit",
        "buy",
        "gtc",
        "accepted",
    )
    assert data["fill_preference"] is None
    assert data["asset_class"] is None


def test_output_has_every_field_with_proto_names_and_rfc3339_times():
    order = orders_pb2.Order(
        order_id="ord_1", qty="10", created_at=to_timestamp(datetime(2012, 6, 21, 13, 30, tzinfo=UTC))
    )
    data = message_to_json(order)
    assert set(data) == {f.name for f in orders_pb2.Order.DESCRIPTOR.fields}
    assert data["created_at"] == "2012-06-21T13:30:00Z"
    assert data["filled_at"] is None
    assert data["limit_price"] is None
    assert data["fills"] == []
    assert data["qty"] == "10"


def test_dates_render_as_iso_dates():
    day = marketdata_pb2.TradingDay(date={"year": 2012, "month": 6, "day": 21})
    assert message_to_json(day)["date"] == "2012-06-21"


def test_a_valid_body_parses_with_short_enum_names():
    request = json_to_message(
        {
            "symbol": "AMZN",
            "side": "buy",
            "qty": "10",
            "order_type": "limit",
            "time_in_force": "day",
            "limit_price": "220.50",
            "legs": [{"symbol": "X", "side": "SELL", "ratio": 1}],
        },
        orders_pb2.SubmitOrderRequest(),
    )
    assert request.side == trading_pb2.ORDER_SIDE_BUY
    assert request.order_type == trading_pb2.ORDER_TYPE_LIMIT
    assert request.legs[0].side == trading_pb2.ORDER_SIDE_SELL
    assert request.limit_price == "220.50"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"bogus": 1}, "bogus"),
        ({"qty": 10}, "qty"),
        ({"qty": 10.5}, "qty"),
        ({"side": "sideways"}, "side"),
        ({"side": 1}, "side"),
        ({"legs": {"symbol": "X"}}, "legs"),
        ({"legs": [{"ratio": "two"}]}, "legs[0].ratio"),
        ({"legs": [{"ratio": 2**40}]}, "legs[0].ratio"),
        ({"legs": [{"ratio": True}]}, "legs[0].ratio"),
        ({"legs": ["x"]}, "legs[0]"),
        ({"symbol": "A" * 5000}, "symbol"),
    ],
)
def test_bad_bodies_name_the_field(body, field):
    with pytest.raises(InvalidInput) as err:
        json_to_message(body, orders_pb2.SubmitOrderRequest())
    assert err.value.field == field


def test_the_body_must_be_an_object():
    with pytest.raises(InvalidInput):
        json_to_message([1, 2], orders_pb2.SubmitOrderRequest())


def test_query_parameters_use_json_names_and_parse_times_and_dates():
    request = accounts_pb2.GetPnlRequest()
    set_path(request, "from", ["2012-06-21"], from_query=True)
    set_path(request, "to", ["2012-06-21T20:00:00Z"], from_query=True)
    assert request.from_time.ToJsonString() == "2012-06-21T00:00:00Z"
    assert request.to_time.ToJsonString() == "2012-06-21T20:00:00Z"


@pytest.mark.parametrize("name, value", [("from", "yesterday"), ("to", "2012-13-45"), ("nope", "1")])
def test_bad_query_parameters_are_refused(name, value):
    with pytest.raises(InvalidInput):
        set_path(accounts_pb2.GetPnlRequest(), name, [value], from_query=True)


def test_repeated_query_parameters_accept_repeats_and_commas():
    request = marketdata_pb2.GetLatestQuotesRequest()
    set_path(request, "symbols", ["AMZN,GOOG", "SPY"], from_query=True)
    assert list(request.symbols) == ["AMZN", "GOOG", "SPY"]


def test_money_and_quantity_fields_are_known_as_decimals():
    fields = {
        **orders_pb2.Order.DESCRIPTOR.fields_by_name,
        **accounts_pb2.Account.DESCRIPTOR.fields_by_name,
        **accounts_pb2.Position.DESCRIPTOR.fields_by_name,
        **marketdata_pb2.Quote.DESCRIPTOR.fields_by_name,
    }
    decimals = {name for name, field in fields.items() if is_decimal_field(field)}
    assert {
        "qty",
        "limit_price",
        "stop_price",
        "filled_avg_price",
        "multiplier",
        "cash",
        "buying_power",
        "equity",
        "unrealized_plpc",
        "long_market_value",
        "bid_price",
        "ask_size",
    } <= decimals
    assert not decimals & {"order_id", "symbol", "client_order_id", "currency", "reject_reason", "user_id"}


@pytest.mark.parametrize(
    "raw, ok",
    [
        ("150.25", True),
        ("-3", True),
        ("", True),
        ("1e5", False),
        ("NaN", False),
        (" 1", False),
        ("1.", False),
        ("٣", False),
        ("1" * 15, False),
    ],
)
def test_decimal_strings_must_be_plain_and_bounded(raw, ok):
    message = orders_pb2.SubmitOrderRequest()
    if ok:
        json_to_message({"qty": raw}, message)
        assert message.qty == raw
    else:
        with pytest.raises(InvalidInput, match="decimal string"):
            json_to_message({"qty": raw}, message)
