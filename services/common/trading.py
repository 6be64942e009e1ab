"""The trading vocabulary every service shares (pure): sides, order types, times in force and
asset classes. Values are the short lower-case REST spelling, also used in rule ids; member
names match the proto value suffixes (ORDER_TYPE_STOP_LIMIT -> STOP_LIMIT)."""

from __future__ import annotations

from enum import Enum


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"


class OrderType(str, Enum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(str, Enum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class AssetClass(str, Enum):
    US_EQUITY = "us_equity"
    US_OPTION = "us_option"
