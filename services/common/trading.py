"""The trading vocabulary every service shares (pure): sides, order types, times in force and
asset classes. Values are the short lower-case REST spelling, also used in rule ids; member
names match the proto value suffixes (ORDER_TYPE_STOP_LIMIT -> STOP_LIMIT)."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class AssetClass(StrEnum):
    US_EQUITY = "us_equity"
    US_OPTION = "us_option"


class PositionIntent(StrEnum):
    """Whether an option order opens or closes a position (Alpaca's ``position_intent``)."""

    BUY_TO_OPEN = "buy_to_open"
    BUY_TO_CLOSE = "buy_to_close"
    SELL_TO_OPEN = "sell_to_open"
    SELL_TO_CLOSE = "sell_to_close"

    @property
    def side(self) -> Side:
        return Side.BUY if self in (PositionIntent.BUY_TO_OPEN, PositionIntent.BUY_TO_CLOSE) else Side.SELL

    @property
    def closing(self) -> bool:
        return self in (PositionIntent.BUY_TO_CLOSE, PositionIntent.SELL_TO_CLOSE)


class FillPreference(StrEnum):
    """How a multi-leg options order is priced (DESIGN §6)."""

    CONSERVATIVE = "conservative"  # the natural price
    MID = "mid"  # the net mid
    AGGRESSIVE = "aggressive"  # the net mid, and on touch within one tick
