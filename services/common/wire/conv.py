"""Conversions between wire values and domain values: decimal strings, enums, Timestamps,
dates; and the one check of a request's shape that REST (the gateway) and native gRPC (every
service's interceptor) share.

Money and quantities are ``Decimal`` in Python and decimal strings on the wire; a bad
string or an enum value the contract does not define is an ``invalid_argument`` naming the
field, never a crash.

What users see follows one rule per kind of number, here and nowhere else (every
``wire.py`` renders through these):

* amounts of money (cash, buying power, holds, values, cost basis, P&L, activity
  amounts): to the cent, ``"97058.89"``;
* prices: on their grid — an equity's whole cents from $1 and four places below
  (Reg NMS Rule 612, ``"223.95"``, ``"0.1234"``), an option premium's cents; an average
  price is rounded to that grid;
* quantities (shares, contracts, quote sizes): whole numbers, ``"10"``;
* ratios (``unrealized_plpc``): six places;
* contract terms and per-share rates (an option's strike, a dividend per share): exactly,
  at least cents.

Rounding is half away from zero. Values passed between services (events, internal
requests) keep every digit instead: ``decimal_str`` and ``money_str``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, TypeVar, overload

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.type.date_pb2 import Date

from services.common.errors import invalid_argument
from services.common.instruments import is_option_symbol

# Larger magnitudes or more digits than this are refused: no price or quantity needs them.
MAX_INTEGER_DIGITS = 14
MAX_PLACES = 10
# Plain notation only: an optional '-', ASCII digits, optionally '.' and more digits. No
# exponent, sign '+', separator, space or non-ASCII digit: "150.25", never "1.5025e2".
DECIMAL_PATTERN = rf"-?[0-9]{{1,{MAX_INTEGER_DIGITS}}}(\.[0-9]{{1,{MAX_PLACES}}})?"
_DECIMAL = re.compile(DECIMAL_PATTERN)
# The contracts carry money and quantities in string fields; these are those fields, by name.
DECIMAL_FIELD_NAMES = frozenset(
    {
        "qty",
        "price",
        "cash",
        "equity",
        "amount",
        "multiplier",
        "speed",
        "reserved",
        "released",
        "volume",
        "open_interest",
        "buying_power",
        "cost_basis",
        "cash_after",
        "position_qty_after",
    }
)
DECIMAL_FIELD_SUFFIXES = ("_price", "_size", "_qty", "_pl", "_plpc", "_value", "_amount", "_cash", "_delta")

T = TypeVar("T")
# A wire enum: the generated enum class (an ``int``) whose numbers a mapping is keyed by.
E = TypeVar("E", bound=int)


@overload
def parse_decimal(raw: str, field: str, *, required: Literal[True]) -> Decimal: ...
@overload
def parse_decimal(raw: str, field: str, *, required: bool = False) -> Decimal | None: ...
def parse_decimal(raw: str, field: str, *, required: bool = False) -> Decimal | None:
    """A decimal string from the wire (``DECIMAL_PATTERN``: at most 14 integer digits and 10
    decimals); '' is None unless required. ``invalid_argument`` naming ``field`` otherwise."""
    if raw is None or raw == "":
        if required:
            raise invalid_argument(f"{field} is required", field)
        return None
    if not _DECIMAL.fullmatch(raw):
        raise invalid_argument(
            f'{field} must be a decimal string in plain notation like "150.25" (at most '
            f"{MAX_INTEGER_DIGITS} integer digits and {MAX_PLACES} decimals), got {raw[:64]!r}",
            field,
        )
    return Decimal(raw)


@overload
def parse_enum(values: Mapping[E, T], number: E, field: str, *, required: Literal[True] = True) -> T: ...
@overload
def parse_enum(values: Mapping[E, T], number: E, field: str, *, required: bool) -> T | None: ...
def parse_enum(values: Mapping[E, T], number: E, field: str, *, required: bool = True) -> T | None:
    """The domain value of a wire enum number; 0 (unset) is None unless required. A number the
    mapping does not know, including any the contract does not define, is ``invalid_argument``."""
    if number in values:
        return values[number]
    if number == 0 and not required:
        return None
    raise invalid_argument(f"{field} is required" if number == 0 else f"{field} has an unknown value {number}", field)


def is_decimal_field(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_STRING and (
        field.name in DECIMAL_FIELD_NAMES or field.name.endswith(DECIMAL_FIELD_SUFFIXES)
    )


def check_shape(message: Message, path: str = "") -> None:
    """What no request may carry, whoever sent it: an enum value its contract does not
    define, or a malformed decimal string (``invalid_argument`` naming the field). Nested
    messages are checked too."""
    for field, value in message.ListFields():
        name = f"{path}{field.name}"
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    check_shape(item, f"{name}[{key!r}].")
            continue
        items = list(value) if field.is_repeated else [value]
        for index, item in enumerate(items):
            where = f"{name}[{index}]" if field.is_repeated else name
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                check_shape(item, f"{where}.")
            elif field.type == FieldDescriptor.TYPE_ENUM and item not in field.enum_type.values_by_number:
                raise invalid_argument(f"{where} has an unknown value {item}", where)
            elif is_decimal_field(field):
                parse_decimal(item, where)


def decimal_str(value: Decimal | None, places: int | None = None) -> str:
    """Canonical decimal string: plain notation, at least ``places`` decimals when given."""
    if value is None:
        return ""
    exponent = value.as_tuple().exponent
    if places is not None and not isinstance(exponent, int):
        raise ValueError(f"{value} has no places to pad: not a finite decimal")
    if places is not None and isinstance(exponent, int) and exponent > -places:
        value = value.quantize(Decimal(1).scaleb(-places))
    elif places is None:
        value = value.normalize() if value != 0 else Decimal(0)
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def money_str(value: Decimal | None) -> str:
    """Money passed between services: exact, at least cents, more places kept when they are there."""
    return decimal_str(value, 2) if value is not None else ""


CENT = Decimal("0.01")
SUB_DOLLAR_TICK = Decimal("0.0001")
RATIO_PLACES = Decimal("0.000001")


def _rounded(value: Decimal, places: Decimal) -> Decimal:
    rounded = value.quantize(places, ROUND_HALF_UP)
    return rounded.copy_abs() if rounded.is_zero() else rounded  # never "-0.00"


def amount(value: Decimal) -> Decimal:
    """An amount of money as users see it: to the cent."""
    return _rounded(value, CENT)


def on_price_grid(value: Decimal, *, option: bool = False) -> Decimal:
    """A price on its grid: cents for options and for equities from $1, 1/100 cent below."""
    if option:
        return _rounded(value, CENT)
    fine = _rounded(value, SUB_DOLLAR_TICK)
    return fine if abs(fine) < 1 else _rounded(value, CENT)


def amount_str(value: Decimal | None) -> str:
    """An amount of money users see (``amount``); '' for None."""
    return "" if value is None else format(amount(value), "f")


def price_str(value: Decimal | None, *, option: bool = False) -> str:
    """A price users see (``on_price_grid``); '' for None."""
    return "" if value is None else format(on_price_grid(value, option=option), "f")


def symbol_price_str(value: Decimal | None, symbol: str) -> str:
    """A price of ``symbol`` users see: an option's (OCC symbol) in cents, a stock's on its grid."""
    return price_str(value, option=is_option_symbol(symbol))


def qty_str(value: Decimal | None) -> str:
    """A quantity users see: shares, contracts and sizes are whole, ``"10"``. A fraction
    (none exists in v1) is shown exactly rather than rounded away."""
    return decimal_str(value)


def ratio_str(value: Decimal) -> str:
    """A ratio users see (``0.012345`` is 1.2345 %): six places."""
    return format(_rounded(value, RATIO_PLACES), "f")


def to_timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


@overload
def from_timestamp(ts: Timestamp | None, field: str, *, required: Literal[True]) -> datetime: ...
@overload
def from_timestamp(ts: Timestamp | None, field: str = "timestamp", *, required: bool = False) -> datetime | None: ...
def from_timestamp(ts: Timestamp | None, field: str = "timestamp", *, required: bool = False) -> datetime | None:
    """None for an unset Timestamp (all zero); ``invalid_argument`` naming ``field`` instead
    when it is required."""
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        if required:
            raise invalid_argument(f"{field} is required", field)
        return None
    return ts.ToDatetime(tzinfo=UTC)


def timestamp_ns(ts: Timestamp) -> int:
    return ts.seconds * 1_000_000_000 + ts.nanos


def timestamp_from_ns(ns: int) -> Timestamp:
    return Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


def datetime_from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(microsecond=(ns % 1_000_000_000) // 1000)


def datetime_to_ns(value: datetime) -> int:
    value = value.astimezone(UTC)
    return int(value.replace(microsecond=0).timestamp()) * 1_000_000_000 + value.microsecond * 1000


def to_date(value: date | None) -> Date | None:
    return None if value is None else Date(year=value.year, month=value.month, day=value.day)


@overload
def from_date(value: Date | None, field: str, *, required: Literal[True]) -> date: ...
@overload
def from_date(value: Date | None, field: str = "date", *, required: bool = False) -> date | None: ...
def from_date(value: Date | None, field: str = "date", *, required: bool = False) -> date | None:
    """None for an unset Date (all zero), ``invalid_argument`` naming ``field`` instead when it
    is required or is no calendar date."""
    if value is None or (value.year == 0 and value.month == 0 and value.day == 0):
        if required:
            raise invalid_argument(f"{field} is required", field)
        return None
    try:
        return date(value.year, value.month, value.day)
    except ValueError:
        raise invalid_argument(f"{field} is not a valid date", field) from None
