"""Conversions between wire values and domain values: decimal strings, Timestamps, dates.

Money and quantities are ``Decimal`` in Python and decimal strings on the wire; a bad
string is an ``invalid_argument`` naming the field, never a crash.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation

from google.protobuf.timestamp_pb2 import Timestamp
from google.type.date_pb2 import Date

from services.common.errors import invalid_argument

# Larger magnitudes or more digits than this are refused: no price or quantity needs them.
MAX_DIGITS = 24
MAX_PLACES = 10


def parse_decimal(raw: str, field: str, *, required: bool = False) -> Decimal | None:
    """A decimal string from the wire; '' is None unless required."""
    if raw is None or raw == "":
        if required:
            raise invalid_argument(f"{field} is required", field)
        return None
    text = raw.strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise invalid_argument(f"{field} must be a decimal string like \"150.25\", got {raw!r}", field) from None
    if not value.is_finite():
        raise invalid_argument(f"{field} must be a finite number", field)
    if value != 0 and (value.adjusted() >= MAX_DIGITS - MAX_PLACES
                       or -value.normalize().as_tuple().exponent > MAX_PLACES):
        raise invalid_argument(f"{field} is out of range (at most {MAX_DIGITS - MAX_PLACES} integer digits "
                               f"and {MAX_PLACES} decimals)", field)
    return value


def decimal_str(value: Decimal | None, places: int | None = None) -> str:
    """Canonical decimal string: plain notation, at least ``places`` decimals when given."""
    if value is None:
        return ""
    if places is not None and value.as_tuple().exponent > -places:
        value = value.quantize(Decimal(1).scaleb(-places))
    elif places is None:
        value = value.normalize() if value != 0 else Decimal(0)
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def money_str(value: Decimal | None) -> str:
    """Money: at least cents, more places kept when they are there."""
    return decimal_str(value, 2) if value is not None else ""


def to_timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(timezone.utc))
    return ts


def from_timestamp(ts: Timestamp | None) -> datetime | None:
    """None for an unset Timestamp (all zero)."""
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=timezone.utc)


def timestamp_ns(ts: Timestamp) -> int:
    return ts.seconds * 1_000_000_000 + ts.nanos


def timestamp_from_ns(ns: int) -> Timestamp:
    return Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


def datetime_from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, timezone.utc).replace(microsecond=(ns % 1_000_000_000) // 1000)


def datetime_to_ns(value: datetime) -> int:
    value = value.astimezone(timezone.utc)
    return int(value.replace(microsecond=0).timestamp()) * 1_000_000_000 + value.microsecond * 1000


def to_date(value: date | None) -> Date | None:
    return None if value is None else Date(year=value.year, month=value.month, day=value.day)


def from_date(value: Date | None, field: str = "date") -> date | None:
    if value is None or (value.year == 0 and value.month == 0 and value.day == 0):
        return None
    try:
        return date(value.year, value.month, value.day)
    except ValueError:
        raise invalid_argument(f"{field} is not a valid date", field) from None
