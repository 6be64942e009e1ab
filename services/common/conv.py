"""Conversions between wire values and domain values: decimal strings, Timestamps, dates.

Money and quantities are ``Decimal`` in Python and decimal strings on the wire; a bad
string is an ``invalid_argument`` naming the field, never a crash.

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

from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

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
