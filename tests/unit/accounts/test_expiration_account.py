"""Expiration on the Account aggregate: the whole book settles at once, each effect closes
its position and delivers its stock through the ledger, a cash account's shortfall is
judged on the book after settlement, and early exercise."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.accounts.domain.account import Account, OptionSettled
from services.accounts.domain.expiration import Instruction, Outcome, ledger_legs
from services.accounts.domain.rules import AccountType, Position, Profile
from services.common.errors import DomainError
from services.common.instruments import contract_terms, parse_symbol

D = Decimal
FRIDAY = date(2012, 6, 22)
AT = datetime(2012, 6, 22, 20, 0, tzinfo=UTC)
CLOSE = {"AMZN": D("220.51")}


def account(cash="50000", account_type=AccountType.CASH, **positions) -> Account:
    held = {}
    for symbol, (qty, price) in positions.items():
        multiplier = parse_symbol(symbol).multiplier
        held[symbol] = Position(symbol, D(qty), D(price), multiplier)
    return Account("acct_1", "u", account_type, Profile.INCOME_BUILDER, D(cash), D(cash), held)


def terms_of(book: Account) -> dict:
    return {s: contract_terms(parse_symbol(s)) for s in book.positions if parse_symbol(s).is_option}


def settle(book: Account, prices=CLOSE, on=FRIDAY):
    return book.expire_options(on, terms_of(book), prices, AT)


def test_the_covered_call_assigned_and_a_later_iron_condor_do_not_leave_a_cash_account_short_of_shares():
    # 110 AMZN, a covered call assigned at this close, an iron condor expiring a week later:
    # its short call is covered by its long wing, so the 10 shares left are enough.
    book = account(
        "50000",
        AMZN=("110", "215"),
        AMZN120622C00220000=("-1", "2.10"),
        AMZN120629C00230000=("-1", "1.00"),
        AMZN120629C00240000=("1", "0.40"),
        AMZN120629P00200000=("-1", "1.20"),
        AMZN120629P00190000=("1", "0.50"),
    )
    run = settle(book)
    assert run.shortfall is None
    [assigned] = run.effects
    assert (assigned.outcome, assigned.cash_delta) == (Outcome.ASSIGNED, D("22000"))
    assert book.positions["AMZN"].qty == D(10)
    assert "AMZN120622C00220000" not in book.positions
    assert book.cash == D("72000")
    assert book.positions["AMZN120629C00230000"].qty == D(-1)


def test_a_remaining_short_call_the_delivered_shares_covered_is_reported_as_a_shortfall():
    book = account("50000", AMZN=("100", "215"), AMZN120622C00220000=("-1", "2.10"), AMZN120629C00250000=("-1", "0.30"))
    run = settle(book)
    assert run.shortfall is not None and "100 AMZN shares to cover its remaining short calls" in run.shortfall


def test_a_short_put_assigned_buys_the_shares_at_the_strike_with_the_cash_it_secured():
    book = account("22500", AMZN120622P00225000=("-1", "3.00"))
    run = settle(book)
    [effect] = run.effects
    assert effect.outcome is Outcome.ASSIGNED and run.shortfall is None
    assert book.cash == D(0)
    assert book.positions == {"AMZN": Position("AMZN", D(100), D(225), D(1))}
    [event] = book.events
    assert isinstance(event, OptionSettled)
    option_leg, stock_leg = event.legs
    assert option_leg[1].realized_pl == D("300")  # the premium, kept
    assert (stock_leg[0].symbol, stock_leg[0].qty, stock_leg[0].price) == ("AMZN", D(100), D(225))


def test_a_long_call_in_the_money_is_exercised_and_out_of_the_money_ones_expire_worthless():
    book = account("30000", AMZN120622C00215000=("1", "4.00"), AMZN120622C00225000=("2", "1.00"))
    run = settle(book)
    outcomes = {e.contract.symbol: e.outcome for e in run.effects}
    assert outcomes == {"AMZN120622C00215000": Outcome.EXERCISED, "AMZN120622C00225000": Outcome.EXPIRED_WORTHLESS}
    assert book.cash == D("8500")
    assert book.positions == {"AMZN": Position("AMZN", D(100), D(215), D(1))}
    realized = {leg.symbol: fill.realized_pl for e in book.events for leg, fill in e.legs if leg.symbol != "AMZN"}
    assert realized == {"AMZN120622C00215000": D("-400"), "AMZN120622C00225000": D("-200")}


def test_a_do_not_exercise_instruction_leaves_a_long_in_the_money_call_unexercised():
    book = account("30000", AMZN120622C00215000=("1", "4.00"), AMZN120622C00210000=("1", "9.00"))
    instructions = {"AMZN120622C00215000": Instruction.DO_NOT_EXERCISE}
    run = book.expire_options(FRIDAY, terms_of(book), CLOSE, AT, None, instructions)
    by_symbol = {e.contract.symbol: (e.outcome, e.reason) for e in run.effects}
    assert by_symbol == {
        "AMZN120622C00215000": (Outcome.EXPIRED_WORTHLESS, "5.51 in the money; do-not-exercise instruction"),
        "AMZN120622C00210000": (Outcome.EXERCISED, "10.51 in the money at 220.51"),
    }
    assert book.cash == D("9000")  # only the 210 call bought its 100 shares
    assert book.positions == {"AMZN": Position("AMZN", D(100), D(210), D(1))}
    assert book.expire_options(FRIDAY, terms_of(book), CLOSE, AT, None, instructions).effects == ()


def test_an_index_option_is_cash_settled_and_a_second_run_does_nothing():
    book = account("10000", XSP120622C00130000=("2", "1.00"))
    run = settle(book, {"^XSP": D("133.25")})
    [effect] = run.effects
    assert effect.outcome is Outcome.CASH_SETTLED
    assert (book.cash, book.positions) == (D("10650"), {})
    book.events.clear()
    assert settle(book, {"^XSP": D("133.25")}).effects == ()
    assert book.events == []


def test_positions_expiring_later_are_left_alone():
    book = account("10000", AMZN120629C00215000=("1", "4.00"))
    assert settle(book).effects == ()
    assert book.positions["AMZN120629C00215000"].qty == D(1)


def test_each_effect_has_ledger_ids_of_its_own():
    book = account("30000", AMZN120622C00215000=("1", "4.00"))
    [effect] = settle(book).effects
    first = ledger_legs("acct_1", effect, FRIDAY)
    assert first == ledger_legs("acct_1", effect, FRIDAY)
    assert {leg.entry_id for leg in first}.isdisjoint({leg.entry_id for leg in ledger_legs("acct_2", effect, FRIDAY)})


def test_early_exercise_of_a_long_call_and_its_refusals():
    # The short put keeps its strike held ($20,000): what is free is the cash beyond it.
    book = account("50000", AMZN120720C00200000=("2", "20.00"), AMZN120720P00200000=("-1", "2.00"))
    terms = terms_of(book)
    effect = book.exercise("AMZN120720C00200000", D(1), terms["AMZN120720C00200000"], FRIDAY, AT)
    assert (effect.outcome, effect.cash_delta) == (Outcome.EXERCISED, D("-20000"))
    assert (book.cash, book.positions["AMZN"].qty, book.positions["AMZN120720C00200000"].qty) == (
        D("30000"),
        D(100),
        D(1),
    )
    with pytest.raises(DomainError) as poor:
        book.exercise("AMZN120720C00200000", None, terms["AMZN120720C00200000"], FRIDAY, AT)
    assert poor.value.reason == "INSUFFICIENT_BUYING_POWER"
    with pytest.raises(DomainError) as short:
        book.exercise("AMZN120720P00200000", None, terms["AMZN120720P00200000"], FRIDAY, AT)
    assert short.value.reason == "FAILED_PRECONDITION"
    with pytest.raises(DomainError) as missing:
        book.exercise("AMZN120720C00210000", None, terms["AMZN120720C00200000"], FRIDAY, AT)
    assert missing.value.reason == "NOT_FOUND"
