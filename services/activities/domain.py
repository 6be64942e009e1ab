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
    # expiration activities: expired_worthless, exercised, assigned or cash_settled.
    subtype: str = ""


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


# The words of each expiration subtype, and Alpaca's activity type for it (OPEXP option
# expiration, OPEXC exercise, OPASN assignment; a cash settlement is the long's exercise or
# the short's assignment).
_SETTLEMENT_WORDS = {
    "expired_worthless": "expired worthless",
    "exercised": "exercised",
    "assigned": "assigned",
    "cash_settled": "cash-settled",
}


def alpaca_activity_type(subtype: str, qty: Decimal) -> str:
    if subtype == "expired_worthless":
        return "OPEXP"
    if subtype == "exercised" or (subtype == "cash_settled" and qty > 0):
        return "OPEXC"
    return "OPASN"


def expiration_activity(
    *,
    settlement_id: str,
    user_id: str,
    account_id: str,
    symbol: str,
    qty: Decimal,
    subtype: str,
    strike: Decimal,
    settlement_price: Decimal | None,
    stock: tuple[str, Side, Decimal] | None,
    stock_position_qty: Decimal | None,
    cash_delta: Decimal,
    early: bool,
    occurred_at: datetime,
    now: datetime,
) -> Activity:
    """An option position expired, was exercised or assigned (``subtype``): one
    ``expiration`` activity, its ``net_amount`` the cash it moved (the stock paid or received
    at the strike, or the cash settlement), ``qty`` the signed contracts, ``price`` the
    strike; the description names the closing price used and the stock position after."""
    words = [f"{alpaca_activity_type(subtype, qty)}: {qty_str(abs(qty))} {symbol} {_SETTLEMENT_WORDS[subtype]}"]
    words.append(
        "early, at the holder's request"
        if early
        else f"at the close of ${on_price_grid(settlement_price or Decimal(0)):,}"
    )
    if stock is not None:
        underlying, side, shares = stock
        verb = "bought" if side is Side.BUY else "sold"
        words.append(f"{qty_str(shares)} {underlying} {verb} at ${on_price_grid(strike):,}")
        words.append(f"{underlying} position now {qty_str(stock_position_qty or Decimal(0))}")
    return Activity(
        derived_id("act", settlement_id),
        user_id,
        account_id,
        "expiration",
        symbol,
        "",
        settlement_id,
        None,
        qty,
        strike,
        cash_delta,
        "; ".join(words),
        occurred_at,
        now,
        subtype,
    )
