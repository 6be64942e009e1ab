"""Option contracts in time (pure rules): when a contract stops trading, and which
contracts the quote model lists — the exchange's expiry and strike grid.

Expiry. A contract trades until the XNYS close of its last trading day: the expiration
date (or, when that date is not a session, the last session before it — pre-2015 monthly
equity options carry the Saturday after the third Friday in their OCC symbol); for
AM-settled index options (VIX, standard SPX) the session before the expiration date, their
settlement value being the index's opening value on that date. After that close a contract
is expired: never listed, never tradable.

Listing (model quotes only; recorded quotes list what was recorded). On each trading day:
* expiries: every Friday (the last session on or before it when it is a holiday) from today
  to ``WEEKLY_HORIZON_DAYS`` ahead (weeklies), and the third Friday of this month and the
  next ``MONTHLY_COUNT - 1`` months (monthlies), today's included until its close;
* strikes: on the increments of the exchanges' strike-price intervals for equity options —
  $2.50 below $25, $5 from $25 to $200, $10 above $200 (Cboe Options Rules 4.5, the
  $2.50/$5/$10 intervals) — within ``STRIKE_BAND`` of the underlying's reference price.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_CEILING, Decimal

from services.common.instruments import AM, SymbolSpec, contract_terms
from services.marketdata.domain.calendar import MarketCalendar, new_york_midnight_ns

WEEKLY_HORIZON_DAYS = 35
MONTHLY_COUNT = 3
# Strikes within 25% either side of the reference price: about 14 strikes around a $220
# stock, 200-odd contracts over its listed expiries.
STRIKE_BAND = Decimal("0.25")
FRIDAY = 4
REGULAR_CLOSE_NS = 16 * 3600 * 1_000_000_000


def last_trade_ns(spec: SymbolSpec, calendar: MarketCalendar) -> int | None:
    """Nanoseconds of the close that ends trading in the option (None before the calendar;
    16:00 New York on the last day when it lies beyond the calendar's end)."""
    terms = contract_terms(spec)
    if spec.expiration is None:
        raise ValueError(f"{spec.symbol} is not an option contract: it has no expiration")
    last_day = spec.expiration - timedelta(days=1) if terms.settlement_time == AM else spec.expiration
    if last_day > calendar.last_date:
        return new_york_midnight_ns(last_day) + REGULAR_CLOSE_NS
    session = calendar.session_on_or_before(last_day)
    return None if session is None else session.close_ns


def is_expired(spec: SymbolSpec, now_ns: int, calendar: MarketCalendar) -> bool:
    last = last_trade_ns(spec, calendar)
    return last is None or now_ns >= last


def strike_increment(price: Decimal) -> Decimal:
    """The strike interval at ``price``: $2.50 below $25, $5 to $200, $10 above."""
    if price < 25:
        return Decimal("2.5")
    if price <= 200:
        return Decimal(5)
    return Decimal(10)


def listed_strikes(reference: Decimal) -> list[Decimal]:
    """Strikes on the exchange increments within ``STRIKE_BAND`` of ``reference``, ascending."""
    low, high = reference * (1 - STRIKE_BAND), reference * (1 + STRIKE_BAND)
    strikes = []
    strike = Decimal("2.5")
    while strike <= high:
        if strike >= low:
            strikes.append(strike)
        following = strike + strike_increment(strike)
        # Each range's strikes are multiples of its own increment: after $200 comes $210.
        step = strike_increment(following)
        strike = (following / step).to_integral_value(ROUND_CEILING) * step
    return strikes


def _third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(FRIDAY - first.weekday()) % 7 + 14)


def _session_date(day: date, calendar: MarketCalendar) -> date | None:
    """``day`` when it is a session, else the last session before it (a Friday holiday)."""
    session = calendar.session_on_or_before(day)
    return None if session is None else session.date


def listed_expirations(today: date, calendar: MarketCalendar) -> list[date]:
    """The model's listed expiries on ``today``, ascending (see the module docstring)."""
    fridays = {
        today + timedelta(days=(FRIDAY - today.weekday()) % 7 + 7 * week)
        for week in range(WEEKLY_HORIZON_DAYS // 7 + 1)
    }
    weekly = {f for f in fridays if f <= today + timedelta(days=WEEKLY_HORIZON_DAYS)}
    monthly = set()
    year, month = today.year, today.month
    for _ in range(MONTHLY_COUNT + 1):
        monthly.add(_third_friday(year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    nearest_monthly = sorted(m for m in monthly if m >= today)[:MONTHLY_COUNT]
    expiries = {_session_date(day, calendar) for day in weekly | set(nearest_monthly)}
    return sorted(day for day in expiries if day is not None and day >= today)
