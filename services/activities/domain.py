"""Activities' pure rules: what an activity, an audit entry and a notification are, what
activity and notification each event makes (a fill, an account's opening), with its text,
and how a webhook delivery is signed."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from services.common.ids import derived_id
from services.common.instruments import parse_symbol
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
    # expiration activities: expired_worthless, exercised, assigned or cash_settled.
    subtype: str = ""
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


# The activity that carries the net amount of the activities the retention purge removed.
CARRIED_FORWARD = "carried_forward"


def carried_forward_description(through: datetime) -> str:
    return f"Balance carried forward from the activities until {through:%Y-%m-%d} (retention)"


def fill_description(side: Side, qty: Decimal, symbol: str, price: Decimal) -> str:
    """``Bought 10 AMZN at $224.05``, ``Sold 1 AMZN120629C00230000 at $0.02``: the price on
    its instrument's grid (an option premium in cents at any price)."""
    verb = "Bought" if side is Side.BUY else "Sold"
    option = parse_symbol(symbol).is_option
    return f"{verb} {qty_str(qty)} {symbol} at ${on_price_grid(price, option=option):,}"


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


@dataclass(frozen=True)
class FilledLeg:
    """One leg of a multi-leg fill: ``qty`` contracts (the spreads × the leg's ratio) at
    ``price`` per share, ``multiplier`` shares per contract."""

    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    multiplier: Decimal


def spread_fill_activities(
    *,
    fill_id: str,
    user_id: str,
    account_id: str,
    order_id: str,
    legs: Sequence[FilledLeg],
    filled_at: datetime,
    now: datetime,
) -> list[Activity]:
    """A multi-leg fill's activities: one per leg, as a single-leg fill of that leg would be
    (its symbol, side, qty and price), all naming the one fill. Each id derives from the
    fill's and the leg's symbol (a spread's legs have distinct symbols), so a redelivered
    fill records nothing twice."""
    return [
        replace(
            fill_activity(
                fill_id=fill_id,
                user_id=user_id,
                account_id=account_id,
                order_id=order_id,
                symbol=leg.symbol,
                side=leg.side,
                qty=leg.qty,
                price=leg.price,
                multiplier=leg.multiplier,
                filled_at=filled_at,
                now=now,
            ),
            activity_id=derived_id("act", fill_id, leg.symbol),
        )
        for leg in legs
    ]


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


# A notification's webhook: none configured when it was recorded, waiting to be posted, posted.
WEBHOOK_NONE = "none"
WEBHOOK_PENDING = "pending"
WEBHOOK_DELIVERED = "delivered"
# The webhook's signature header: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``.
SIGNATURE_HEADER = "X-MBT-Signature"


@dataclass(frozen=True)
class Notification:
    """A user-facing message about something that happened on their account (one per fill,
    ``kind`` "fill"). ``delivered_at`` is set once it is in the user's inbox (the
    ``mbt.send_fill_notification`` job), ``read_at`` once the user marked it read;
    ``webhook_state`` is one of ``WEBHOOK_NONE``, ``WEBHOOK_PENDING``, ``WEBHOOK_DELIVERED``."""

    notification_id: str
    user_id: str
    account_id: str
    kind: str
    symbol: str
    fill_id: str
    order_id: str
    message: str
    occurred_at: datetime
    created_at: datetime
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    webhook_state: str = WEBHOOK_NONE
    webhook_attempts: int = 0

    @property
    def outstanding(self) -> bool:
        """Not yet in the inbox, or its webhook not yet posted."""
        return self.delivered_at is None or self.webhook_state == WEBHOOK_PENDING


class DeliveryFailed(Exception):
    """A notifier could not deliver (the webhook unreachable, or it answered non-2xx)."""


class Notifier(Protocol):
    """Where a notification goes besides the user's inbox (the signed webhook)."""

    async def deliver(self, notification: Notification) -> None:
        """Deliver ``notification``; raises ``DeliveryFailed`` saying why it could not."""


def instrument_name(symbol: str, on: datetime) -> str:
    """How a message names an instrument: the ticker for a stock; for an OCC option symbol
    its root, expiry (month and day; the year too when it is not ``on``'s), strike and type:
    ``AMZN120720C00230000`` on 2012-06-21 is "AMZN Jul 20 $230 call"."""
    spec = parse_symbol(symbol)
    if not spec.is_option or spec.expiration is None or spec.strike is None:
        return spec.symbol
    expiry = spec.expiration
    year = "" if expiry.year == on.year else f" {expiry.year}"
    strike = spec.strike.normalize()
    return f"{spec.root or spec.underlying} {expiry:%b} {expiry.day}{year} ${strike:,f} {spec.option_type}"


def fill_message(side: Side, qty: Decimal, symbol: str, price: Decimal, filled_at: datetime) -> str:
    """The fill as a person says it — "Bought 10 AMZN at $224.05", "Sold 1 AMZN Jul 20 $230
    call at $2.15" — the price on its grid (an option's premium per share, in cents)."""
    verb = "Bought" if side is Side.BUY else "Sold"
    option = parse_symbol(symbol).is_option
    return f"{verb} {qty_str(qty)} {instrument_name(symbol, filled_at)} at ${on_price_grid(price, option=option):,}"


def fill_notification(
    *,
    fill_id: str,
    user_id: str,
    account_id: str,
    order_id: str,
    symbol: str,
    side: Side,
    qty: Decimal,
    price: Decimal,
    filled_at: datetime,
    now: datetime,
    webhook: bool,
) -> Notification:
    """A fill's notification, one per fill (its id derives from the fill's); ``webhook``: a
    webhook is configured, so it is to be posted there too."""
    message = fill_message(side, qty, symbol, price, filled_at)
    return _fill_notification(fill_id, user_id, account_id, order_id, symbol, message, filled_at, now, webhook)


def _fill_notification(
    fill_id: str,
    user_id: str,
    account_id: str,
    order_id: str,
    symbol: str,
    message: str,
    filled_at: datetime,
    now: datetime,
    webhook: bool,
) -> Notification:
    return Notification(
        notification_id=derived_id("ntf", fill_id),
        user_id=user_id,
        account_id=account_id,
        kind="fill",
        symbol=symbol,
        fill_id=fill_id,
        order_id=order_id,
        message=message,
        occurred_at=filled_at,
        created_at=now,
        webhook_state=WEBHOOK_PENDING if webhook else WEBHOOK_NONE,
    )


def spread_fill_message(qty: Decimal, net_price: Decimal, legs: Sequence[FilledLeg], filled_at: datetime) -> str:
    """A multi-leg fill as a person says it: the spreads, the net per spread (a positive
    ``net_price`` a debit paid, a negative one a credit received) and each leg — "Filled 2
    AMZN spreads at a $1.25 credit each: sold 2 AMZN Jul 20 $210 put at $3.10, bought 2 AMZN
    Jul 20 $200 put at $1.85"."""
    underlying = parse_symbol(legs[0].symbol).underlying
    plural = "spread" if qty == 1 else "spreads"
    kind = "debit" if net_price > 0 else "credit" if net_price < 0 else "net price"
    each = f"${on_price_grid(abs(net_price), option=True):,} {kind} each"
    said = [fill_message(leg.side, leg.qty, leg.symbol, leg.price, filled_at) for leg in legs]
    parts = ", ".join(text[0].lower() + text[1:] for text in said)
    return f"Filled {qty_str(qty)} {underlying} {plural} at a {each}: {parts}"


def spread_fill_notification(
    *,
    fill_id: str,
    user_id: str,
    account_id: str,
    order_id: str,
    qty: Decimal,
    net_price: Decimal,
    legs: Sequence[FilledLeg],
    filled_at: datetime,
    now: datetime,
    webhook: bool,
) -> Notification:
    """A multi-leg fill's one notification, shaped as a single fill's (its id derives from
    the fill's), naming the spreads' underlying as its symbol and saying every leg."""
    underlying = parse_symbol(legs[0].symbol).underlying
    message = spread_fill_message(qty, net_price, legs, filled_at)
    return _fill_notification(fill_id, user_id, account_id, order_id, underlying, message, filled_at, now, webhook)


def webhook_body(notification: Notification) -> bytes:
    """The JSON a webhook receives (UTF-8, sorted keys): ``id`` (the notification's, the same
    on every retry: a receiver drops what it has seen), ``kind``, ``user_id``, ``account_id``,
    ``symbol``, ``fill_id``, ``order_id``, ``message``, ``occurred_at`` (RFC 3339, UTC)."""
    content = {
        "id": notification.notification_id,
        "kind": notification.kind,
        "user_id": notification.user_id,
        "account_id": notification.account_id,
        "symbol": notification.symbol,
        "fill_id": notification.fill_id,
        "order_id": notification.order_id,
        "message": notification.message,
        "occurred_at": notification.occurred_at.isoformat().replace("+00:00", "Z"),
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-MBT-Signature`` value: ``t=<timestamp>,v1=<hex>``, the HMAC-SHA256 with
    ``secret`` (MBT_NOTIFY_WEBHOOK_SECRET) of the timestamp (Unix seconds), a dot and the
    body — the timestamp is signed so a captured delivery cannot be replayed later."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_webhook_signature(secret: bytes, header: str, body: bytes, now: int, tolerance_seconds: int = 300) -> bool:
    """What a receiver checks: ``header`` signs ``body`` with ``secret`` and its timestamp is
    within ``tolerance_seconds`` of ``now`` (Unix seconds). Compared in constant time."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(webhook_signature(secret, timestamp, body), f"t={timestamp},v1={fields.get('v1', '')}")


# -- weekly goals and their streaks -------------------------------------------------------

# Each investor profile's weekly goal (DESIGN.md §7's profiles; the targets are the project's).
INCOME_WEEKLY_PREMIUM = Decimal("100.00")
DIVERSIFIER_MIN_UNDERLYINGS = 5


@dataclass(frozen=True)
class WeekSummary:
    """What an account did in a week: its fills, the option premium it collected (the cash
    its option sells brought in), and the distinct underlyings of its open positions at the
    week's close."""

    fills: int
    premium_collected: Decimal
    underlyings: int


@dataclass(frozen=True)
class GoalVerdict:
    met: bool
    # "2 trades (goal: at least 1)".
    progress: str


def summarize_week(fills: Sequence[Activity], open_symbols: Sequence[str]) -> WeekSummary:
    """``fills``: the account's fill activities of the week (a multi-leg fill has one per
    leg, all with its fill id); ``open_symbols``: its open positions' symbols at the close
    (an option counts for its underlying). A trade is a fill, however many legs it had; the
    premium collected is what each option fill brought in net — a sold option's premium, a
    credit spread's net credit (its bought legs paid for out of it); a fill that cost money
    collected nothing."""
    option_net: dict[str, Decimal] = {}
    for f in fills:
        if parse_symbol(f.symbol).is_option:
            option_net[f.fill_id] = option_net.get(f.fill_id, Decimal(0)) + f.net_amount
    premium = sum((net for net in option_net.values() if net > 0), Decimal(0))
    underlyings = {parse_symbol(symbol).underlying for symbol in open_symbols}
    return WeekSummary(len({f.fill_id for f in fills}), premium, len(underlyings))


def judge_week(profile: str, week: WeekSummary) -> GoalVerdict:
    """The profile's weekly goal — Trial: at least one trade; Income Builder: at least
    ``INCOME_WEEKLY_PREMIUM`` of option premium collected; Diversifier: open positions in at
    least ``DIVERSIFIER_MIN_UNDERLYINGS`` underlyings at the week's close. Raises ValueError
    for another profile."""
    if profile == "trial":
        plural = "" if week.fills == 1 else "s"
        return GoalVerdict(week.fills >= 1, f"{week.fills} trade{plural} (goal: at least 1)")
    if profile == "income_builder":
        return GoalVerdict(
            week.premium_collected >= INCOME_WEEKLY_PREMIUM,
            f"${amount(week.premium_collected):,} of option premium collected "
            f"(goal: at least ${INCOME_WEEKLY_PREMIUM:,})",
        )
    if profile == "diversifier":
        return GoalVerdict(
            week.underlyings >= DIVERSIFIER_MIN_UNDERLYINGS,
            f"positions in {week.underlyings} underlyings (goal: at least {DIVERSIFIER_MIN_UNDERLYINGS})",
        )
    raise ValueError(f"no weekly goal for investor profile {profile!r}")


def next_streak(previous: int, met: bool) -> int:
    """Consecutive weeks met after this one: ``previous`` + 1 when met, 0 when not."""
    return previous + 1 if met else 0


def nudge_text(verdict: GoalVerdict, streak: int, previous: int) -> str:
    """The system_nudge's description: the verdict, and whether the streak goes on."""
    if verdict.met:
        weeks = "week" if streak == 1 else "weeks"
        going = "Your streak starts" if streak == 1 else "Your streak continues"
        return f"Weekly goal met: {verdict.progress}. {going}: {streak} {weeks} in a row."
    if previous:
        return (
            f"Weekly goal not met: {verdict.progress}. Your {previous}-week streak ends; "
            "next week's goal starts a new one."
        )
    return f"Weekly goal not met: {verdict.progress}. Next week's goal starts a streak."


def nudge_activity(
    *, account_id: str, user_id: str, week_end: date, text: str, at: datetime, now: datetime
) -> Activity:
    """The week's ``system_nudge`` (one per account and week: its id derives from both)."""
    return Activity(
        derived_id("act", "nudge", account_id, week_end.isoformat()),
        user_id,
        account_id,
        "system_nudge",
        "",
        "",
        "",
        None,
        None,
        None,
        Decimal(0),
        text,
        at,
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
    reason: str = "",
) -> Activity:
    """An option position expired, was exercised or assigned (``subtype``): one
    ``expiration`` activity, its ``net_amount`` the cash it moved (the stock paid or received
    at the strike, or the cash settlement), ``qty`` the signed contracts, ``price`` the
    strike; the description names the closing price used and the stock position after, and
    for one that expired worthless why (``reason``: out of the money, or a long in the money
    left unexercised by a do-not-exercise instruction or a cash account that could not carry
    the stock)."""
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
    if subtype == "expired_worthless" and reason:
        words.append(reason)
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
        card=interest_card(profile, debit_balance, rate_bps, days, charged),
    )
