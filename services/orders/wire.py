"""Orders' proto <-> domain conversions (the servicer stays thin)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from mbt.common.v1 import trading_pb2
from mbt.orders.v1 import orders_pb2
from services.common.errors import invalid_argument
from services.common.instruments import is_option_symbol
from services.common.wire.conv import (
    datetime_from_ns,
    from_timestamp,
    parse_decimal,
    parse_enum,
    price_str,
    qty_str,
    symbol_price_str,
    timestamp_from_ns,
    timestamp_ns,
    to_timestamp,
)
from services.common.wire.trading import (
    ASSET_CLASS_WIRE,
    ASSET_CLASSES,
    FILL_PREFERENCE_WIRE,
    FILL_PREFERENCES,
    ORDER_TYPE_WIRE,
    ORDER_TYPES,
    POSITION_INTENT_WIRE,
    POSITION_INTENTS,
    SIDE_WIRE,
    SIDES,
    TIME_IN_FORCE_WIRE,
    TIMES_IN_FORCE,
)
from services.orders.domain.model import (
    AssetClass,
    Fill,
    Leg,
    LegExecution,
    Order,
    OrderClass,
    OrderSpec,
    Side,
    Status,
    StopLoss,
    TakeProfit,
)
from services.orders.domain.rules import ReplaceTerms

STATUSES = {
    orders_pb2.ORDER_STATUS_NEW: Status.NEW,
    orders_pb2.ORDER_STATUS_ACCEPTED: Status.ACCEPTED,
    orders_pb2.ORDER_STATUS_FILLED: Status.FILLED,
    orders_pb2.ORDER_STATUS_CANCELED: Status.CANCELED,
    orders_pb2.ORDER_STATUS_REJECTED: Status.REJECTED,
    orders_pb2.ORDER_STATUS_EXPIRED: Status.EXPIRED,
    orders_pb2.ORDER_STATUS_HELD: Status.HELD,
}
STATUS_WIRE = {value: number for number, value in STATUSES.items()}
# The linked classes; simple and mleg are told by the legs.
ORDER_CLASSES = {
    trading_pb2.ORDER_CLASS_BRACKET: OrderClass.BRACKET,
    trading_pb2.ORDER_CLASS_OCO: OrderClass.OCO,
    trading_pb2.ORDER_CLASS_OTO: OrderClass.OTO,
}
ORDER_CLASS_WIRE = {value: number for number, value in ORDER_CLASSES.items()}


def spec_from_request(request: orders_pb2.SubmitOrderRequest) -> OrderSpec:
    """What a submit asks for (its client_order_id as sent: empty means "use the order id")."""
    check_order_class(request)
    return OrderSpec(
        client_order_id=request.client_order_id.strip(),
        symbol=request.symbol.strip().upper(),
        asset_class=parse_enum(ASSET_CLASSES, request.asset_class, "asset_class", required=False)
        or AssetClass.US_EQUITY,
        side=parse_enum(SIDES, request.side, "side", required=not request.legs) or Side.BUY,
        qty=parse_decimal(request.qty, "qty", required=True),
        order_type=parse_enum(ORDER_TYPES, request.order_type, "order_type"),
        time_in_force=parse_enum(TIMES_IN_FORCE, request.time_in_force, "time_in_force"),
        limit_price=parse_decimal(request.limit_price, "limit_price"),
        stop_price=parse_decimal(request.stop_price, "stop_price"),
        legs=legs_from_proto(request.legs),
        position_intent=parse_enum(POSITION_INTENTS, request.position_intent, "position_intent", required=False),
        fill_preference=parse_enum(FILL_PREFERENCES, request.fill_preference, "fill_preference", required=False),
        order_class=ORDER_CLASSES.get(request.order_class, OrderClass.SIMPLE),
        take_profit=TakeProfit(parse_decimal(request.take_profit.limit_price, "take_profit.limit_price", required=True))
        if request.HasField("take_profit")
        else None,
        stop_loss=StopLoss(
            parse_decimal(request.stop_loss.stop_price, "stop_loss.stop_price", required=True),
            parse_decimal(request.stop_loss.limit_price, "stop_loss.limit_price"),
        )
        if request.HasField("stop_loss")
        else None,
    )


def check_order_class(request: orders_pb2.SubmitOrderRequest) -> None:
    """``mleg`` goes with legs, ``simple`` without (unspecified: implied by the legs); the
    linked classes (bracket, oco, oto) are checked by ``classes.validate_class``."""
    if request.order_class == trading_pb2.ORDER_CLASS_MLEG and not request.legs:
        raise invalid_argument("an mleg order needs legs", "legs")
    if request.order_class == trading_pb2.ORDER_CLASS_SIMPLE and request.legs:
        raise invalid_argument("a simple order takes no legs; send order_class mleg", "order_class")
    if request.order_class not in (0, trading_pb2.ORDER_CLASS_SIMPLE, trading_pb2.ORDER_CLASS_MLEG, *ORDER_CLASSES):
        raise invalid_argument(f"order_class has an unknown value {request.order_class}", "order_class")
    if request.legs and request.symbol.strip():
        raise invalid_argument("a multi-leg order names its contracts in legs, not in symbol", "symbol")
    if request.legs and request.side:
        raise invalid_argument("a multi-leg order has no side of its own: each leg has its side", "side")
    if request.fill_preference and not request.legs:
        raise invalid_argument("fill_preference is for multi-leg orders", "fill_preference")


def status_filter(value: orders_pb2.OrderStatus) -> Status | None:
    return parse_enum(STATUSES, value, "status", required=False)


def legs_from_proto(legs: Iterable[trading_pb2.OrderLeg]) -> tuple[Leg, ...]:
    """The legs of a submit or a replace as sent (symbols upper-cased, checked later)."""
    return tuple(
        Leg(
            leg.symbol.strip().upper(),
            parse_enum(SIDES, leg.side, f"legs[{index}].side"),
            leg.ratio,
            parse_enum(POSITION_INTENTS, leg.position_intent, f"legs[{index}].position_intent", required=False),
        )
        for index, leg in enumerate(legs)
    )


def replace_terms(request: orders_pb2.ReplaceOrderRequest) -> ReplaceTerms:
    return ReplaceTerms(
        qty=parse_decimal(request.qty, "qty"),
        limit_price=parse_decimal(request.limit_price, "limit_price"),
        stop_price=parse_decimal(request.stop_price, "stop_price"),
        time_in_force=parse_enum(TIMES_IN_FORCE, request.time_in_force, "time_in_force", required=False),
        legs=legs_from_proto(request.legs),
    )


def _fill_price(fill: Fill, value: Decimal | None) -> str:
    """A fill's price on its grid: a spread's net, like an option's, in cents."""
    return price_str(value, option=bool(fill.legs) or is_option_symbol(fill.symbol))


def fill_to_proto(fill: Fill) -> orders_pb2.Fill:
    return orders_pb2.Fill(
        fill_id=fill.fill_id,
        order_id=fill.order_id,
        symbol=fill.symbol,
        side=SIDE_WIRE[fill.side],
        qty=qty_str(fill.qty),
        price=_fill_price(fill, fill.price),
        bid_price=_fill_price(fill, fill.bid_price),
        bid_size=qty_str(fill.bid_size),
        ask_price=_fill_price(fill, fill.ask_price),
        ask_size=qty_str(fill.ask_size),
        quote_at=timestamp_from_ns(fill.quote_at_ns),
        quote_sequence=fill.quote_sequence,
        rule=fill.rule,
        filled_at=to_timestamp(fill.filled_at),
        multiplier=qty_str(fill.multiplier),
        legs=[
            orders_pb2.LegFill(
                symbol=leg.symbol,
                side=SIDE_WIRE[leg.side],
                ratio=leg.ratio,
                qty=qty_str(leg.qty),
                price=symbol_price_str(leg.price, leg.symbol),
                bid_price=symbol_price_str(leg.bid_price, leg.symbol),
                ask_price=symbol_price_str(leg.ask_price, leg.symbol),
                bid_size=qty_str(leg.bid_size),
                ask_size=qty_str(leg.ask_size),
                quote_at=timestamp_from_ns(leg.quote_at_ns) if leg.quote_at_ns else None,
                quote_sequence=leg.quote_sequence,
            )
            for leg in fill.legs
        ],
    )


def fill_from_proto(message: orders_pb2.Fill) -> Fill:
    if not message.fill_id.startswith("fill_") or not message.order_id:
        raise invalid_argument("fill_id and order_id are required", "fill")
    quote_ns = timestamp_ns(message.quote_at)
    return Fill(
        fill_id=message.fill_id,
        order_id=message.order_id,
        symbol=message.symbol,
        side=parse_enum(SIDES, message.side, "fill.side"),
        qty=parse_decimal(message.qty, "fill.qty", required=True),
        price=parse_decimal(message.price, "fill.price", required=True),
        multiplier=parse_decimal(message.multiplier, "fill.multiplier") or Decimal(1),
        bid_price=parse_decimal(message.bid_price, "fill.bid_price", required=True),
        bid_size=parse_decimal(message.bid_size, "fill.bid_size") or Decimal(0),
        ask_price=parse_decimal(message.ask_price, "fill.ask_price", required=True),
        ask_size=parse_decimal(message.ask_size, "fill.ask_size") or Decimal(0),
        quote_at=datetime_from_ns(quote_ns),
        quote_at_ns=quote_ns,
        quote_sequence=message.quote_sequence,
        rule=message.rule,
        filled_at=from_timestamp(message.filled_at) or datetime_from_ns(quote_ns),
        legs=tuple(
            LegExecution(
                leg.symbol,
                parse_enum(SIDES, leg.side, "fill.legs.side"),
                leg.ratio,
                parse_decimal(leg.qty, "fill.legs.qty", required=True),
                parse_decimal(leg.price, "fill.legs.price", required=True),
                parse_decimal(leg.bid_price, "fill.legs.bid_price", required=True),
                parse_decimal(leg.ask_price, "fill.legs.ask_price", required=True),
                parse_decimal(leg.bid_size, "fill.legs.bid_size") or Decimal(0),
                parse_decimal(leg.ask_size, "fill.legs.ask_size") or Decimal(0),
                timestamp_ns(leg.quote_at) if leg.HasField("quote_at") else 0,
                leg.quote_sequence,
            )
            for leg in message.legs
        ),
    )


def legs_to_proto(legs: tuple[Leg, ...]) -> list[trading_pb2.OrderLeg]:
    return [
        trading_pb2.OrderLeg(
            symbol=leg.symbol,
            side=SIDE_WIRE[leg.side],
            ratio=leg.ratio,
            position_intent=POSITION_INTENT_WIRE[leg.position_intent] if leg.position_intent else None,
        )
        for leg in legs
    ]


def order_to_proto(order: Order) -> orders_pb2.Order:
    spec = order.spec
    option = spec.asset_class is AssetClass.US_OPTION or bool(spec.legs)
    return orders_pb2.Order(
        order_id=order.order_id,
        client_order_id=spec.client_order_id,
        account_id=order.account_id,
        user_id=order.user_id,
        symbol=spec.symbol,
        asset_class=ASSET_CLASS_WIRE[spec.asset_class],
        side=SIDE_WIRE[spec.side],
        qty=qty_str(spec.qty),
        order_type=ORDER_TYPE_WIRE[spec.order_type],
        time_in_force=TIME_IN_FORCE_WIRE[spec.time_in_force],
        limit_price=price_str(spec.limit_price, option=option),
        stop_price=price_str(spec.stop_price, option=option),
        legs=legs_to_proto(spec.legs),
        order_class=ORDER_CLASS_WIRE.get(
            spec.order_class, trading_pb2.ORDER_CLASS_MLEG if spec.legs else trading_pb2.ORDER_CLASS_SIMPLE
        ),
        parent_order_id=order.parent_order_id or "",
        exit_group=order.exit_group or "",
        leg_orders=[order_to_proto(leg) for leg in order.leg_orders],
        fill_preference=FILL_PREFERENCE_WIRE[spec.fill_preference] if spec.fill_preference else None,
        multiplier=qty_str(order.multiplier),
        position_intent=POSITION_INTENT_WIRE[spec.position_intent] if spec.position_intent else None,
        status=STATUS_WIRE[order.status],
        reject_reason=order.reject_reason,
        cancel_reason=order.cancel_reason,
        filled_qty=qty_str(order.filled_qty),
        filled_avg_price=price_str(order.filled_avg_price, option=option),
        version=order.version,
        created_at=to_timestamp(order.created_at),
        updated_at=to_timestamp(order.updated_at),
        accepted_at=to_timestamp(order.accepted_at),
        rejected_at=to_timestamp(order.rejected_at),
        triggered_at=to_timestamp(order.triggered_at),
        filled_at=to_timestamp(order.filled_at),
        canceled_at=to_timestamp(order.canceled_at),
        expired_at=to_timestamp(order.expired_at),
        expires_at=to_timestamp(order.expires_at),
        replaced_at=to_timestamp(order.replaced_at),
        collar_price=price_str(order.collar_price, option=option),
        fills=[fill_to_proto(f) for f in order.fills],
    )
