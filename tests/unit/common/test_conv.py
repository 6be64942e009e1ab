from datetime import datetime, timezone
from decimal import Decimal

import pytest

from services.common.conv import (datetime_from_ns, datetime_to_ns, decimal_str, from_timestamp, money_str,
                                  parse_decimal, to_timestamp)
from services.common.errors import DomainError


@pytest.mark.parametrize("raw, expected", [("150.25", Decimal("150.25")), (" 10 ", Decimal("10")),
                                           ("0.0001", Decimal("0.0001")), ("-3", Decimal("-3"))])
def test_parse_decimal_accepts_decimal_strings(raw, expected):
    assert parse_decimal(raw, "price") == expected


@pytest.mark.parametrize("raw", ["abc", "1e999999", "NaN", "Infinity", "1" * 30, "0.00000000001", "1,5"])
def test_parse_decimal_refuses_garbage_and_extremes_with_the_field_name(raw):
    with pytest.raises(DomainError) as err:
        parse_decimal(raw, "limit_price")
    assert err.value.reason == "INVALID_ARGUMENT"
    assert err.value.metadata["field"] == "limit_price"


def test_parse_decimal_empty_is_none_unless_required():
    assert parse_decimal("", "qty") is None
    with pytest.raises(DomainError):
        parse_decimal("", "qty", required=True)


def test_decimal_formatting_is_plain_and_exact():
    assert decimal_str(Decimal("1E+2")) == "100"
    assert decimal_str(Decimal("150.2500")) == "150.25"
    assert money_str(Decimal("10000")) == "10000.00"
    assert money_str(Decimal("0.125")) == "0.125"
    assert decimal_str(Decimal("-0")) == "0"


def test_timestamps_round_trip_and_unset_is_none():
    moment = datetime(2012, 6, 21, 13, 30, 0, 17459, tzinfo=timezone.utc)
    assert from_timestamp(to_timestamp(moment)) == moment
    assert from_timestamp(to_timestamp(None)) is None


def test_nanosecond_times_keep_microseconds():
    ns = 1340285400017459617
    assert datetime_from_ns(ns) == datetime(2012, 6, 21, 13, 30, 0, 17459, tzinfo=timezone.utc)
    assert datetime_to_ns(datetime_from_ns(ns)) == 1340285400017459000
