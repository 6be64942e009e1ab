"""Expiration, exercise and assignment (services/accounts/domain/expiration.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.accounts.domain.expiration import (
    CarryAction,
    ExpiringPosition,
    Instruction,
    InstructionWindow,
    Outcome,
    carry_action,
    check_instruction,
    early_exercise,
    expire,
    sale_client_order_id,
    uncarried,
)
from services.common.errors import DomainError
from services.common.instruments import ExerciseStyle, Settlement
from services.common.trading import Side
from tests.support.options import EXPIRY, call, put

D = Decimal
RICH = D(1_000_000)


def position(spec, qty, **kwargs) -> ExpiringPosition:
    return ExpiringPosition(spec, D(qty), **kwargs)


def run(positions, close, *, cash_account=True, cash=RICH, shares=None, underlying="XYZ"):
    return expire(
        positions, {underlying: D(close)}, cash_account=cash_account, cash_free=cash, shares_free=shares or {}
    )


def summary(result):
    return [
        (e.contract.symbol, e.qty, e.outcome, e.stock and (e.stock.side, e.stock.qty, e.stock.price), e.cash_delta)
        for e in result.effects
    ]


MONEYNESS = [
    # (name, contract, signed qty, close, outcome, stock (side, shares, price) or None, cash)
    ("long call in the money by one cent", call(100), 1, "100.01", Outcome.EXERCISED, (Side.BUY, 100, 100), -10000),
    ("long call at the money", call(100), 1, "100.00", Outcome.EXPIRED_WORTHLESS, None, 0),
    ("long call out of the money by one cent", call(100), 1, "99.99", Outcome.EXPIRED_WORTHLESS, None, 0),
    ("long put in the money by one cent", put(100), 2, "99.99", Outcome.EXERCISED, (Side.SELL, 200, 100), 20000),
    ("long put out of the money by one cent", put(100), 2, "100.01", Outcome.EXPIRED_WORTHLESS, None, 0),
    ("short call in the money by one cent", call(100), -1, "100.01", Outcome.ASSIGNED, (Side.SELL, 100, 100), 10000),
    ("short call out of the money by one cent", call(100), -1, "99.99", Outcome.EXPIRED_WORTHLESS, None, 0),
    ("short put in the money by one cent", put(100), -1, "99.99", Outcome.ASSIGNED, (Side.BUY, 100, 100), -10000),
    ("short put out of the money by one cent", put(100), -1, "100.01", Outcome.EXPIRED_WORTHLESS, None, 0),
]


@pytest.mark.parametrize(
    ("name", "spec", "qty", "close", "outcome", "stock", "cash"), MONEYNESS, ids=[m[0] for m in MONEYNESS]
)
def test_exercised_or_assigned_from_one_cent_in_the_money(name, spec, qty, close, outcome, stock, cash):
    result = run([position(spec, qty)], close, shares={"XYZ": D(200)})
    (effect,) = result.effects
    assert (effect.outcome, effect.qty, effect.cash_delta) == (outcome, D(qty), D(cash))
    assert (effect.stock and (effect.stock.side, effect.stock.qty, effect.stock.price)) == (
        stock and (stock[0], D(stock[1]), D(stock[2]))
    )
    assert effect.settlement_price == D(close)
    assert result.shortfall is None


def test_an_index_option_is_cash_settled_at_its_intrinsic_value():
    spx_call = call(4000, underlying="SPX")
    spx_put = put(3900, underlying="SPX")
    result = run(
        [position(spx_call, 2, settlement=Settlement.CASH), position(spx_put, -1, settlement=Settlement.CASH)],
        "4012.34",
        underlying="^SPX",
        cash=D(0),
    )
    assert summary(result) == [
        (spx_call.symbol, D(2), Outcome.CASH_SETTLED, None, D("2468.00")),
        (spx_put.symbol, D(-1), Outcome.EXPIRED_WORTHLESS, None, D(0)),
    ]
    assert (result.cash_delta, result.shares_delta) == (D("2468.00"), {})
    short = run([position(spx_put, -1, settlement=Settlement.CASH)], "3850.5", underlying="^SPX", cash=D(10000))
    assert short.effects[0].cash_delta == D("-4950.0")


def test_a_covered_call_assigned_delivers_its_locked_shares():
    result = run([position(call(105), -1)], "110", cash=D(0), shares={"XYZ": D(100)})
    assert summary(result) == [(call(105).symbol, D(-1), Outcome.ASSIGNED, (Side.SELL, D(100), D(105)), D(10500))]
    assert result.shares_delta == {"XYZ": D(-100)} and result.shortfall is None


def test_a_cash_secured_put_assigned_spends_the_held_cash():
    result = run([position(put(175), -1)], "170", cash=D(17500))
    assert summary(result) == [(put(175).symbol, D(-1), Outcome.ASSIGNED, (Side.BUY, D(100), D(175)), D(-17500))]
    assert (result.cash_delta, result.shares_delta, result.shortfall) == (D(-17500), {"XYZ": D(100)}, None)


def test_a_spread_settles_as_one_its_long_leg_paying_for_its_short_legs_delivery():
    bull_call = [position(call(100), 1), position(call(105), -1)]
    result = run(bull_call, "110", cash=D(0))
    assert [e.outcome for e in result.effects] == [Outcome.EXERCISED, Outcome.ASSIGNED]
    assert (result.cash_delta, result.shares_delta, result.shortfall) == (D(500), {"XYZ": D(0)}, None)
    bull_put = [position(put(100), -1), position(put(95), 1)]
    result = run(bull_put, "90", cash=D(500))
    assert (result.cash_delta, result.shortfall) == (D(-500), None)


def test_holder_instructions_decide_a_long_position():
    dne = run([position(call(100), 1, instruction=Instruction.DO_NOT_EXERCISE)], "120")
    assert dne.effects[0].outcome is Outcome.EXPIRED_WORTHLESS
    assert dne.effects[0].reason == "20 in the money; do-not-exercise instruction"
    contrary = run([position(call(100), 1, instruction=Instruction.EXERCISE)], "99.99")
    assert (contrary.effects[0].outcome, contrary.effects[0].cash_delta) == (Outcome.EXERCISED, D(-10000))


def test_a_long_call_a_cash_account_cannot_afford_is_not_exercised():
    result = run([position(call(100), 1)], "110", cash=D(5000))
    (effect,) = result.effects
    assert (effect.outcome, effect.stock, effect.cash_delta) == (Outcome.EXPIRED_WORTHLESS, None, D(0))
    assert effect.not_carried and effect.reason.startswith("not exercised: the account cannot carry the stock")
    assert result.shortfall is None


def test_a_margin_account_exercises_what_a_cash_account_could_not_carry():
    result = run([position(call(100), 1)], "110", cash_account=False, cash=D(5000))
    assert result.effects[0].outcome is Outcome.EXERCISED and result.shortfall is None


def test_a_cash_account_exercises_as_many_as_it_can_carry_least_in_the_money_left_first():
    result = run([position(call(100), 2), position(call(90), 1)], "110", cash=D(19000))
    assert summary(result) == [
        (call(100).symbol, D(1), Outcome.EXERCISED, (Side.BUY, D(100), D(100)), D(-10000)),
        (call(100).symbol, D(1), Outcome.EXPIRED_WORTHLESS, None, D(0)),
        (call(90).symbol, D(1), Outcome.EXERCISED, (Side.BUY, D(100), D(90)), D(-9000)),
    ]


def test_a_long_put_without_shares_to_deliver_is_not_exercised_in_a_cash_account():
    result = run([position(put(100), 1)], "90", shares={"XYZ": D(0)})
    assert result.effects[0].outcome is Outcome.EXPIRED_WORTHLESS
    covered = run([position(put(100), 1)], "90", shares={"XYZ": D(100)})
    assert covered.effects[0].outcome is Outcome.EXERCISED


def test_a_long_call_covering_an_assigned_call_is_exercised_even_without_the_cash():
    # Short 105 call assigned, long 100 call exercised: the shares bought are the ones delivered.
    result = run([position(call(100), 1), position(call(105), -1)], "120", cash=D(0))
    assert [e.outcome for e in result.effects] == [Outcome.EXERCISED, Outcome.ASSIGNED]


def test_an_assignment_the_holds_did_not_cover_is_reported_as_a_shortfall():
    result = run([position(call(105), -1)], "110", cash=D(0), shares={"XYZ": D(0)})
    assert result.shortfall == "short of 100 XYZ shares after expiration"


def test_each_position_needs_its_underlyings_settlement_price():
    with pytest.raises(ValueError):
        run([position(call(100, underlying="ABC"), 1)], "100")


# --- before the close: sell what cannot be carried ---------------------------------------------

CLOSE = datetime(2025, 1, 17, 21, 0, tzinfo=UTC)
EARLY_CLOSE = datetime(2024, 12, 24, 18, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_the_contracts_a_cash_account_cannot_carry_are_the_ones_to_sell():
    positions = [position(call(100), 3), position(put(95), -1), position(call(120), 1)]
    assert uncarried(positions, {"XYZ": D("112.40")}, cash_free=D(10000), shares_free={}) == {call(100).symbol: D(2)}
    assert uncarried(positions, {"XYZ": D("112.40")}, cash_free=D(30000), shares_free={}) == {}


CARRY = [
    ("hours before the window", CLOSE - 3 * HOUR, True, CarryAction.WAIT),
    ("in the window, with a bid", CLOSE - HOUR / 2, True, CarryAction.SELL_AT_MARKET),
    ("at the window's start", CLOSE - HOUR, True, CarryAction.SELL_AT_MARKET),
    ("in the window, no bid yet", CLOSE - HOUR / 2, False, CarryAction.WAIT),
    ("at the close", CLOSE, True, CarryAction.DO_NOT_EXERCISE),
    ("after the close, no bid", CLOSE + HOUR, False, CarryAction.DO_NOT_EXERCISE),
]


@pytest.mark.parametrize(("name", "now", "has_bid", "action"), CARRY, ids=[c[0] for c in CARRY])
def test_carry_action_sells_in_the_window_before_the_close(name, now, has_bid, action):
    assert carry_action(now, CLOSE, HOUR, has_bid) is action


def test_the_window_follows_an_early_close():
    assert carry_action(EARLY_CLOSE - HOUR / 2, EARLY_CLOSE, HOUR, True) is CarryAction.SELL_AT_MARKET
    assert carry_action(EARLY_CLOSE + HOUR, EARLY_CLOSE, HOUR, True) is CarryAction.DO_NOT_EXERCISE


def test_a_long_the_holder_said_do_not_exercise_is_not_counted_among_what_to_sell():
    positions = [position(call(100), 3, instruction=Instruction.DO_NOT_EXERCISE)]
    assert uncarried(positions, {"XYZ": D("112.40")}, cash_free=D(0), shares_free={}) == {}
    dne = run(positions, "112.40", cash=D(0))
    assert [(e.outcome, e.not_carried, e.reason) for e in dne.effects] == [
        (Outcome.EXPIRED_WORTHLESS, False, "12.40 in the money; do-not-exercise instruction")
    ]


def test_the_sale_of_one_contract_for_one_session_has_one_client_order_id():
    first = sale_client_order_id(EXPIRY, call(100).symbol)
    assert first == sale_client_order_id(EXPIRY, call(100).symbol) == "mbt-carry-sale-2025-01-17-XYZ250117C00100000"
    assert first != sale_client_order_id(EXPIRY, call(105).symbol)
    assert len(first) <= 128  # orders' client_order_id limit


# --- do-not-exercise instructions (OCC Rule 805: by 5:30 pm ET on the expiry day) --------------------

CUTOFF = CLOSE + timedelta(minutes=90)  # 22:30 UTC: 5:30 pm New York in January
WINDOW = InstructionWindow(EXPIRY, CLOSE, CUTOFF)
EARLY_WINDOW = InstructionWindow(date(2024, 12, 24), EARLY_CLOSE, EARLY_CLOSE + timedelta(minutes=90))

INSTRUCTIONS = [
    ("a long, on the expiry day before the close", call(100), "2", EXPIRY, CLOSE - HOUR, None),
    ("a long, after the close, before the cutoff", call(100), "2", EXPIRY, CUTOFF - timedelta(seconds=1), None),
    ("at the cutoff", call(100), "2", EXPIRY, CUTOFF, "the cutoff for instructions"),
    ("after the cutoff", put(95), "1", EXPIRY, CUTOFF + HOUR, "the cutoff for instructions"),
    ("a short position", call(100), "-1", EXPIRY, CLOSE - HOUR, "instruction for a long position"),
    ("the day before the expiry", call(100), "1", date(2025, 1, 16), CLOSE - 25 * HOUR, "taken on that day only"),
]


@pytest.mark.parametrize(
    ("name", "spec", "qty", "today", "now", "refusal"), INSTRUCTIONS, ids=[i[0] for i in INSTRUCTIONS]
)
def test_a_do_not_exercise_instruction_is_taken_for_a_long_on_its_expiry_day_until_the_cutoff(
    name, spec, qty, today, now, refusal
):
    if refusal is None:
        check_instruction(spec, D(qty), WINDOW, today, now)
        return
    with pytest.raises(DomainError) as refused:
        check_instruction(spec, D(qty), WINDOW, today, now)
    assert refused.value.reason == "FAILED_PRECONDITION"
    assert refusal in refused.value.message


def test_the_cutoff_follows_an_early_close():
    spec = call(100, expiry=date(2024, 12, 24))
    check_instruction(spec, D(1), EARLY_WINDOW, date(2024, 12, 24), EARLY_CLOSE + HOUR)  # 2 pm New York
    with pytest.raises(DomainError, match="the cutoff for instructions"):
        check_instruction(spec, D(1), EARLY_WINDOW, date(2024, 12, 24), EARLY_CLOSE + 2 * HOUR)


# --- early exercise -------------------------------------------------------------------------------


def test_early_exercise_of_an_american_call_buys_the_shares_at_the_strike():
    effect = early_exercise(
        position(call(100), 2),
        D(1),
        ExerciseStyle.AMERICAN,
        date(2025, 1, 10),
        cash_account=True,
        cash_free=D(10000),
        shares_free=D(0),
    )
    assert (effect.outcome, effect.qty, effect.cash_delta, effect.settlement_price) == (
        Outcome.EXERCISED,
        D(1),
        D(-10000),
        None,
    )
    assert (effect.stock.side, effect.stock.qty, effect.stock.price) == (Side.BUY, D(100), D(100))


EARLY_REFUSALS = [
    ("a European option", {"style": ExerciseStyle.EUROPEAN}, "FAILED_PRECONDITION"),
    ("a cash-settled option", {"held": position(call(100), 1, settlement=Settlement.CASH)}, "FAILED_PRECONDITION"),
    ("a short position", {"held": position(call(100), -1)}, "FAILED_PRECONDITION"),
    ("more than held", {"qty": D(2)}, "FAILED_PRECONDITION"),
    ("after expiry", {"as_of": EXPIRY + timedelta(days=1)}, "FAILED_PRECONDITION"),
    ("a call without the cash", {"cash": D(9999)}, "INSUFFICIENT_BUYING_POWER"),
    ("a put without the shares", {"held": position(put(100), 1), "shares": D(99)}, "INSUFFICIENT_BUYING_POWER"),
]


@pytest.mark.parametrize(("name", "changes", "reason"), EARLY_REFUSALS, ids=[r[0] for r in EARLY_REFUSALS])
def test_early_exercise_refusals(name, changes, reason):
    values = {
        "held": position(call(100), 1),
        "qty": D(1),
        "style": ExerciseStyle.AMERICAN,
        "as_of": EXPIRY,
        "cash": D(10000),
        "shares": D(0),
    } | changes
    with pytest.raises(DomainError) as err:
        early_exercise(
            values["held"],
            values["qty"],
            values["style"],
            values["as_of"],
            cash_account=True,
            cash_free=values["cash"],
            shares_free=values["shares"],
        )
    assert err.value.reason == reason
