"""The Order aggregate (no database): each transition goes through the table, returns the
new order and records one past-tense event with the order before and after."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.common.errors import DomainError
from services.common.trading import AssetClass, OrderType, Side, TimeInForce
from services.orders.domain.model import (
    Fill,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderSpec,
    OrderTriggered,
    Replacement,
    Status,
)

T0 = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=1)
SPEC = OrderSpec(
    "c-1",
    "AMZN",
    AssetClass.US_EQUITY,
    Side.BUY,
    Decimal(10),
    OrderType.LIMIT,
    TimeInForce.DAY,
    Decimal("220.50"),
    None,
)


def new_order(**changes) -> Order:
    return replace(
        Order("ord_1", "u", "", SPEC, Decimal(1), Status.NEW, T0, T0, expires_at=T0 + timedelta(hours=6)), **changes
    )


def a_fill(qty=Decimal(10), price=Decimal("220.31")) -> Fill:
    return Fill(
        "fill_1",
        "ord_1",
        "AMZN",
        Side.BUY,
        qty,
        price,
        Decimal(1),
        Decimal("220.30"),
        Decimal(100),
        price,
        Decimal(200),
        LATER,
        0,
        1,
        "limit_buy_at_ask",
        LATER,
    )


def test_accept_records_order_accepted_with_the_account():
    accepted = new_order().accept("acct_1", LATER)
    assert (accepted.status, accepted.account_id, accepted.accepted_at) == (Status.ACCEPTED, "acct_1", LATER)
    [event] = accepted.events
    assert isinstance(event, OrderAccepted) and event.order == accepted and event.order.events == ()


def test_reject_keeps_reason_and_sentence_for_a_replay():
    rejected = new_order().reject("insufficient_buying_power", "buying power is $1.00", LATER)
    assert (rejected.status, rejected.reject_reason, rejected.reject_message) == (
        Status.REJECTED,
        "insufficient_buying_power",
        "buying power is $1.00",
    )
    assert [type(e) for e in rejected.events] == [OrderRejected]


def test_a_fill_is_checked_and_records_the_order_before_and_after():
    working = new_order().accept("acct_1", T0)
    filled = working.fill(a_fill())
    assert (filled.status, filled.filled_qty, filled.filled_avg_price, filled.fills) == (
        Status.FILLED,
        Decimal(10),
        Decimal("220.31"),
        (a_fill(),),
    )
    event = filled.events[-1]
    assert isinstance(event, OrderFilled) and event.previous.status is Status.ACCEPTED and event.fill == a_fill()
    with pytest.raises(DomainError) as refused:
        working.fill(a_fill(price=Decimal("221.00")))  # above the limit
    assert refused.value.reason == "INVALID_ARGUMENT"
    with pytest.raises(DomainError) as refused:
        filled.fill(a_fill())
    assert refused.value.reason == "FAILED_PRECONDITION"


def test_cancel_is_idempotent_and_records_once():
    canceled = new_order().accept("acct_1", T0).cancel("user", LATER)
    assert [type(e) for e in canceled.events] == [OrderAccepted, OrderCanceled]
    again = canceled.cancel("user", LATER + timedelta(minutes=1))
    assert again is canceled
    with pytest.raises(DomainError) as refused:
        new_order().accept("acct_1", T0).fill(a_fill()).cancel("user", LATER)
    assert refused.value.reason == "ORDER_NOT_CANCELABLE"


def test_a_replace_is_begun_then_takes_effect_as_one_event():
    working = new_order().accept("acct_1", T0)
    spec = replace(SPEC, qty=Decimal(20))
    pending = Replacement(2, spec, None, working.expires_at, LATER, LATER)
    begun = working.begin_replace(pending)
    assert begun.events == working.events and begun.pending == pending
    with pytest.raises(DomainError) as busy:
        begun.begin_replace(pending)
    assert busy.value.reason == "CONFLICT"  # retryable: another replace is in flight
    replaced = begun.replace_terms(LATER)
    assert (replaced.version, replaced.spec.qty, replaced.pending, replaced.replaced_at) == (
        2,
        Decimal(20),
        None,
        LATER,
    )
    event = replaced.events[-1]
    assert isinstance(event, OrderReplaced) and event.previous.spec.qty == Decimal(10)


def test_trigger_once_and_only_for_stops():
    stop = new_order(spec=replace(SPEC, order_type=OrderType.STOP_LIMIT, stop_price=Decimal("220.00"))).accept(
        "acct_1", T0
    )
    triggered = stop.trigger(LATER)
    assert triggered.triggered_at == LATER and isinstance(triggered.events[-1], OrderTriggered)
    assert triggered.trigger(LATER + timedelta(minutes=1)) is triggered
    with pytest.raises(DomainError):
        new_order().accept("acct_1", T0).trigger(LATER)


def test_a_day_order_expires_at_its_close_and_a_pending_replace_ends_with_it():
    working = new_order().accept("acct_1", T0)
    begun = working.begin_replace(Replacement(2, SPEC, None, None, LATER, LATER))
    expired = begun.expire()
    assert (expired.status, expired.expired_at, expired.pending) == (Status.EXPIRED, working.expires_at, None)
    event = expired.events[-1]
    assert isinstance(event, OrderExpired) and event.previous.pending is not None
    assert expired.cancel_reason == ""


def test_an_order_on_an_expired_contract_expires_with_the_reason():
    expired = new_order().accept("acct_1", T0).expire("contract_expired")
    assert (expired.status, expired.cancel_reason) == (Status.EXPIRED, "contract_expired")
