from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.common.errors import DomainError
from services.common.trading import AssetClass, OrderType, PositionIntent, Side, TimeInForce
from services.orders.domain.model import TRANSITIONS, Fill, Leg, Order, OrderSpec, Status, check_fill, next_status
from services.orders.domain.model import Transition as Event
from services.orders.domain.rules import (
    CONTRACT_EXPIRED,
    ReplaceTerms,
    Session,
    check_market_hours,
    collar_price,
    expiry_reason,
    order_expiry,
    replacement,
    validate_spec,
)

T0 = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)
SESSION = Session(datetime(2012, 6, 21, 13, 30, tzinfo=UTC), datetime(2012, 6, 21, 20, 0, tzinfo=UTC))


def spec(**changes) -> OrderSpec:
    values = {
        "client_order_id": "c-1",
        "symbol": "AMZN",
        "asset_class": AssetClass.US_EQUITY,
        "side": Side.BUY,
        "qty": Decimal(10),
        "order_type": OrderType.LIMIT,
        "time_in_force": TimeInForce.DAY,
        "limit_price": Decimal("220.50"),
        "stop_price": None,
    }
    values.update(changes)
    return OrderSpec(**values)


def order(**changes) -> Order:
    values = {
        "order_id": "ord_1",
        "user_id": "u",
        "account_id": "acct_1",
        "spec": spec(),
        "multiplier": Decimal(1),
        "status": Status.ACCEPTED,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(changes)
    return Order(**values)


def test_every_final_state_refuses_every_event():
    reasons = {Event.CANCEL: "ORDER_NOT_CANCELABLE", Event.REPLACE: "ORDER_NOT_REPLACEABLE"}
    for status in (Status.FILLED, Status.CANCELED, Status.REJECTED, Status.EXPIRED):
        for event in Event:
            with pytest.raises(DomainError) as err:
                next_status(status, event)
            assert (err.value.reason, err.value.metadata["status"]) == (
                reasons.get(event, "FAILED_PRECONDITION"),
                status.value,
            ), (status, event)


@pytest.mark.parametrize(
    "status, reason",
    [
        (Status.FILLED, "ORDER_NOT_CANCELABLE"),
        (Status.EXPIRED, "ORDER_NOT_CANCELABLE"),
        (Status.REJECTED, "ORDER_NOT_CANCELABLE"),
    ],
)
def test_cancel_of_a_finished_order_says_not_cancelable(status, reason):
    with pytest.raises(DomainError) as err:
        next_status(status, Event.CANCEL)
    assert err.value.reason == reason


def test_the_table_is_the_lifecycle():
    assert TRANSITIONS[(Status.NEW, Event.ACCEPT)] is Status.ACCEPTED
    assert TRANSITIONS[(Status.ACCEPTED, Event.FILL)] is Status.FILLED
    assert (Status.NEW, Event.FILL) not in TRANSITIONS  # nothing fills before buying power is held
    with pytest.raises(DomainError) as err:
        next_status(Status.NEW, Event.REPLACE)
    assert err.value.reason == "ORDER_NOT_REPLACEABLE"


def test_a_transition_stamps_its_time():
    later = T0 + timedelta(minutes=5)
    canceled = order().cancel("user", later)
    assert (canceled.status, canceled.canceled_at, canceled.updated_at, canceled.cancel_reason) == (
        Status.CANCELED,
        later,
        later,
        "user",
    )


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"qty": Decimal(0)}, "qty"),
        ({"qty": Decimal("-1")}, "qty"),
        ({"qty": Decimal("1.5")}, "qty"),
        ({"qty": Decimal(2_000_000)}, "qty"),
        ({"limit_price": None}, "limit_price"),
        ({"limit_price": Decimal(0)}, "limit_price"),
        ({"limit_price": Decimal("220.505")}, "limit_price"),
        ({"limit_price": Decimal("0.00005")}, "limit_price"),
        ({"order_type": OrderType.MARKET}, "limit_price"),
        ({"order_type": OrderType.STOP, "limit_price": None}, "stop_price"),
        ({"order_type": OrderType.STOP_LIMIT}, "stop_price"),
        ({"order_type": OrderType.LIMIT, "stop_price": Decimal(5)}, "stop_price"),
        ({"client_order_id": "has space"}, "client_order_id"),
        ({"client_order_id": "x" * 129}, "client_order_id"),
        ({"position_intent": PositionIntent.BUY_TO_OPEN}, "position_intent"),
    ],
)
def test_invalid_submissions_name_the_field(changes, field):
    with pytest.raises(DomainError) as err:
        validate_spec(spec(**changes))
    assert err.value.reason == "INVALID_ARGUMENT"
    assert err.value.metadata["field"] == field


def test_an_option_order_is_left_to_the_option_rules_once_its_contract_is_known():
    option = spec(symbol="AMZN120720C00230000", qty=Decimal("1.5"), limit_price=Decimal("3.01"))
    assert validate_spec(option) is option
    assert validate_spec(spec(asset_class=AssetClass.US_OPTION)).asset_class is AssetClass.US_OPTION
    spread = spec(symbol="", legs=(Leg("AMZN120720C00230000", Side.BUY, 1), Leg("AMZN120720C00240000", Side.SELL, 1)))
    assert validate_spec(spread) is spread


def test_sub_dollar_prices_may_have_four_decimals():
    assert validate_spec(spec(limit_price=Decimal("0.1234")))


def test_collar_bounds_market_and_stop_orders_on_the_price_grid():
    market = spec(order_type=OrderType.MARKET, limit_price=None)
    stop = spec(order_type=OrderType.STOP, limit_price=None, stop_price=Decimal("100"))
    assert collar_price(market, Decimal("220.31"), Decimal(5)) == Decimal("231.33")
    assert collar_price(replace(market, side=Side.SELL), Decimal("220.31"), Decimal(5)) == Decimal("209.29")
    assert collar_price(stop, None, Decimal(5)) == Decimal("105.00")
    assert collar_price(spec(), Decimal("220.31"), Decimal(5)) is None
    # Below $1 a stock's grid has four places; half away from zero, as every price shown.
    assert collar_price(replace(stop, stop_price=Decimal("0.52")), None, Decimal(5)) == Decimal("0.546")
    assert collar_price(replace(stop, stop_price=Decimal("2.50")), None, Decimal(5)) == Decimal("2.63")


def test_an_option_collar_is_in_cents_so_the_bound_shown_is_the_bound_held():
    stop = spec(
        symbol="AMZN120720P00210000",
        asset_class=AssetClass.US_OPTION,
        order_type=OrderType.STOP,
        limit_price=None,
        qty=Decimal(1),
    )
    assert collar_price(replace(stop, stop_price=Decimal("0.52")), None, Decimal(5)) == Decimal("0.55")
    assert collar_price(replace(stop, stop_price=Decimal("2.50")), None, Decimal(5)) == Decimal("2.63")
    assert collar_price(replace(stop, side=Side.SELL, stop_price=Decimal("0.52")), None, Decimal(5)) == Decimal("0.49")


def test_ioc_and_fok_need_the_market_open_day_orders_do_not():
    before_open = datetime(2012, 6, 21, 12, 0, tzinfo=UTC)
    check_market_hours(spec(time_in_force=TimeInForce.DAY), before_open, SESSION)
    check_market_hours(spec(time_in_force=TimeInForce.IOC), T0, SESSION)
    with pytest.raises(DomainError) as err:
        check_market_hours(spec(time_in_force=TimeInForce.FOK), before_open, SESSION)
    assert err.value.reason == "MARKET_CLOSED"


def test_replace_keeps_what_is_not_sent_and_validates_the_result():
    replaced = replacement(order(), ReplaceTerms(qty=Decimal(20), limit_price=None, stop_price=None))
    assert (replaced.qty, replaced.limit_price) == (Decimal(20), Decimal("220.50"))
    with pytest.raises(DomainError) as err:
        replacement(order(), ReplaceTerms(qty=None, limit_price=None, stop_price=None))
    assert err.value.reason == "INVALID_ARGUMENT" and "nothing to replace" in err.value.message
    with pytest.raises(DomainError) as err:
        replacement(order(), ReplaceTerms(qty=None, limit_price=None, stop_price=Decimal(1)))
    assert (err.value.reason, err.value.metadata["field"]) == ("INVALID_ARGUMENT", "stop_price")
    with pytest.raises(DomainError) as err:
        replacement(order(), ReplaceTerms(qty=Decimal("0.5"), limit_price=None, stop_price=None))
    assert (err.value.reason, err.value.metadata["field"]) == ("INVALID_ARGUMENT", "qty")


def test_a_triggered_stop_keeps_its_stop():
    triggered = order(spec=spec(order_type=OrderType.STOP_LIMIT, stop_price=Decimal("220.00")), triggered_at=T0)
    with pytest.raises(DomainError) as err:
        replacement(triggered, ReplaceTerms(qty=None, limit_price=None, stop_price=Decimal("221.00")))
    assert err.value.reason == "ORDER_NOT_REPLACEABLE"
    assert replacement(
        triggered, ReplaceTerms(qty=None, limit_price=Decimal("221.00"), stop_price=None)
    ).stop_price == Decimal("220.00")


def fill(**changes) -> Fill:
    values = {
        "fill_id": "fill_1",
        "order_id": "ord_1",
        "symbol": "AMZN",
        "side": Side.BUY,
        "qty": Decimal(10),
        "price": Decimal("220.31"),
        "multiplier": Decimal(1),
        "bid_price": Decimal("220.30"),
        "bid_size": Decimal(100),
        "ask_price": Decimal("220.31"),
        "ask_size": Decimal(200),
        "quote_at": T0,
        "quote_at_ns": 0,
        "quote_sequence": 1,
        "rule": "limit_buy_at_ask",
        "filled_at": T0,
    }
    values.update(changes)
    return Fill(**values)


def test_a_fill_must_match_the_order_and_respect_its_limit():
    check_fill(order(), fill())
    for bad, field in (
        (fill(qty=Decimal(5)), "fill"),
        (fill(side=Side.SELL), "fill"),
        (fill(price=Decimal("220.30")), "fill.price"),
        (fill(price=Decimal("221"), ask_price=Decimal("221")), "fill.price"),
        (fill(symbol="GOOG"), "fill"),
    ):
        with pytest.raises(DomainError) as err:
            check_fill(order(), bad)
        assert (err.value.reason, err.value.metadata["field"]) == ("INVALID_ARGUMENT", field), bad


FRIDAY_CLOSE = datetime(2012, 6, 22, 20, 0, tzinfo=UTC)
JULY_CLOSE = datetime(2012, 7, 20, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("time_in_force", "last_trades", "expires_at", "reason"),
    [
        # Stock: a day order at its session's close, a gtc order never.
        (TimeInForce.DAY, [], SESSION.close_at, ""),
        (TimeInForce.GTC, [], None, None),
        # A contract trading beyond the session: a day order still ends at the close.
        (TimeInForce.DAY, [JULY_CLOSE], SESSION.close_at, ""),
        # Any time in force stops at the contract's last trading time.
        (TimeInForce.GTC, [JULY_CLOSE], JULY_CLOSE, CONTRACT_EXPIRED),
        (TimeInForce.GTC, [FRIDAY_CLOSE, FRIDAY_CLOSE], FRIDAY_CLOSE, CONTRACT_EXPIRED),
        # A day order on the contract's last day: both at that close, the contract the reason.
        (TimeInForce.DAY, [SESSION.close_at], SESSION.close_at, CONTRACT_EXPIRED),
        # Multi-leg: the earliest leg ends the order; a leg without a known last trade is skipped.
        (TimeInForce.GTC, [JULY_CLOSE, FRIDAY_CLOSE, None], FRIDAY_CLOSE, CONTRACT_EXPIRED),
    ],
)
def test_an_order_expires_at_its_close_or_its_contracts_last_trade(time_in_force, last_trades, expires_at, reason):
    assert order_expiry(time_in_force, SESSION.close_at, last_trades) == expires_at
    if expires_at is not None:
        assert expiry_reason(expires_at, last_trades) == reason


SPREAD_LEGS = (Leg("AMZN120720P00210000", Side.SELL, 1), Leg("AMZN120720P00200000", Side.BUY, 1))


def a_spread(**changes) -> Order:
    terms = {"symbol": "", "asset_class": AssetClass.US_OPTION, "legs": SPREAD_LEGS, "limit_price": Decimal("-1.10")}
    return order(spec=spec(**terms | changes), multiplier=Decimal(100))


@pytest.mark.parametrize("limit", ["-1.50", "-0.80", "0", "0.35"])
def test_a_spread_is_replaced_in_its_net_limit_of_either_sign_its_size_and_time_in_force(limit):
    replaced = replacement(
        a_spread(),
        ReplaceTerms(qty=Decimal(3), limit_price=Decimal(limit), time_in_force=TimeInForce.GTC),
    )
    assert (replaced.qty, replaced.limit_price, replaced.time_in_force) == (Decimal(3), Decimal(limit), TimeInForce.GTC)
    assert replaced.legs == SPREAD_LEGS


@pytest.mark.parametrize(
    ("legs", "words"),
    [
        (SPREAD_LEGS[:1], "cannot be replaced"),
        ((SPREAD_LEGS[1], SPREAD_LEGS[0]), "cannot be replaced"),
        ((SPREAD_LEGS[0], Leg("AMZN120720P00190000", Side.BUY, 1)), "cannot be replaced"),
        ((SPREAD_LEGS[0], Leg("AMZN120720P00200000", Side.BUY, 2)), "cannot be replaced"),
        ((SPREAD_LEGS[0], Leg("AMZN120720P00200000", Side.SELL, 1)), "cannot be replaced"),
    ],
)
def test_a_spread_keeps_its_legs(legs, words):
    with pytest.raises(DomainError) as err:
        replacement(a_spread(), ReplaceTerms(limit_price=Decimal("-1.20"), legs=legs))
    assert (err.value.reason, err.value.metadata["field"]) == ("INVALID_ARGUMENT", "legs")
    assert words in err.value.message


def test_legs_sent_as_they_are_padded_or_not_change_nothing_else():
    padded = (Leg("AMZN  120720P00210000", Side.SELL, 1), Leg("AMZN120720P00200000", Side.BUY, 1))
    replaced = replacement(a_spread(), ReplaceTerms(qty=Decimal(2), legs=padded))
    assert (replaced.qty, replaced.legs) == (Decimal(2), SPREAD_LEGS)
    with pytest.raises(DomainError) as err:
        replacement(a_spread(), ReplaceTerms(legs=SPREAD_LEGS))
    assert "nothing to replace" in err.value.message
    with pytest.raises(DomainError) as err:
        replacement(order(), ReplaceTerms(qty=Decimal(2), legs=SPREAD_LEGS))
    assert (err.value.reason, err.value.metadata["field"]) == ("INVALID_ARGUMENT", "legs")


def test_a_spread_takes_no_stop_and_a_market_spread_no_limit():
    with pytest.raises(DomainError) as err:
        replacement(a_spread(), ReplaceTerms(stop_price=Decimal("1.00")))
    assert err.value.metadata["field"] == "stop_price"
    market = a_spread(order_type=OrderType.MARKET, limit_price=None)
    with pytest.raises(DomainError) as err:
        replacement(market, ReplaceTerms(limit_price=Decimal("-1.00")))
    assert err.value.metadata["field"] == "limit_price"
