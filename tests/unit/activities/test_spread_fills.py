"""A multi-leg fill in activities: one activity per leg (its symbol, side, qty and price,
the spread's fill id) with an id that is the same on every delivery and distinct per leg,
one notification for the spread, and a weekly summary that counts it as one trade whose
premium is the net credit."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from google.protobuf import timestamp_pb2

from mbt.common.v1 import trading_pb2
from mbt.orders.v1 import events_pb2, orders_pb2
from services.activities import wire
from services.activities.domain import summarize_week
from services.common.trading import Side

ON = datetime(2012, 6, 21, 15, tzinfo=UTC)
LATER = datetime(2012, 6, 22, 15, tzinfo=UTC)
SHORT_PUT, LONG_PUT = "AMZN120720P00210000", "AMZN120720P00200000"


def spread_filled(fill_id: str = "fill_" + "s" * 24) -> events_pb2.OrderFilled:
    """A bull put spread of 2 filled at a $1.25 credit each: the 210 put sold at $3.10, the
    200 put bought at $1.85."""
    at = timestamp_pb2.Timestamp()
    at.FromDatetime(ON)
    order = orders_pb2.Order(order_id="ord_x", user_id="alice", account_id="acc_x", qty="2")
    fill = orders_pb2.Fill(
        fill_id=fill_id,
        order_id="ord_x",
        qty="2",
        price="-1.25",
        multiplier="100",
        filled_at=at,
        legs=[
            orders_pb2.LegFill(symbol=SHORT_PUT, side=trading_pb2.ORDER_SIDE_SELL, ratio=1, qty="2", price="3.10"),
            orders_pb2.LegFill(symbol=LONG_PUT, side=trading_pb2.ORDER_SIDE_BUY, ratio=1, qty="2", price="1.85"),
        ],
    )
    return events_pb2.OrderFilled(order=order, fill=fill)


def test_each_leg_is_an_activity_with_its_own_terms_and_the_spreads_fill_id():
    short, long = wire.fill_activities(spread_filled(), ON)
    assert (short.symbol, short.side, short.qty, short.price, short.net_amount) == (
        SHORT_PUT,
        Side.SELL,
        Decimal(2),
        Decimal("3.10"),
        Decimal("620.00"),
    )
    assert (long.symbol, long.side, long.qty, long.price, long.net_amount) == (
        LONG_PUT,
        Side.BUY,
        Decimal(2),
        Decimal("1.85"),
        Decimal("-370.00"),
    )
    assert short.fill_id == long.fill_id == "fill_" + "s" * 24
    assert (short.activity_type, short.order_id) == ("fill", "ord_x")
    assert short.description == "Sold 2 AMZN120720P00210000 at $3.10"


def test_leg_ids_are_stable_across_deliveries_and_distinct_per_leg_and_fill():
    first = [a.activity_id for a in wire.fill_activities(spread_filled(), ON)]
    again = [a.activity_id for a in wire.fill_activities(spread_filled(), LATER)]
    other = [a.activity_id for a in wire.fill_activities(spread_filled("fill_" + "t" * 24), ON)]
    assert first == again
    assert len(set(first)) == 2 and all(i.startswith("act_") for i in first)
    assert not set(first) & set(other)


def test_one_notification_names_the_spread_its_net_and_each_leg():
    notification = wire.fill_notification(spread_filled(), ON, webhook=False)
    assert (notification.symbol, notification.fill_id, notification.kind) == ("AMZN", "fill_" + "s" * 24, "fill")
    assert notification.message == (
        "Filled 2 AMZN spreads at a $1.25 credit each: "
        "sold 2 AMZN Jul 20 $210 put at $3.10, bought 2 AMZN Jul 20 $200 put at $1.85"
    )
    assert notification.notification_id == wire.fill_notification(spread_filled(), LATER, webhook=True).notification_id


def test_a_credit_spread_is_one_trade_whose_premium_is_its_net_credit():
    week = summarize_week(wire.fill_activities(spread_filled(), ON), [SHORT_PUT, LONG_PUT])
    assert (week.fills, week.premium_collected, week.underlyings) == (1, Decimal("250.00"), 1)
