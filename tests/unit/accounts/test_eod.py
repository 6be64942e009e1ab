"""End-of-day rules (``services.accounts.domain.eod``): holdings replayed from the ledger at a
moment, snapshots marked at what closing would get, portfolio-history periods, the dividend of
a long and a short, margin interest actual/360 to the cent — and the Account aggregate's
postings of them."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.accounts.domain.account import Account, DividendPosted, InterestCharged
from services.accounts.domain.eod import (
    LedgerEntry,
    dividend_amount,
    history,
    holdings_at,
    margin_interest,
    period_start,
    snapshot,
)
from services.accounts.domain.rules import AccountType, Mark, Profile
from services.common.errors import DomainError
from services.common.trading import Side

D = Decimal
T0 = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)
CLOSE = datetime(2012, 6, 21, 20, 0, tzinfo=UTC)


def entry(kind, at, cash, symbol="", side=None, qty="0", price="0"):
    return LedgerEntry(kind, symbol, side, D(qty), D(price), D(1), D(cash), at)


LEDGER = [
    entry("opening", T0, "10000"),
    entry("fill", T0.replace(minute=5), "-2231.00", "AMZN", Side.BUY, "10", "223.10"),
    entry("fill", T0.replace(minute=10), "1160.00", "GOOG", Side.SELL, "2", "580.00"),
    entry("fill", CLOSE.replace(minute=30), "-580.00", "GOOG", Side.BUY, "1", "580.00"),  # after the close
]


def test_holdings_at_a_moment_replay_the_entries_up_to_it():
    held = holdings_at(LEDGER, CLOSE)
    assert held.cash == D("8929.00")
    assert {s: p.qty for s, p in held.positions.items()} == {"AMZN": D(10), "GOOG": D(-2)}
    assert holdings_at(LEDGER, T0.replace(minute=5), inclusive=False).positions == {}


def test_a_snapshot_marks_longs_at_the_bid_and_shorts_at_the_ask_and_equity_adds_up():
    marks = {"AMZN": Mark(D("220.00"), D("220.50"), CLOSE), "GOOG": Mark(D("570.00"), D("571.00"), CLOSE)}
    value = snapshot(holdings_at(LEDGER, CLOSE), marks)
    assert (value.long_market_value, value.short_market_value) == (D("2200.00"), D("-1142.00"))
    assert value.equity == D("8929.00") + D("2200.00") - D("1142.00")
    assert [(p.symbol, p.mark) for p in value.positions] == [("AMZN", D("220.00")), ("GOOG", D("571.00"))]
    # no usable quote: the entry price, as everywhere else
    assert snapshot(holdings_at(LEDGER, CLOSE), {}).long_market_value == D("2231.00")


@pytest.mark.parametrize(
    "period, first",
    [
        ("1W", date(2012, 6, 14)),
        ("1M", date(2012, 5, 21)),
        ("", date(2012, 5, 21)),
        ("3M", date(2012, 3, 21)),
        ("1A", date(2011, 6, 21)),
        ("all", None),
    ],
)
def test_periods_end_today(period, first):
    assert period_start(period, date(2012, 6, 21)) == first


def test_a_month_back_from_the_31st_lands_on_the_last_day_of_a_shorter_month():
    assert period_start("3M", date(2012, 5, 31)) == date(2012, 2, 28)
    assert period_start("1M", date(2012, 1, 15)) == date(2011, 12, 15)


def test_an_unknown_period_is_refused():
    with pytest.raises(DomainError) as refused:
        period_start("2W", date(2012, 6, 21))
    assert refused.value.reason == "INVALID_ARGUMENT" and refused.value.metadata == {"field": "period"}


def test_history_measures_each_close_against_the_base():
    points = history(D("10000"), [(CLOSE, D("10100")), (CLOSE, D("9950"))])
    assert [(p.profit_loss, p.profit_loss_pct) for p in points] == [(D("100"), D("0.01")), (D("-50"), D("-0.005"))]


def test_a_dividend_credits_a_long_and_charges_a_short_to_the_cent():
    assert dividend_amount(D(10), D("2.65")) == D("26.50")
    assert dividend_amount(D(-5), D("2.65")) == D("-13.25")
    assert dividend_amount(D(3), D("0.094643")) == D("0.28")


def test_margin_interest_is_actual_360_to_the_cent_and_only_on_a_debit():
    assert margin_interest(D("10000"), 800, 1) == D("2.22")  # 10,000 x 8% / 360
    assert margin_interest(D("10000"), 800, 3) == D("6.67")  # a weekend
    assert margin_interest(D("0"), 800, 1) == D(0)
    assert margin_interest(D("-5"), 800, 1) == D(0)


def test_the_account_posts_a_dividend_and_charges_interest_on_margin_only():
    account = Account.open("acct_1", "u1", Profile.TRIAL, T0, AccountType.MARGIN)
    account.events.clear()
    assert account.post_dividend("led_d", "AAPL", date(2012, 8, 9), date(2012, 8, 9), D(-5), D("2.65"), CLOSE) == D(
        "-13.25"
    )
    assert account.charge_interest("led_i", date(2012, 8, 9), D("2000"), 800, 1, CLOSE) == D("0.44")
    assert account.cash == D("10000.00") - D("13.25") - D("0.44")
    posted, charged = account.events
    assert isinstance(posted, DividendPosted) and posted.cash_after == D("9986.75")
    assert isinstance(charged, InterestCharged) and charged.profile is Profile.TRIAL
    cash = Account.open("acct_2", "u2", Profile.TRIAL, T0)
    assert cash.charge_interest("led_j", date(2012, 8, 9), D("2000"), 800, 1, CLOSE) == D(0)
    assert cash.cash == D("10000.00")
