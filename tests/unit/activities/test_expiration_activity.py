"""The expiration activity (services/activities/domain.py): one per effect, its net amount
the cash it moved, its description leading with Alpaca's activity type and naming the
closing price, the strike and the stock position after."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.activities.domain import alpaca_activity_type, expiration_activity
from services.common.trading import Side

D = Decimal
AT = datetime(2012, 6, 22, 20, 5, tzinfo=UTC)


def activity(subtype, qty, stock=None, *, early=False, cash="0", reason=""):
    return expiration_activity(
        settlement_id="exp_1",
        user_id="u",
        account_id="acct_1",
        symbol="AMZN120622C00215000",
        qty=D(qty),
        subtype=subtype,
        strike=D(215),
        settlement_price=None if early else D("220.51"),
        stock=stock,
        stock_position_qty=D(200) if stock else None,
        cash_delta=D(cash),
        early=early,
        occurred_at=AT,
        now=AT,
        reason=reason,
    )


@pytest.mark.parametrize(
    ("subtype", "qty", "code"),
    [
        ("expired_worthless", "1", "OPEXP"),
        ("expired_worthless", "-1", "OPEXP"),
        ("exercised", "2", "OPEXC"),
        ("assigned", "-1", "OPASN"),
        ("cash_settled", "1", "OPEXC"),
        ("cash_settled", "-1", "OPASN"),
    ],
)
def test_alpacas_activity_type_of_each_subtype(subtype, qty, code):
    assert alpaca_activity_type(subtype, D(qty)) == code


def test_an_exercise_names_the_close_the_strike_and_the_stock_after():
    row = activity("exercised", "1", ("AMZN", Side.BUY, D(100)), cash="-21500")
    assert (row.activity_type, row.subtype, row.net_amount, row.price, row.qty) == (
        "expiration",
        "exercised",
        D(-21500),
        D(215),
        D(1),
    )
    assert row.description == (
        "OPEXC: 1 AMZN120622C00215000 exercised; at the close of $220.51; "
        "100 AMZN bought at $215.00; AMZN position now 200"
    )


def test_an_early_exercise_and_a_worthless_expiry_read_as_such():
    assert (
        "early, at the holder's request"
        in activity("exercised", "1", ("AMZN", Side.BUY, D(100)), early=True).description
    )
    worthless = activity("expired_worthless", "1")
    assert worthless.net_amount == 0
    assert worthless.description == "OPEXP: 1 AMZN120622C00215000 expired worthless; at the close of $220.51"


def test_a_long_in_the_money_left_unexercised_says_why():
    kept = activity("expired_worthless", "1", reason="5.51 in the money; do-not-exercise instruction")
    assert kept.description == (
        "OPEXP: 1 AMZN120622C00215000 expired worthless; at the close of $220.51; "
        "5.51 in the money; do-not-exercise instruction"
    )
    assert (
        "in the money"
        not in activity("exercised", "1", ("AMZN", Side.BUY, D(100)), reason="5.51 in the money at 220.51").description
    )
