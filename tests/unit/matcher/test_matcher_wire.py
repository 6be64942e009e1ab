"""The matcher's wire: orders read as the fill function works them, decisions written as
the orders service records them, backtest specs kept and read back unchanged, and the
event sink built against the topology."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from google.protobuf.json_format import ParseDict

from mbt.common.v1 import trading_pb2
from mbt.matcher.v1 import matcher_pb2
from mbt.orders.v1 import orders_pb2
from services.common.messaging import topology
from services.common.wire.conv import timestamp_from_ns
from services.matcher import wire
from services.matcher.backtest.model import BacktestSpec
from services.matcher.domain import Action, Decision, OrderType, Side, TimeInForce, WorkingOrder, fill_id
from services.matcher.events import HANDLED, MatcherEvents
from services.orders import wire as orders_wire
from tests.support.matcher import MID_SESSION_NS, SECOND, a_tick

T = MID_SESSION_NS


def test_an_order_from_the_orders_service_is_worked_on_its_latest_terms():
    message = orders_pb2.Order(
        order_id="ord_1",
        symbol="XYZ",
        side=trading_pb2.ORDER_SIDE_SELL,
        qty="300",
        order_type=trading_pb2.ORDER_TYPE_STOP_LIMIT,
        time_in_force=trading_pb2.TIME_IN_FORCE_GTC,
        limit_price="99.90",
        stop_price="100.00",
        collar_price="",
        multiplier="1",
        status=orders_pb2.ORDER_STATUS_ACCEPTED,
        accepted_at=timestamp_from_ns(T),
        replaced_at=timestamp_from_ns(T + 5 * SECOND),
        triggered_at=timestamp_from_ns(T + 2 * SECOND),
    )
    assert wire.is_working(message)
    assert wire.open_order(message).working == WorkingOrder(
        order_id="ord_1",
        symbol="XYZ",
        side=Side.SELL,
        qty=Decimal(300),
        order_type=OrderType.STOP_LIMIT,
        time_in_force=TimeInForce.GTC,
        limit_price=Decimal("99.90"),
        stop_price=Decimal("100.00"),
        collar_price=None,
        accepted_ns=T + 5 * SECOND,
        triggered=True,
        expires_ns=None,
    )
    assert wire.open_order(message).multiplier == Decimal(1)
    assert not wire.is_working(orders_pb2.Order(status=orders_pb2.ORDER_STATUS_FILLED))


def test_a_fill_decision_is_the_fill_the_orders_service_records():
    order = WorkingOrder(
        order_id="ord_1",
        symbol="XYZ",
        side=Side.BUY,
        qty=Decimal(100),
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.DAY,
        limit_price=Decimal("100.10"),
        stop_price=None,
        collar_price=None,
        accepted_ns=T,
        triggered=False,
        expires_ns=T + 3600 * SECOND,
    )
    # The quote standing at acceptance: the fill takes effect at the acceptance, not the quote's time.
    tick = a_tick("100.00", "100.05", at_ns=T - SECOND, symbol="XYZ", sequence=7)
    decision = Decision(Action.FILL, "limit_buy_at_ask", Decimal("100.05"), tick, "")
    message = wire.fill_message(order, decision, Decimal(100))
    assert message == orders_pb2.Fill(
        fill_id=fill_id("ord_1", tick),
        order_id="ord_1",
        symbol="XYZ",
        side=trading_pb2.ORDER_SIDE_BUY,
        qty="100",
        price="100.05",
        bid_price="100.00",
        bid_size="200",
        ask_price="100.05",
        ask_size="300",
        quote_at=timestamp_from_ns(T - SECOND),
        quote_sequence=7,
        rule="limit_buy_at_ask",
        filled_at=timestamp_from_ns(T),
        multiplier="100",
    )
    recorded = orders_wire.fill_from_proto(message)
    assert (recorded.price, recorded.multiplier, recorded.side.value) == (Decimal("100.05"), Decimal(100), "buy")


SCRIPT = {
    "steps": [
        {
            "at": "2012-06-21T14:00:00Z",
            "submit": {
                "client_order_id": "a",
                "symbol": "AMZN",
                "side": "ORDER_SIDE_BUY",
                "qty": "1",
                "order_type": "ORDER_TYPE_LIMIT",
                "limit_price": "200.00",
                "time_in_force": "TIME_IN_FORCE_DAY",
            },
        },
        {"after_fill": "a", "cancel": {"client_order_id": "a"}},
    ]
}


@pytest.mark.parametrize(
    "fields, spec",
    [
        (
            {"strategy": "grid", "parameters": {"slots": "6"}},
            BacktestSpec(date(2012, 6, 21), date(2012, 6, 22), strategy="grid", params={"slots": "6"}),
        ),
        (
            {
                "script": SCRIPT,
                "data": "marketdata",
                "symbols": [" goog"],
                "account_type": "ACCOUNT_TYPE_MARGIN",
                "starting_cash": "50000.00",
            },
            BacktestSpec(
                date(2012, 6, 21),
                date(2012, 6, 22),
                script=SCRIPT,
                data="marketdata",
                symbols=("GOOG",),
                account_type="margin",
                starting_cash=Decimal("50000.00"),
            ),
        ),
        ({"script": {}}, BacktestSpec(date(2012, 6, 21), date(2012, 6, 22), script={"steps": []})),
    ],
)
def test_a_backtest_spec_is_stored_and_read_back_unchanged(fields, spec):
    message = ParseDict(
        {
            **fields,
            "from_date": {"year": 2012, "month": 6, "day": 21},
            "to_date": {"year": 2012, "month": 6, "day": 22},
        },
        matcher_pb2.Backtest(),
    )
    assert wire.spec_from_message(message) == spec
    assert wire.spec_from_stored(wire.stored_spec(spec)) == spec
    # What a run answers: its inputs as the run reads them (defaults filled in, standard spelling).
    assert wire.spec_from_message(wire.spec_to_message(spec)) == spec
    assert wire.spec_to_message(spec).data == spec.data


def test_the_event_sink_handles_exactly_what_the_topology_routes_to_the_matcher(monkeypatch):
    MatcherEvents(engine=None)
    assert set(HANDLED) == topology.routed_to("matcher")
    monkeypatch.setitem(topology.SUBSCRIPTIONS, "mbt.orders.v1.OrderTriggered", ("matcher",))
    with pytest.raises(ValueError, match="OrderTriggered"):
        MatcherEvents(engine=None)
    monkeypatch.setitem(topology.SUBSCRIPTIONS, "mbt.orders.v1.OrderTriggered", ())
    monkeypatch.setitem(topology.SUBSCRIPTIONS, "mbt.orders.v1.OrderAccepted", ())
    with pytest.raises(ValueError, match="OrderAccepted"):
        MatcherEvents(engine=None)
