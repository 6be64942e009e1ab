from datetime import UTC, datetime
from decimal import Decimal

import pytest

from mbt.common.v1 import trading_pb2
from mbt.orders.v1 import orders_pb2
from services.common.errors import DomainError
from services.common.wire.conv import (
    amount_str,
    check_shape,
    datetime_from_ns,
    datetime_to_ns,
    decimal_str,
    from_timestamp,
    money_str,
    parse_decimal,
    parse_enum,
    price_str,
    qty_str,
    ratio_str,
    to_timestamp,
)
from tests.support.hostile import MALFORMED_DECIMALS


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("150.25", Decimal("150.25")),
        ("10", Decimal("10")),
        ("0.0001", Decimal("0.0001")),
        ("-3", Decimal("-3")),
        ("12345678901234.0123456789", Decimal("12345678901234.0123456789")),
    ],
)
def test_parse_decimal_accepts_decimal_strings(raw, expected):
    assert parse_decimal(raw, "price") == expected


@pytest.mark.parametrize("raw", MALFORMED_DECIMALS)
def test_parse_decimal_refuses_garbage_and_extremes_with_the_field_name(raw):
    with pytest.raises(DomainError) as err:
        parse_decimal(raw, "limit_price")
    assert err.value.reason == "INVALID_ARGUMENT"
    assert err.value.metadata["field"] == "limit_price"


@pytest.mark.parametrize("number, expected", [(1, "buy"), (2, "sell"), (0, None)])
def test_parse_enum_maps_known_numbers_and_unset(number, expected):
    assert parse_enum({1: "buy", 2: "sell"}, number, "side", required=False) == expected


@pytest.mark.parametrize("number", [7, 99, -1, 0])
def test_parse_enum_refuses_unknown_and_missing_required_values_naming_the_field(number):
    with pytest.raises(DomainError) as err:
        parse_enum({1: "buy", 2: "sell"}, number, "side")
    assert (err.value.reason, err.value.metadata["field"]) == ("INVALID_ARGUMENT", "side")


@pytest.mark.parametrize(
    "request_message, field",
    [
        (orders_pb2.SubmitOrderRequest(fill_preference=99), "fill_preference"),
        (orders_pb2.SubmitOrderRequest(side=7), "side"),
        (
            orders_pb2.SubmitOrderRequest(legs=[trading_pb2.OrderLeg(side=1), trading_pb2.OrderLeg(side=9)]),
            "legs[1].side",
        ),
        (orders_pb2.SubmitOrderRequest(qty="1e3"), "qty"),
        (orders_pb2.ReplaceOrderRequest(limit_price=" 1 "), "limit_price"),
        (orders_pb2.RecordFillRequest(fill=orders_pb2.Fill(price="1_000")), "fill.price"),
    ],
)
def test_check_shape_refuses_undefined_enums_and_malformed_decimals_anywhere_in_a_request(request_message, field):
    with pytest.raises(DomainError) as err:
        check_shape(request_message)
    assert (err.value.reason, err.value.metadata["field"]) == ("INVALID_ARGUMENT", field)


def test_check_shape_accepts_a_well_formed_request():
    check_shape(
        orders_pb2.SubmitOrderRequest(
            symbol="AMZN",
            side=trading_pb2.ORDER_SIDE_BUY,
            qty="10",
            limit_price="220.00",
            fill_preference=0,
            legs=[trading_pb2.OrderLeg(side=trading_pb2.ORDER_SIDE_SELL)],
        )
    )


def test_parse_decimal_empty_is_none_unless_required():
    assert parse_decimal("", "qty") is None
    with pytest.raises(DomainError) as err:
        parse_decimal("", "qty", required=True)
    assert (err.value.reason, err.value.metadata["field"]) == ("INVALID_ARGUMENT", "qty")


def test_values_between_services_are_plain_and_exact():
    assert decimal_str(Decimal("1E+2")) == "100"
    assert decimal_str(Decimal("150.2500")) == "150.25"
    assert money_str(Decimal("10000")) == "10000.00"
    assert money_str(Decimal("0.125")) == "0.125"
    assert decimal_str(Decimal("-0")) == "0"


@pytest.mark.parametrize(
    "value, shown",
    [
        ("0.000", "0.00"),
        ("1789.17000", "1789.17"),
        ("-0.2100", "-0.21"),
        ("97058.89", "97058.89"),
        ("100000", "100000.00"),
        ("0.125", "0.13"),
        ("-0.125", "-0.13"),
        ("-0.004", "0.00"),
        ("1E+3", "1000.00"),
        ("2239.4999999999", "2239.50"),
    ],
)
def test_amounts_users_see_are_to_the_cent(value, shown):
    assert amount_str(Decimal(value)) == shown


@pytest.mark.parametrize(
    "value, equity, option",
    [
        ("223.95", "223.95", "223.95"),
        ("223.1800", "223.18", "223.18"),
        ("223.8571428571", "223.86", "223.86"),
        ("1", "1.00", "1.00"),
        ("0.1234", "0.1234", "0.12"),
        ("0.05", "0.0500", "0.05"),
        ("0.99996", "1.00", "1.00"),
        ("0.123456", "0.1235", "0.12"),
    ],
)
def test_prices_users_see_are_on_their_grid(value, equity, option):
    assert (price_str(Decimal(value)), price_str(Decimal(value), option=True)) == (equity, option)


def test_quantities_are_whole_and_ratios_have_six_places():
    assert [qty_str(Decimal(v)) for v in ("10", "10.000", "1E+2", "-5", "0")] == ["10", "10", "100", "-5", "0"]
    assert [ratio_str(Decimal(v)) for v in ("-0.00093862", "0", "0.5")] == ["-0.000939", "0.000000", "0.500000"]
    assert (amount_str(None), price_str(None), qty_str(None)) == ("", "", "")


def test_timestamps_round_trip_and_unset_is_none():
    moment = datetime(2012, 6, 21, 13, 30, 0, 17459, tzinfo=UTC)
    assert from_timestamp(to_timestamp(moment)) == moment
    assert from_timestamp(to_timestamp(None)) is None


def test_nanosecond_times_keep_microseconds():
    ns = 1340285400017459617
    assert datetime_from_ns(ns) == datetime(2012, 6, 21, 13, 30, 0, 17459, tzinfo=UTC)
    assert datetime_to_ns(datetime_from_ns(ns)) == 1340285400017459000
