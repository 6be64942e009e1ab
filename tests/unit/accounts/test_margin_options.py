"""Options in a margin account (no database): options are not marginable, so they count
exactly as in a cash account — a long option's premium in full, a short option its
requirement R (``options.book_requirement``) — while stock keeps Reg T's 50%
(``rules.excess``; README "Option buying power")."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.accounts.domain.account import Account
from services.accounts.domain.rules import (
    AccountType,
    FillTerms,
    HoldLeg,
    HoldTerms,
    Mark,
    Profile,
    Valuation,
    buying_power,
    excess,
    options_buying_power,
)
from services.common.errors import DomainError
from services.common.trading import Side

AT = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)
D = Decimal
START = D(100000)
CALL = "AMZN120720C00230000"
PUT = "AMZN120720P00210000"
LOWER_PUT = "AMZN120720P00200000"


def opened(account_type: AccountType) -> Account:
    account = Account.open("acct_1", "u", Profile.DIVERSIFIER, AT, account_type)
    account.events.clear()
    return account


def single(side: Side, qty, price, symbol: str) -> HoldTerms:
    return HoldTerms(symbol, side, D(qty), D(price), D(100) if len(symbol) > 6 else D(1))


def mark(bid, ask) -> Mark:
    return Mark(D(bid), D(ask), AT)


def fill(account: Account, order_id: str, side: Side, qty, price, symbol: str) -> None:
    terms = FillTerms(order_id, symbol, side, D(qty), D(price), D(100) if len(symbol) > 6 else D(1))
    assert account.apply_fill(f"fill_{order_id}", terms, 1, AT) is not None


def long_call(account: Account) -> None:
    account.hold("o1", 1, single(Side.BUY, 3, "2.40", CALL), {}, AT)
    fill(account, "o1", Side.BUY, 3, "2.35", CALL)


def cash_secured_put(account: Account) -> None:
    account.hold("o1", 1, single(Side.SELL, 2, "1.50", PUT), {}, AT)
    fill(account, "o1", Side.SELL, 2, "1.50", PUT)


def credit_spread(account: Account) -> None:
    legs = (HoldLeg(PUT, Side.SELL, 1), HoldLeg(LOWER_PUT, Side.BUY, 1))
    account.hold("o1", 1, HoldTerms("", Side.BUY, D(2), D("-2.00"), D(100), legs), {}, AT)
    filled = [
        FillTerms("o1", PUT, Side.SELL, D(2), D("3.50"), D(100)),
        FillTerms("o1", LOWER_PUT, Side.BUY, D(2), D("1.50"), D(100)),
    ]
    assert account.apply_spread_fill("fill_o1", filled, 1, AT) is not None


MARKS = {CALL: mark("2.30", "2.40"), PUT: mark("1.55", "1.60"), LOWER_PUT: mark("1.40", "1.45")}

# strategy, held after its fill, cash after its fill, what it takes from the option buying
# power (= the cash account's buying power): the premium paid in full, or R less the credit.
STRATEGIES = [
    pytest.param(long_call, D(0), START - D(705), D(705), id="long-call-debit-in-full"),
    pytest.param(cash_secured_put, D(42000), START + D(300), D(42000) - D(300), id="cash-secured-put-strike-x-100"),
    pytest.param(credit_spread, D(2000), START + D(400), D(2000) - D(400), id="credit-spread-width-x-100"),
]


@pytest.mark.parametrize(("strategy", "held", "cash", "taken"), STRATEGIES)
def test_an_option_strategy_takes_the_same_in_a_margin_account_as_in_a_cash_account(strategy, held, cash, taken):
    for account_type in AccountType:
        account = opened(account_type)
        strategy(account)
        assert (account.cash, account.held().amount) == (cash, held)
        assert account.options_buying_power(MARKS) == START - taken, account_type
        # Stock may still be bought with twice that in margin, once in cash.
        stock = account.buying_power(MARKS)
        assert stock == (START - taken) * (2 if account_type is AccountType.MARGIN else 1), account_type


def test_a_long_call_in_margin_is_not_lent_against_at_50_percent():
    account = opened(AccountType.MARGIN)
    long_call(account)
    value = account.valuation(MARKS)
    assert (value.option_long_market_value, value.long_market_value) == (D(690), D(690))
    # Reg T at 50% would have left half the call's $690 value as excess: it leaves none.
    assert excess(AccountType.MARGIN, value) == START - D(705)


def test_a_working_option_order_in_margin_holds_its_debit_in_full_and_is_told_the_option_buying_power():
    account = opened(AccountType.MARGIN)
    assert account.hold("o1", 1, single(Side.BUY, 10, "9.00", CALL), {}, AT).hold.amount == D(9000)
    assert account.options_buying_power({}) == START - D(9000)
    assert account.buying_power({}) == 2 * (START - D(9000))
    with pytest.raises(DomainError) as refused:
        account.hold("o2", 1, single(Side.SELL, 5, "1.00", PUT), {}, AT)  # 5 x $210 x 100 = $105,000
    assert refused.value.reason == "INSUFFICIENT_BUYING_POWER"
    assert refused.value.message == "the order may cost up to $105,000.00; option buying power is $91,000.00"
    assert refused.value.metadata["buying_power"] == "91000.00"


def test_stock_in_margin_keeps_reg_t_50_percent_beside_options():
    account = opened(AccountType.MARGIN)
    # 100 shares at $220: half of $22,000 held while it works.
    assert account.hold("s1", 1, single(Side.BUY, 100, "220", "AMZN"), {}, AT).hold.amount == D(11000)
    fill(account, "s1", Side.BUY, 100, "220", "AMZN")
    cash_secured_put(account)
    marks = MARKS | {"AMZN": mark("220", "220.05")}
    value = account.valuation(marks)
    assert (value.long_market_value, value.short_market_value, value.option_short_market_value) == (
        D(22000),
        D(-320),
        D(-320),
    )
    # Cash 100,000 - 22,000 + 300; the stock's equity 22,000 less half of it; the put's
    # strike x 100 held; its liability (already in R) not counted again.
    expected = START - D(22000) + D(300) + D(22000) - D(11000) - D(42000)
    assert account.options_buying_power(marks) == expected
    assert account.buying_power(marks) == 2 * expected


def test_the_excess_of_a_valuation_by_account_type():
    value = Valuation(
        cash=D(50000),
        long_market_value=D(20000) + D(1000),
        short_market_value=D(-5000) + D(-400),
        held=D(3000),
        option_long_market_value=D(1000),
        option_short_market_value=D(-400),
    )
    assert excess(AccountType.CASH, value) == D(47000)
    # 50,000 + 20,000 - 5,000 - 50% x 25,000 - 3,000: the options' 1,000 and -400 out.
    assert excess(AccountType.MARGIN, value) == D(49500)
    assert (options_buying_power(AccountType.MARGIN, value), buying_power(AccountType.MARGIN, value)) == (
        D(49500),
        D(99000),
    )
