"""The Account aggregate with option orders (no database): holds from the book's requirement
(``options.book_requirement``) plus working debits, shares locked by covered calls, naked
calls refused, short options secured in a cash account, intents resolved from the position."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.accounts.domain.account import Account, FillApplied, FillRefused
from services.accounts.domain.rules import FillTerms, HoldLeg, HoldTerms, Mark, Profile
from services.common.errors import DomainError
from services.common.instruments import contract_terms, parse_symbol
from services.common.trading import PositionIntent, Side

AT = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)
D = Decimal
NO_MARKS: dict[str, Mark] = {}
PUT = "AMZN120720P00210000"
CALL = "AMZN120720C00230000"
HIGHER_CALL = "AMZN120720C00240000"


def terms(side: Side, qty, price, symbol: str) -> HoldTerms:
    return HoldTerms(symbol, side, D(qty), D(price), D(100) if len(symbol) > 6 else D(1))


def opened() -> Account:
    account = Account.open("acct_1", "u", Profile.DIVERSIFIER, AT)
    account.events.clear()
    return account


def fill(account: Account, order_id: str, side: Side, qty, price, symbol: str) -> None:
    multiplier = D(100) if len(symbol) > 6 else D(1)
    fill_terms = FillTerms(order_id, symbol, side, D(qty), D(price), multiplier)
    assert account.apply_fill(f"fill_{order_id}", fill_terms, 1, AT) is not None
    assert any(isinstance(e, FillApplied) and e.fill_id == f"fill_{order_id}" for e in account.events)


def test_a_cash_secured_put_holds_its_strike_working_and_after_its_credit_fill():
    account = opened()
    hold = account.hold("o1", 1, terms(Side.SELL, 2, "1.50", PUT), NO_MARKS, AT)
    assert hold.hold.amount == D(42000)  # 2 x $210 x 100; the expected credit not counted
    assert account.held().amount == D(42000)
    fill(account, "o1", Side.SELL, 2, "1.50", PUT)
    assert account.cash == D(100000) + D(300)
    assert account.positions[PUT].qty == D(-2)
    # Down by R - credit: the position keeps the strike held.
    assert account.held().amount == D(42000)
    assert account.buying_power(NO_MARKS) == D(100000) + D(300) - D(42000)


def test_a_long_option_holds_its_premium_and_fills_by_the_multiplier():
    account = opened()
    account.hold("o1", 1, terms(Side.BUY, 3, "2.40", CALL), NO_MARKS, AT)
    assert account.held().amount == D(720)
    fill(account, "o1", Side.BUY, 3, "2.35", CALL)
    assert (account.cash, account.held().amount) == (D(100000) - D(705), D(0))


def test_a_covered_call_locks_its_shares_and_a_naked_one_is_refused():
    account = opened()
    account.hold("s1", 1, terms(Side.BUY, 100, "220", "AMZN"), NO_MARKS, AT)
    fill(account, "s1", Side.BUY, 100, "220", "AMZN")
    account.hold("c1", 1, terms(Side.SELL, 1, "2.00", CALL), NO_MARKS, AT)
    assert account.held().amount == 0
    with pytest.raises(DomainError) as locked:
        account.hold("s2", 1, terms(Side.SELL, 1, "220", "AMZN"), NO_MARKS, AT)
    assert locked.value.reason == "INSUFFICIENT_BUYING_POWER"
    with pytest.raises(DomainError) as naked:
        account.hold("c2", 1, terms(Side.SELL, 1, "1.00", HIGHER_CALL), NO_MARKS, AT)
    assert naked.value.reason == "UNCOVERED_OPTION_NOT_ALLOWED"
    # The call bought back frees the shares.
    fill(account, "c1", Side.SELL, 1, "2.00", CALL)
    account.hold("c3", 1, terms(Side.BUY, 1, "2.10", CALL), NO_MARKS, AT)
    fill(account, "c3", Side.BUY, 1, "2.10", CALL)
    assert CALL not in account.positions
    account.hold("s3", 1, terms(Side.SELL, 100, "220", "AMZN"), NO_MARKS, AT)


def test_the_intent_is_inferred_from_the_position_and_checked_against_it():
    account = opened()
    assert account.position_intent(terms(Side.BUY, 1, "2", CALL), None) is PositionIntent.BUY_TO_OPEN
    assert account.position_intent(terms(Side.BUY, 1, "220", "AMZN"), None) is None
    account.hold("o1", 1, terms(Side.BUY, 2, "2", CALL), NO_MARKS, AT)
    fill(account, "o1", Side.BUY, 2, "2", CALL)
    assert account.position_intent(terms(Side.SELL, 2, "2", CALL), None) is PositionIntent.SELL_TO_CLOSE
    with pytest.raises(DomainError) as too_many:
        account.position_intent(terms(Side.SELL, 3, "2", CALL), PositionIntent.SELL_TO_CLOSE)
    assert too_many.value.metadata["field"] == "position_intent"
    with pytest.raises(DomainError):
        account.position_intent(terms(Side.SELL, 1, "2", CALL), PositionIntent.SELL_TO_OPEN)


LOWER_PUT = "AMZN120720P00200000"


def spread_terms(qty, net) -> HoldTerms:
    legs = (HoldLeg(PUT, Side.SELL, 1), HoldLeg(LOWER_PUT, Side.BUY, 1))
    return HoldTerms("", Side.BUY, D(qty), D(net), D(100), legs)


def spread_legs(order_id: str, qty, short_price, long_price) -> list[FillTerms]:
    return [
        FillTerms(order_id, PUT, Side.SELL, D(qty), D(short_price), D(100)),
        FillTerms(order_id, LOWER_PUT, Side.BUY, D(qty), D(long_price), D(100)),
    ]


def test_a_credit_spread_holds_its_width_and_fills_all_legs_or_none():
    account = opened()
    hold = account.hold("sp", 1, spread_terms(2, "-1.00"), NO_MARKS, AT)
    assert hold.hold.amount == D(2000)  # $10 wide x 100 x 2; the credit is not counted before it is received
    assert account.leg_intents(spread_terms(2, "-1.00"), ()) == (
        PositionIntent.SELL_TO_OPEN,
        PositionIntent.BUY_TO_OPEN,
    )
    # Beyond the held net (a credit of 0.90 where 1.00 was the worst): refused, nothing moves.
    assert account.apply_spread_fill("fill_x", spread_legs("sp", 2, "2.00", "1.10"), 1, AT) is None
    assert (account.cash, account.positions) == (D(100000), {})
    assert isinstance(account.events[-1], FillRefused)
    effects = account.apply_spread_fill("fill_y", spread_legs("sp", 2, "2.10", "1.00"), 1, AT)
    assert effects is not None and len(effects) == 2
    assert account.cash == D(100000) + D(220)
    assert (account.positions[PUT].qty, account.positions[LOWER_PUT].qty) == (D(-2), D(2))
    assert [e.fill_id for e in account.events if isinstance(e, FillApplied)] == ["fill_y.0", "fill_y.1"]
    # Down by the width less the credit, never up.
    assert account.held().amount == D(2000)
    assert account.buying_power(NO_MARKS) == D(100000) + D(220) - D(2000)


def test_contracts_a_working_order_would_sell_are_not_exercised_early():
    # Exercising them would leave the order selling contracts that are gone (it stayed
    # working and could no longer be replaced): the exercise is refused until it is canceled.
    account = opened()
    account.hold("b1", 1, terms(Side.BUY, 2, "25.00", "AMZN120720C00200000"), NO_MARKS, AT)
    fill(account, "b1", Side.BUY, 2, "25.00", "AMZN120720C00200000")
    account.hold("s1", 1, terms(Side.SELL, 1, "30.00", "AMZN120720C00200000"), NO_MARKS, AT)
    assert account.contracts_promised("AMZN120720C00200000") == D(1)
    terms_ = contract_terms(parse_symbol("AMZN120720C00200000"))
    for qty in (None, D(2)):
        with pytest.raises(DomainError) as promised:
            account.exercise("AMZN120720C00200000", qty, terms_, AT.date(), AT)
        assert promised.value.reason == "FAILED_PRECONDITION"
        assert "1 of the 2 AMZN120720C00200000 contracts held are promised" in promised.value.message
        assert "exercise at most 1" in promised.value.message
    assert (account.cash, account.positions["AMZN120720C00200000"].qty) == (D(100000) - D(5000), D(2))
    effect = account.exercise("AMZN120720C00200000", D(1), terms_, AT.date(), AT)
    assert (effect.qty, effect.cash_delta) == (D(1), D(-20000))
    account.release("s1", "canceled", AT)
    account.exercise("AMZN120720C00200000", None, terms_, AT.date(), AT)
    assert "AMZN120720C00200000" not in account.positions
    assert account.positions["AMZN"].qty == D(200)
