"""Order classes' pure rules (``services.orders.domain.classes``): what a bracket, oco or
oto submission must say (Alpaca's rules), the exits it creates, and what a fill, cancel or
expiry of one order of a family does to the others (activation, sibling cancel)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.common.errors import DomainError
from services.common.trading import AssetClass, OrderType, Side, TimeInForce
from services.orders.domain.classes import (
    PARENT_CANCELED,
    SIBLING_CANCELED,
    SIBLING_FILLED,
    check_against_entry,
    checked_exit,
    entry_base,
    exit_group_of,
    exit_specs,
    exits_of,
    family_id,
    linked_changes,
    validate_class,
)
from services.orders.domain.model import (
    Fill,
    Leg,
    Order,
    OrderClass,
    OrderHeld,
    OrderSpec,
    Status,
    StopLoss,
    TakeProfit,
)
from services.orders.domain.rules import ReplaceTerms, replacement

D = Decimal
T0 = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)
BRACKET = OrderSpec(
    "entry",
    "AMZN",
    AssetClass.US_EQUITY,
    Side.BUY,
    D(10),
    OrderType.LIMIT,
    TimeInForce.GTC,
    D("200.00"),
    None,
    order_class=OrderClass.BRACKET,
    take_profit=TakeProfit(D("210.00")),
    stop_loss=StopLoss(D("190.00")),
)


def refused_field(spec: OrderSpec) -> str:
    with pytest.raises(DomainError) as refused:
        validate_class(spec)
    assert refused.value.reason == "INVALID_ARGUMENT"
    return refused.value.metadata["field"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"order_class": OrderClass.SIMPLE}, "take_profit"),
        ({"stop_loss": None}, "stop_loss"),
        ({"take_profit": None}, "take_profit"),
        ({"order_class": OrderClass.OTO}, "take_profit"),
        ({"order_class": OrderClass.OTO, "take_profit": None, "stop_loss": None}, "take_profit"),
        ({"time_in_force": TimeInForce.IOC}, "time_in_force"),
        ({"time_in_force": TimeInForce.FOK}, "time_in_force"),
        ({"take_profit": TakeProfit(D("189.00"))}, "take_profit.limit_price"),
        ({"take_profit": TakeProfit(D("0"))}, "take_profit.limit_price"),
        ({"stop_loss": StopLoss(D("190.001"))}, "stop_loss.stop_price"),
        ({"stop_loss": StopLoss(D("190.00"), D("190.50"))}, "stop_loss.limit_price"),
        ({"legs": (Leg("AMZN120720P00210000", Side.SELL, 1),)}, "order_class"),
        ({"order_class": OrderClass.OCO, "side": Side.SELL, "order_type": OrderType.MARKET}, "order_type"),
        ({"order_class": OrderClass.OCO, "side": Side.SELL, "limit_price": D("211.00")}, "limit_price"),
        # A sell entry's exits buy: the take-profit below the stop-loss.
        ({"side": Side.SELL}, "take_profit.limit_price"),
    ],
)
def test_a_class_submission_is_refused_naming_its_field(changes, field):
    assert refused_field(replace(BRACKET, **changes)) == field


def test_valid_classes_pass_and_an_oco_takes_its_take_profit_as_its_limit():
    assert validate_class(BRACKET) == BRACKET
    assert validate_class(replace(BRACKET, stop_loss=StopLoss(D("190.00"), D("189.50")))).stop_loss == StopLoss(
        D("190.00"), D("189.50")
    )
    assert validate_class(replace(BRACKET, order_class=OrderClass.OTO, take_profit=None)).take_profit is None
    oco = validate_class(replace(BRACKET, order_class=OrderClass.OCO, side=Side.SELL, limit_price=None))
    assert oco.limit_price == D("210.00")
    short_put = replace(
        BRACKET,
        symbol="AMZN120720P00210000",
        asset_class=AssetClass.US_OPTION,
        side=Side.SELL,
        limit_price=D("0.26"),
        take_profit=TakeProfit(D("0.13")),
        stop_loss=StopLoss(D("0.52")),
    )
    assert validate_class(short_put) == short_put
    assert validate_class(replace(BRACKET, order_class=OrderClass.SIMPLE, take_profit=None, stop_loss=None))


@pytest.mark.parametrize(
    ("side", "take", "stop", "field"),
    [
        (Side.BUY, "200.00", "190.00", "take_profit.limit_price"),  # not a cent above
        (Side.BUY, "210.00", "200.00", "stop_loss.stop_price"),  # not a cent below
        (Side.SELL, "200.00", "210.00", "take_profit.limit_price"),
        (Side.SELL, "190.00", "199.995", "stop_loss.stop_price"),
    ],
)
def test_exits_are_checked_against_the_entry_price_as_alpaca_does(side, take, stop, field):
    spec = replace(BRACKET, side=side, take_profit=TakeProfit(D(take)), stop_loss=StopLoss(D(stop)))
    with pytest.raises(DomainError) as refused:
        check_against_entry(spec, D("200.00"))
    assert refused.value.metadata["field"] == field
    check_against_entry(replace(spec, order_class=OrderClass.OCO), D("200.00"))  # no entry to check against


def test_the_entry_base_is_its_limit_its_stop_or_the_market_reference():
    assert entry_base(BRACKET, D("1")) == D("200.00")
    assert entry_base(replace(BRACKET, order_type=OrderType.STOP, limit_price=None, stop_price=D("199")), None) == D(
        "199"
    )
    assert entry_base(replace(BRACKET, order_type=OrderType.MARKET, limit_price=None), D("224.35")) == D("224.35")


def test_a_bracket_creates_a_take_profit_limit_and_a_stop_loss_on_the_other_side():
    take, stop = exit_specs(replace(BRACKET, stop_loss=StopLoss(D("190.00"), D("189.00"))), ["tp", "sl"])
    assert (take.client_order_id, take.side, take.order_type, take.limit_price, take.stop_price) == (
        "tp",
        Side.SELL,
        OrderType.LIMIT,
        D("210.00"),
        None,
    )
    assert (stop.client_order_id, stop.side, stop.order_type, stop.limit_price, stop.stop_price) == (
        "sl",
        Side.SELL,
        OrderType.STOP_LIMIT,
        D("189.00"),
        D("190.00"),
    )
    assert (take.qty, stop.qty, take.time_in_force) == (D(10), D(10), TimeInForce.GTC)
    # An oco's take-profit is the order itself: only its stop-loss hangs from it.
    oco = replace(BRACKET, order_class=OrderClass.OCO, side=Side.SELL)
    [only] = exit_specs(oco, ["sl"])
    assert (only.side, only.order_type) == (Side.SELL, OrderType.STOP)
    assert exit_specs(replace(BRACKET, order_class=OrderClass.SIMPLE), ["x"]) == []
    assert (exit_group_of(BRACKET, "root"), exit_group_of(oco, "root")) == ("root", "root")
    assert exit_group_of(replace(BRACKET, order_class=OrderClass.OTO), "root") is None


def test_an_exit_refusal_names_the_submission_field():
    def off_grid(spec: OrderSpec) -> OrderSpec:
        raise DomainError("INVALID_ARGUMENT", "limit_price is off the grid", field="limit_price")

    take, stop = exit_specs(BRACKET, ["tp", "sl"])
    for spec, field in ((take, "take_profit.limit_price"), (stop, "stop_loss.limit_price")):
        with pytest.raises(DomainError) as refused:
            checked_exit(off_grid, spec)
        assert refused.value.metadata["field"] == field
        assert refused.value.message.startswith(field)


# -- a family: an entry and its exits ---------------------------------------------------


def family(order_class: OrderClass = OrderClass.BRACKET, entry_status: Status = Status.ACCEPTED) -> list[Order]:
    spec = replace(BRACKET, order_class=order_class)
    entry = Order("root", "u", "acct", spec, D(1), entry_status, T0, T0)
    exits = [
        Order(
            exit_spec.client_order_id,
            "u",
            "acct",
            exit_spec,
            D(1),
            Status.HELD,
            T0,
            T0,
            parent_order_id="root",
            exit_group=exit_group_of(spec, "root"),
        )
        for exit_spec in exit_specs(spec, ["sl-first-by-id", "tp"][::-1])
    ]
    return [entry, *exits]


def a_fill(order: Order, price: str) -> Fill:
    p = D(price)
    return Fill(
        f"fill_{order.order_id}",
        order.order_id,
        "AMZN",
        order.spec.side,
        order.spec.qty,
        p,
        D(1),
        p,
        D(100),
        p,
        D(100),
        LATER,
        0,
        1,
        "rule",
        LATER,
    )


def test_a_filled_entry_activates_its_held_exits():
    entry, take, stop = family()
    filled = entry.fill(a_fill(entry, "200.00"))
    activated = linked_changes(filled, [entry, take, stop], LATER)
    assert [(o.order_id, o.status, o.updated_at) for o in activated] == [
        (take.order_id, Status.NEW, LATER),
        (stop.order_id, Status.NEW, LATER),
    ]
    # Nothing else moves an entry's exits: an accepted entry, or a trigger.
    assert linked_changes(entry, [entry, take, stop], LATER) == []


def test_an_entry_that_ends_unfilled_cancels_its_exits():
    entry, take, stop = family()
    for ended in (entry.cancel("user", LATER), replace(entry, expires_at=LATER).expire()):
        canceled = linked_changes(ended, [entry, take, stop], LATER)
        assert {(o.status, o.cancel_reason) for o in canceled} == {(Status.CANCELED, PARENT_CANCELED)}
        assert len(canceled) == 2


def test_a_filled_exit_cancels_its_sibling_and_a_canceled_exit_its_pair():
    entry, take, stop = family(entry_status=Status.FILLED)
    take, stop = take.activate(T0), stop.activate(T0)
    take = take.accept("acct", T0)
    stop = stop.accept("acct", T0)
    members = [entry, take, stop]
    [canceled] = linked_changes(take.fill(a_fill(take, "210.00")), members, LATER)
    assert (canceled.order_id, canceled.status, canceled.cancel_reason) == (
        stop.order_id,
        Status.CANCELED,
        SIBLING_FILLED,
    )
    [canceled] = linked_changes(stop.cancel("user", LATER), members, LATER)
    assert (canceled.order_id, canceled.cancel_reason) == (take.order_id, SIBLING_CANCELED)
    # A sibling already final is left as it is (the fill that raced it lost).
    assert linked_changes(take.fill(a_fill(take, "210.00")), [entry, take, stop.cancel("user", T0)], LATER) == []


def test_an_otos_exit_ends_alone():
    entry, stop = family(OrderClass.OTO, Status.FILLED)[0], family(OrderClass.OTO)[1]
    assert stop.exit_group is None
    working = stop.activate(T0).accept("acct", T0)
    assert linked_changes(working.cancel("user", LATER), [entry, working], LATER) == []


def test_held_exits_are_created_held_and_only_activate_or_cancel():
    _, take, _ = family()
    assert isinstance(take.hold_exit().events[0], OrderHeld)
    with pytest.raises(DomainError):
        take.fill(a_fill(take, "210.00"))
    with pytest.raises(DomainError):
        take.accept("acct", T0)
    assert take.cancel("user", LATER).status is Status.CANCELED
    assert take.activate(LATER).status is Status.NEW


def test_family_ids_and_exit_order():
    entry, first, second = family()
    assert (family_id(entry), family_id(first)) == ("root", "root")
    assert [o.spec.order_type for o in exits_of([entry, second, first])] == [OrderType.LIMIT, OrderType.STOP]


def test_a_replace_of_a_class_order_takes_exit_prices_only():
    entry, take, _ = family()
    with pytest.raises(DomainError) as refused:
        replacement(entry, ReplaceTerms(limit_price=D("201.00")))
    assert refused.value.reason == "ORDER_NOT_REPLACEABLE"
    for terms in (ReplaceTerms(qty=D(5)), ReplaceTerms(time_in_force=TimeInForce.DAY)):
        with pytest.raises(DomainError) as refused:
            replacement(take, terms)
        assert refused.value.reason == "ORDER_NOT_REPLACEABLE"
    assert replacement(take, ReplaceTerms(limit_price=D("212.00"))).limit_price == D("212.00")
