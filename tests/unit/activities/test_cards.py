"""Margin interest's teaching card (``services.activities.domain.interest_card``): the same
facts at every verbosity — the amount, why it exists, how it was computed and a tax note —
told at length to a Trial investor, briefly to an Income Builder, in a line to a
Diversifier."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.activities.domain import interest_activity, interest_card

D = Decimal


@pytest.mark.parametrize(
    "profile, verbosity", [("trial", "long"), ("income_builder", "medium"), ("diversifier", "short")]
)
def test_every_card_has_the_amount_the_computation_and_a_tax_note(profile, verbosity):
    card = interest_card(profile, D("12345.67"), 800, 3, D("8.23"))
    assert (card.title, card.amount, card.verbosity) == ("Margin interest", "$8.23", verbosity)
    assert card.how.startswith("$12,345.67 × 8.00% ÷ 360 × 3 days = $8.23")
    assert "CPA" in card.tax_note and "deductible" in card.tax_note


def test_the_longer_the_card_the_more_it_explains():
    long, medium, short = (
        interest_card(p, D("2000"), 725, 1, D("0.40")) for p in ("trial", "income_builder", "diversifier")
    )
    assert len(long.why) > len(medium.why) > len(short.why)
    assert len(long.tax_note) > len(medium.tax_note)
    assert "Form 4952" in long.tax_note and "actual/360" in long.how and "7.25%" in long.how
    assert "1 day =" in short.how


def test_the_interest_activity_carries_its_card_and_takes_the_charge_from_cash():
    activity = interest_activity(
        account_id="acct_1",
        user_id="u1",
        session_date=date(2012, 6, 22),
        debit_balance=D("2000"),
        rate_bps=800,
        days=3,
        charged=D("1.33"),
        profile="trial",
        charged_at=datetime(2012, 6, 22, 20, tzinfo=UTC),
        now=datetime(2012, 6, 22, 20, 1, tzinfo=UTC),
    )
    assert (activity.activity_type, activity.net_amount) == ("margin_interest", D("-1.33"))
    assert activity.description == "Margin interest on $2,000.00 for 3 days"
    assert activity.card is not None and activity.card.verbosity == "long"
