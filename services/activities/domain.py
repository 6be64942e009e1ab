"""Activities' pure rules: what an activity and an audit entry are, and what activity each
event makes (a fill, an account's opening), with its description."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.common.ids import derived_id
from services.common.trading import Side
from services.common.wire.conv import amount, on_price_grid, qty_str


@dataclass(frozen=True)
class Activity:
    """One line of a user's activity stream; ``net_amount`` is its signed cash effect, so a
    user's activities add up to their cash."""

    activity_id: str
    user_id: str
    account_id: str
    activity_type: str
    symbol: str
    order_id: str
    fill_id: str
    side: Side | None
    qty: Decimal | None
    price: Decimal | None
    net_amount: Decimal
    description: str
    occurred_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    """One row of the append-only audit trail (actor type user, ops or system)."""

    audit_id: str
    actor_type: str
    actor_id: str
    action: str
    entity_type: str
    entity_id: str
    user_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str
    service: str
    occurred_at: datetime
    recorded_at: datetime


def fill_description(side: Side, qty: Decimal, symbol: str, price: Decimal) -> str:
    verb = "Bought" if side is Side.BUY else "Sold"
    return f"{verb} {qty_str(qty)} {symbol} at ${on_price_grid(price):,}"


def opening_description(starting_cash: Decimal) -> str:
    return f"Account opened with ${amount(starting_cash):,}"


def fill_activity(
    *,
    fill_id: str,
    user_id: str,
    account_id: str,
    order_id: str,
    symbol: str,
    side: Side,
    qty: Decimal,
    price: Decimal,
    multiplier: Decimal,
    filled_at: datetime,
    now: datetime,
) -> Activity:
    """A fill's activity: a buy spends qty × price × multiplier, a sell receives it."""
    signed = qty if side is Side.BUY else -qty
    return Activity(
        derived_id("act", fill_id),
        user_id,
        account_id,
        "fill",
        symbol,
        order_id,
        fill_id,
        side,
        qty,
        price,
        -signed * price * multiplier,
        fill_description(side, qty, symbol, price),
        filled_at,
        now,
    )


def opening_activity(
    *, account_id: str, user_id: str, starting_cash: Decimal, opened_at: datetime, now: datetime
) -> Activity:
    return Activity(
        derived_id("act", "opened", account_id),
        user_id,
        account_id,
        "account_opened",
        "",
        "",
        "",
        None,
        None,
        None,
        starting_cash,
        opening_description(starting_cash),
        opened_at,
        now,
    )
