"""Activities' pure rules: what an activity and an audit entry are, and what activity each
event makes (a fill, an account's opening), with its description."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.common.ids import derived_id
from services.common.trading import Side
from services.common.wire.conv import amount, on_price_grid, qty_str


@dataclass(frozen=True)
class TeachingCard:
    """A plain-language explanation served with an activity: what was charged, why it exists,
    how it was computed, and a tax note; ``verbosity`` long, medium or short."""

    title: str
    amount: str
    why: str
    how: str
    tax_note: str
    verbosity: str


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
    card: TeachingCard | None = None


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


def dividend_activity(
    *,
    account_id: str,
    user_id: str,
    symbol: str,
    ex_date: date,
    qty: Decimal,
    cash_amount: Decimal,
    net_amount: Decimal,
    posted_at: datetime,
    now: datetime,
) -> Activity:
    """A dividend's activity (one per account, symbol and ex-date): credited to a long,
    charged to a short."""
    held = f"{qty_str(qty)} {symbol}" if qty > 0 else f"short {qty_str(-qty)} {symbol}"
    verb = "Dividend" if qty > 0 else "Dividend charged"
    return Activity(
        derived_id("act", "dividend", account_id, symbol, ex_date.isoformat()),
        user_id,
        account_id,
        "dividend",
        symbol,
        "",
        "",
        None,
        qty,
        cash_amount,
        net_amount,
        f"{verb} on {held} at ${cash_amount}/share (ex-date {ex_date.isoformat()})",
        posted_at,
        now,
    )


# Verbosity by investor profile (README "Jobs"): a Trial investor is learning, an Income
# Builder knows the basics, a Diversifier wants the figure.
CARD_VERBOSITY = {"trial": "long", "income_builder": "medium", "diversifier": "short"}


def interest_card(profile: str, debit_balance: Decimal, rate_bps: int, days: int, charged: Decimal) -> TeachingCard:
    """The teaching card of a night's margin interest, as long as ``profile`` wants it
    (Trial long, Income Builder medium, Diversifier short; another profile: medium)."""
    verbosity = CARD_VERBOSITY.get(profile, "medium")
    debit, charge = f"${amount(debit_balance):,}", f"${amount(charged):,}"
    rate = f"{Decimal(rate_bps) / 100:.2f}%"
    nights = f"{days} day{'s' if days != 1 else ''}"
    formula = f"{debit} × {rate} ÷ 360 × {nights} = {charge}"
    if verbosity == "long":
        why = (
            f"Your cash balance is below zero: you have borrowed {debit} from your broker to hold more than "
            "your cash paid for (a margin loan). Like any loan it costs interest, charged for every night "
            "it is outstanding. Selling positions or adding cash pays it down and stops the charge."
        )
        how = (
            f"{formula}. Brokers count margin interest actual/360: each calendar day costs 1/360 of the "
            "yearly rate, so a Friday night's charge covers the weekend too."
        )
        tax = (
            "Margin interest may be deductible as investment interest expense (IRS Form 4952) if you "
            "itemize, up to your net investment income. This is not tax advice: consult a CPA."
        )
    elif verbosity == "medium":
        why = f"Interest on the {debit} you borrowed on margin (your cash is below zero)."
        how = f"{formula} (actual/360)."
        tax = "May be deductible as investment interest; consult a CPA."
    else:
        why = "Margin loan interest."
        how = formula
        tax = "Possibly deductible investment interest; consult a CPA."
    return TeachingCard("Margin interest", charge, why, how, tax, verbosity)


def interest_activity(
    *,
    account_id: str,
    user_id: str,
    session_date: date,
    debit_balance: Decimal,
    rate_bps: int,
    days: int,
    charged: Decimal,
    profile: str,
    charged_at: datetime,
    now: datetime,
) -> Activity:
    """A night's margin interest (one per account and session), with its teaching card."""
    return Activity(
        derived_id("act", "interest", account_id, session_date.isoformat()),
        user_id,
        account_id,
        "margin_interest",
        "",
        "",
        "",
        None,
        None,
        None,
        -charged,
        f"Margin interest on ${amount(debit_balance):,} for {days} day{'s' if days != 1 else ''}",
        charged_at,
        now,
        interest_card(profile, debit_balance, rate_bps, days, charged),
    )
