"""Activities' proto <-> domain conversions."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal

from google.protobuf import json_format, struct_pb2

from mbt.accounts.v1 import accounts_pb2
from mbt.activities.v1 import activities_pb2
from mbt.common.v1 import audit_pb2
from services.activities.audit_chain import Break, Link
from services.activities.domain import CARRIED_FORWARD, Activity, AuditEntry, FilledLeg, Notification
from services.activities.domain import dividend_activity as _dividend_activity
from services.activities.domain import expiration_activity as _expiration_activity
from services.activities.domain import fill_activity as _fill_activity
from services.activities.domain import fill_notification as _fill_notification
from services.activities.domain import interest_activity as _interest_activity
from services.activities.domain import opening_activity as _opening_activity
from services.activities.domain import spread_fill_activities as _spread_fill_activities
from services.activities.domain import spread_fill_notification as _spread_fill_notification
from services.common.instruments import parse_symbol
from services.common.wire.conv import (
    amount_str,
    from_date,
    from_timestamp,
    parse_decimal,
    parse_enum,
    qty_str,
    symbol_price_str,
    to_timestamp,
)
from services.common.wire.trading import SIDE_WIRE, SIDES

TYPES = {
    activities_pb2.ACTIVITY_TYPE_FILL: "fill",
    activities_pb2.ACTIVITY_TYPE_DIVIDEND: "dividend",
    activities_pb2.ACTIVITY_TYPE_EXPIRATION: "expiration",
    activities_pb2.ACTIVITY_TYPE_MARGIN_INTEREST: "margin_interest",
    activities_pb2.ACTIVITY_TYPE_ACCOUNT_OPENED: "account_opened",
    activities_pb2.ACTIVITY_TYPE_SYSTEM_NUDGE: "system_nudge",
    activities_pb2.ACTIVITY_TYPE_CARRIED_FORWARD: CARRIED_FORWARD,
}
TYPE_WIRE = {v: k for k, v in TYPES.items()}
ACTOR_WIRE = {"user": audit_pb2.ACTOR_TYPE_USER, "ops": audit_pb2.ACTOR_TYPE_OPS, "system": audit_pb2.ACTOR_TYPE_SYSTEM}
ACTOR_TYPES = {number: name for name, number in ACTOR_WIRE.items()}


def _fill_of(payload) -> dict:
    """Whose fill an OrderFilled event reports, and when, as the domain's keywords."""
    fill, order = payload.fill, payload.order
    return {
        "fill_id": fill.fill_id,
        "user_id": order.user_id,
        "account_id": order.account_id,
        "order_id": order.order_id,
        "filled_at": from_timestamp(fill.filled_at, "filled_at", required=True),
    }


def _fill_terms(payload) -> dict:
    """What an OrderFilled event says of its fill, as the domain's keywords."""
    fill = payload.fill
    return _fill_of(payload) | {
        "symbol": fill.symbol,
        "side": parse_enum(SIDES, fill.side, "side"),
        "qty": parse_decimal(fill.qty, "qty", required=True),
        "price": parse_decimal(fill.price, "price", required=True),
    }


def _filled_legs(fill) -> list[FilledLeg]:
    """A multi-leg fill's legs (none for a single-leg fill), each with its contract's
    multiplier."""
    return [
        FilledLeg(
            symbol=leg.symbol,
            side=parse_enum(SIDES, leg.side, "fill.legs.side"),
            qty=parse_decimal(leg.qty, "fill.legs.qty", required=True),
            price=parse_decimal(leg.price, "fill.legs.price", required=True),
            multiplier=parse_symbol(leg.symbol).multiplier,
        )
        for leg in fill.legs
    ]


def _spread_terms(payload) -> dict:
    """What an OrderFilled event of a multi-leg order says, as the domain's keywords."""
    return _fill_of(payload) | {"legs": _filled_legs(payload.fill)}


def fill_activities(payload, now: datetime) -> list[Activity]:
    """The activities of an OrderFilled event: one, or one per leg of a multi-leg fill (it
    has no one symbol or side of its own)."""
    if payload.fill.legs:
        return _spread_fill_activities(**_spread_terms(payload), now=now)
    multiplier = parse_decimal(payload.fill.multiplier, "multiplier") or Decimal(1)
    return [_fill_activity(**_fill_terms(payload), multiplier=multiplier, now=now)]


SUBTYPES = {
    accounts_pb2.OPTION_OUTCOME_EXPIRED_WORTHLESS: "expired_worthless",
    accounts_pb2.OPTION_OUTCOME_EXERCISED: "exercised",
    accounts_pb2.OPTION_OUTCOME_ASSIGNED: "assigned",
    accounts_pb2.OPTION_OUTCOME_CASH_SETTLED: "cash_settled",
}


def expiration_activity(payload, now: datetime) -> Activity:
    """The activity of an accounts OptionSettled event."""
    settlement = payload.settlement
    stock = None
    if settlement.stock_symbol:
        stock = (
            settlement.stock_symbol,
            parse_enum(SIDES, settlement.stock_side, "stock_side"),
            parse_decimal(settlement.stock_qty, "stock_qty", required=True),
        )
    return _expiration_activity(
        settlement_id=payload.settlement_id,
        user_id=payload.user_id,
        account_id=payload.account_id,
        symbol=settlement.symbol,
        qty=parse_decimal(settlement.qty, "qty", required=True),
        subtype=SUBTYPES[settlement.outcome],
        strike=parse_decimal(settlement.strike_price, "strike_price", required=True),
        settlement_price=parse_decimal(settlement.settlement_price, "settlement_price"),
        stock=stock,
        stock_position_qty=parse_decimal(payload.stock_position_qty, "stock_position_qty"),
        cash_delta=parse_decimal(settlement.cash_delta, "cash_delta", required=True),
        early=payload.early,
        occurred_at=from_timestamp(payload.occurred_at, "occurred_at", required=True),
        now=now,
        reason=settlement.reason,
    )


def fill_notification(payload, now: datetime, *, webhook: bool) -> Notification:
    """The notification of an OrderFilled event, one for a multi-leg fill too (``webhook``:
    one is configured)."""
    if payload.fill.legs:
        return _spread_fill_notification(
            **_spread_terms(payload),
            qty=parse_decimal(payload.fill.qty, "qty", required=True),
            net_price=parse_decimal(payload.fill.price, "price", required=True),
            now=now,
            webhook=webhook,
        )
    return _fill_notification(**_fill_terms(payload), now=now, webhook=webhook)


def notification_to_proto(row: Notification) -> activities_pb2.Notification:
    return activities_pb2.Notification(
        notification_id=row.notification_id,
        kind=row.kind,
        account_id=row.account_id,
        symbol=row.symbol,
        fill_id=row.fill_id,
        order_id=row.order_id,
        message=row.message,
        occurred_at=to_timestamp(row.occurred_at),
        delivered_at=to_timestamp(row.delivered_at),
        read_at=to_timestamp(row.read_at),
    )


def opening_activity(payload, now: datetime) -> Activity:
    """The activity of an AccountOpened event."""
    return _opening_activity(
        account_id=payload.account_id,
        user_id=payload.user_id,
        starting_cash=parse_decimal(payload.starting_cash, "starting_cash", required=True),
        opened_at=from_timestamp(payload.opened_at, "opened_at", required=True),
        now=now,
    )


def dividend_activity(payload, now: datetime) -> Activity:
    """The activity of a DividendPosted event."""
    return _dividend_activity(
        account_id=payload.account_id,
        user_id=payload.user_id,
        symbol=payload.symbol,
        ex_date=from_date(payload.ex_date, "ex_date", required=True),
        qty=parse_decimal(payload.qty, "qty", required=True),
        cash_amount=parse_decimal(payload.cash_amount, "cash_amount", required=True),
        net_amount=parse_decimal(payload.net_amount, "net_amount", required=True),
        posted_at=from_timestamp(payload.posted_at, "posted_at", required=True),
        now=now,
    )


def interest_activity(payload, now: datetime) -> Activity:
    """The activity of a MarginInterestCharged event, with its teaching card."""
    return _interest_activity(
        account_id=payload.account_id,
        user_id=payload.user_id,
        session_date=from_date(payload.session_date, "session_date", required=True),
        debit_balance=parse_decimal(payload.debit_balance, "debit_balance", required=True),
        rate_bps=payload.rate_bps,
        days=payload.days,
        charged=parse_decimal(payload.amount, "amount", required=True),
        profile=payload.investor_profile,
        charged_at=from_timestamp(payload.charged_at, "charged_at", required=True),
        now=now,
    )


def audit_entry(payload: audit_pb2.AuditRecorded, now: datetime) -> AuditEntry:
    return AuditEntry(
        audit_id=payload.audit_id,
        actor_type=ACTOR_TYPES.get(payload.actor_type, "system"),
        actor_id=payload.actor_id,
        action=payload.action,
        entity_type=payload.entity_type,
        entity_id=payload.entity_id,
        user_id=payload.user_id,
        before=json_format.MessageToDict(payload.before) if payload.HasField("before") else None,
        after=json_format.MessageToDict(payload.after) if payload.HasField("after") else None,
        request_id=payload.request_id,
        service=payload.service,
        occurred_at=from_timestamp(payload.occurred_at, "occurred_at", required=True),
        recorded_at=now,
    )


def activity_to_proto(row: Activity) -> activities_pb2.Activity:
    return activities_pb2.Activity(
        activity_id=row.activity_id,
        activity_type=TYPE_WIRE[row.activity_type],
        account_id=row.account_id,
        symbol=row.symbol,
        order_id=row.order_id,
        fill_id=row.fill_id,
        side=SIDE_WIRE[row.side] if row.side is not None else None,
        qty=qty_str(row.qty),
        price=symbol_price_str(row.price, row.symbol),
        net_amount=amount_str(row.net_amount),
        description=row.description,
        occurred_at=to_timestamp(row.occurred_at),
        created_at=to_timestamp(row.created_at),
        card=activities_pb2.TeachingCard(**asdict(row.card)) if row.card else None,
        subtype=row.subtype,
    )


def _struct(value: dict | None) -> struct_pb2.Struct | None:
    if value is None:
        return None
    message = struct_pb2.Struct()
    json_format.ParseDict(value, message)
    return message


def audit_to_proto(row: AuditEntry) -> activities_pb2.AuditEntry:
    record = audit_pb2.AuditRecorded(
        audit_id=row.audit_id,
        actor_type=ACTOR_WIRE[row.actor_type],
        actor_id=row.actor_id,
        action=row.action,
        entity_type=row.entity_type,
        entity_id=row.entity_id,
        user_id=row.user_id,
        before=_struct(row.before),
        after=_struct(row.after),
        request_id=row.request_id,
        occurred_at=to_timestamp(row.occurred_at),
        service=row.service,
    )
    return activities_pb2.AuditEntry(audit_id=row.audit_id, record=record, recorded_at=to_timestamp(row.recorded_at))


def link_to_proto(link: Link) -> activities_pb2.AuditChainLink:
    return activities_pb2.AuditChainLink(sequence=link.sequence, audit_id=link.audit_id, row_hash=link.row_hash)


def link_from_proto(message: activities_pb2.AuditChainLink) -> Link:
    return Link(message.sequence, message.audit_id, message.row_hash)


def break_to_proto(broken: Break) -> activities_pb2.AuditChainBreak:
    return activities_pb2.AuditChainBreak(sequence=broken.sequence, audit_id=broken.audit_id, reason=broken.reason)
