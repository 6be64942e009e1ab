"""The strategy API of a backtest: callbacks on the simulated clock, and the calls a
strategy makes through its Context (submit, cancel and replace take the live API's fields
and go through its validation).

    class Breakout(Strategy):
        symbols = ("AMZN",)

        def on_start(self, ctx):
            ctx.submit(symbol="AMZN", side="buy", qty="10", order_type="stop", stop_price="225.00",
                       time_in_force="day")

        def on_fill(self, ctx, fill):
            ctx.submit(symbol=fill.symbol, side="sell", qty=fill.qty, order_type="limit",
                       limit_price=fill.price + 1, time_in_force="gtc")

Callbacks run in simulated time, one at a time: ``on_start`` at the start, ``on_fill`` after
each fill (in the order the fills happened), ``on_session_close`` at every regular close
(after day orders expired), ``on_quote`` on every quote of the symbols listed in
``quotes`` (every tick: leave it empty unless the strategy needs them), and what
``ctx.schedule(at, callback)`` asked for. An exception in a callback ends the backtest
with that error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message

from mbt.common.v1 import trading_pb2
from mbt.orders.v1 import orders_pb2
from services.common.errors import invalid_argument
from services.common.instruments import SymbolSpec
from services.common.wire.conv import parse_decimal
from services.matcher.backtest.ledger import AccountView, FillRecord, OrderRecord
from services.matcher.domain import Tick

_ENUMS: dict[str, EnumTypeWrapper] = {
    "side": trading_pb2.OrderSide,
    "order_type": trading_pb2.OrderType,
    "time_in_force": trading_pb2.TimeInForce,
    "asset_class": trading_pb2.AssetClass,
    "position_intent": trading_pb2.PositionIntent,
}
_ENUM_PREFIXES = {
    "side": "ORDER_SIDE_",
    "order_type": "ORDER_TYPE_",
    "time_in_force": "TIME_IN_FORCE_",
    "asset_class": "ASSET_CLASS_",
    "position_intent": "POSITION_INTENT_",
}
_TEXT_FIELDS = frozenset({"client_order_id", "symbol", "order_id"})


@dataclass(frozen=True)
class OptionQuotes:
    """Option contracts a strategy wants quotes of: ``underlying``'s listed contracts (the
    model's grid, README "Options") of ``option_type`` (``"call"``, ``"put"``, or both when
    empty) with strikes from ``strikes_from`` to ``strikes_to`` (fractions: -0.05 is 5%
    below the underlying's reference price), expiring by ``days_after`` days after the
    window's last day, each quoted from the midnight ``days_before`` its expiry (the model
    prices every followed contract at every underlying tick: ask for what you trade). With
    ``contract`` (an OCC symbol), that one contract alone, from the window's start."""

    underlying: str
    option_type: str = ""
    strikes_from: Decimal = Decimal("-0.10")
    strikes_to: Decimal = Decimal("0.10")
    days_after: int = 7
    days_before: int = 35
    contract: str = ""


class Context(Protocol):
    """What a strategy sees and does. Times are UTC; ``now`` is the simulated clock."""

    @property
    def now(self) -> datetime: ...

    @property
    def now_ns(self) -> int: ...

    @property
    def account(self) -> AccountView: ...

    def quote(self, symbol: str) -> Tick | None:
        """The latest quote of ``symbol`` (None before its first)."""

    def submit(self, **fields) -> OrderRecord:
        """SubmitOrder's fields (``symbol``, ``side``, ``qty``, ``order_type``,
        ``time_in_force``, ``limit_price``, ``stop_price``, ``client_order_id``, and for an
        option contract ``position_intent``, e.g. ``"sell_to_open"``); decimals as
        strings, Decimals or ints; enums short (``"buy"``, ``"stop_limit"``). Raises
        DomainError as the API refuses (invalid_argument, market_closed, stale_quote,
        insufficient_buying_power, ...)."""

    def cancel(self, order_id: str) -> OrderRecord: ...

    def replace(self, order_id: str, **fields) -> OrderRecord:
        """ReplaceOrder's fields: ``qty``, ``limit_price``, ``stop_price``, ``time_in_force``."""

    def order(self, order_id: str) -> OrderRecord: ...

    def option_contracts(self, underlying: str) -> list[SymbolSpec]:
        """The option contracts of ``underlying`` the feed quotes (``Strategy.options``)
        that still trade now, by expiry, strike and type."""

    def open_orders(self, symbol: str | None = None) -> list[OrderRecord]: ...

    def next_session(self) -> tuple[int, int]:
        """(open, close) in epoch ns of the first regular session that closes after now."""

    def schedule(self, at: datetime | int, callback: Callable[[Context], None]) -> None:
        """Call ``callback(ctx)`` at ``at`` (a datetime or epoch ns, not in the past), after
        every quote up to that time."""


class Strategy:
    """Base class: override the callbacks you need. ``params`` are the run's parameters
    (strings, from the CLI's ``--param`` or the REST request)."""

    name = ""
    description = ""
    symbols: tuple[str, ...] = ()  # the symbols it trades; the feed is limited to them
    quotes: tuple[str, ...] = ()  # symbols whose every quote calls on_quote
    account_type: str | None = None  # the account it needs ("cash", "margin") unless the run says
    options: tuple[OptionQuotes, ...] = ()  # option contracts the feed carries model quotes of

    def __init__(self, params: Mapping[str, str] | None = None) -> None:
        self.params = dict(params or {})

    def param(self, name: str, default: str) -> str:
        return self.params.get(name, default)

    def decimal_param(self, name: str, default: str) -> Decimal:
        return parse_decimal(self.param(name, default), name, required=True)

    def on_start(self, ctx: Context) -> None:
        pass

    def on_fill(self, ctx: Context, fill: FillRecord) -> None:
        pass

    def on_session_close(self, ctx: Context, day: date) -> None:
        pass

    def on_quote(self, ctx: Context, tick: Tick) -> None:
        pass


def submit_request(fields: Mapping[str, object]) -> orders_pb2.SubmitOrderRequest:
    """SubmitOrderRequest from a strategy's keyword arguments or a script's JSON object."""
    return _request(orders_pb2.SubmitOrderRequest(), fields)


def replace_request(order_id: str, fields: Mapping[str, object]) -> orders_pb2.ReplaceOrderRequest:
    return _request(orders_pb2.ReplaceOrderRequest(order_id=order_id), fields)


def _request(message: Message, fields: Mapping[str, object]) -> Message:
    known = message.DESCRIPTOR.fields_by_name
    for name, value in fields.items():
        field = known.get(name)
        if field is None or name == "legs" or (name == "order_id" and message.order_id):
            raise invalid_argument(f"unknown field {name!r}", name)
        if value is None:
            continue
        if name in _ENUMS:
            setattr(message, name, _enum_value(name, value))
        elif name in _TEXT_FIELDS:
            if not isinstance(value, str):
                raise invalid_argument(f"{name} must be a string", name)
            setattr(message, name, value)
        elif field.type == field.TYPE_STRING:
            setattr(message, name, _decimal_text(name, value))
        else:
            raise invalid_argument(f"{name} cannot be set here", name)
    return message


def _enum_names(name: str) -> dict[str, int]:
    prefix, enum = _ENUM_PREFIXES[name], _ENUMS[name]
    names = {}
    for full, number in enum.items():
        if number:
            names[full] = names[full.removeprefix(prefix)] = number
    return names


_ENUM_NAMES = {name: _enum_names(name) for name in _ENUMS}


def _enum_value(name: str, value: object) -> int:
    if not isinstance(value, str):
        raise invalid_argument(f'{name} must be a string such as "buy" or "limit"', name)
    number = _ENUM_NAMES[name].get(value.strip().upper())
    if number is None:
        prefix = _ENUM_PREFIXES[name]
        choices = ", ".join(k.lower() for k in _ENUM_NAMES[name] if not k.startswith(prefix))
        raise invalid_argument(f"{name} must be one of: {choices}; got {value!r}", name)
    return number


def _decimal_text(name: str, value: object) -> str:
    """Money and quantities travel as decimal text, never through a float."""
    if isinstance(value, (bool, float)):
        raise invalid_argument(f'{name} must be a decimal string like "150.25", not a float', name)
    if isinstance(value, (Decimal, int)):
        return format(value, "f")
    if isinstance(value, str):
        return value
    raise invalid_argument(f'{name} must be a decimal string like "150.25"', name)
