"""The trading vocabulary every service shares (pure): sides, order types, times in force and
asset classes. Values are the short lower-case REST spelling, also used in rule ids; member
names match the proto value suffixes (ORDER_TYPE_STOP_LIMIT -> STOP_LIMIT)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from services.common.errors import invalid_argument


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
    # An index level (^VIX): market data describes it, it prices and settles options, and no
    # order or position is ever on it.
    INDEX = "index"


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


def resolve_intent(
    side: Side, qty: Decimal, intent: PositionIntent | None, position_qty: Decimal, field: str = "position_intent"
) -> PositionIntent:
    """The position intent of an order for ``qty`` contracts on ``side``, given the account's
    signed position in that contract (negative when short).

    When ``intent`` is omitted it is inferred: closing when the order reduces an existing
    position (a sell while long, a buy while short), opening otherwise. Refused with
    ``invalid_argument`` naming ``field``: an intent of the other side; closing more than is
    held, or a position that does not exist (one order never closes and reopens across zero:
    send the opening part as its own order); opening in the direction that would reduce an
    opposite position (close it first)."""
    reduces = position_qty < 0 if side is Side.BUY else position_qty > 0
    if intent is None:
        intent = _closing(side) if reduces else _opening(side)
    if intent.side is not side:
        raise invalid_argument(f"{field} {intent.value} is for a {intent.side.value} order, not a {side.value}", field)
    held = abs(position_qty)
    if intent.closing and not reduces:
        raise invalid_argument(
            f"{field} {intent.value}: there is no {'short' if side is Side.BUY else 'long'} position to close", field
        )
    if intent.closing and qty > held:
        raise invalid_argument(
            f"{field} {intent.value} closes at most the {held.normalize():f} contracts held; "
            f"open the rest with {_opening(side).value} in a separate order",
            field,
        )
    if not intent.closing and reduces:
        raise invalid_argument(
            f"{field} {intent.value} would reduce the {held.normalize():f} contracts held "
            f"{'short' if side is Side.BUY else 'long'}; use {_closing(side).value}",
            field,
        )
    return intent


def _opening(side: Side) -> PositionIntent:
    return PositionIntent.BUY_TO_OPEN if side is Side.BUY else PositionIntent.SELL_TO_OPEN


def _closing(side: Side) -> PositionIntent:
    return PositionIntent.BUY_TO_CLOSE if side is Side.BUY else PositionIntent.SELL_TO_CLOSE
