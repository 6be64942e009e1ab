from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.accounts.domain.rules import (
    AccountType,
    Hold,
    HoldTerms,
    Position,
    Valuation,
    apply_fill,
    asset_class_of,
    buying_power,
    check_fits,
    contract_multiplier,
    hold_for,
    market_value,
    unrealized_pl,
)
from services.common.errors import DomainError
from services.common.trading import AssetClass, Side

D = Decimal


def test_buys_average_in_and_a_sell_realizes_against_the_average():
    first = apply_fill(None, "AMZN", Side.BUY, D(10), D("100"), D(1))
    second = apply_fill(first.position, "AMZN", Side.BUY, D(10), D("110"), D(1))
    assert (second.position.qty, second.position.avg_entry_price) == (D(20), D(105))
    sale = apply_fill(second.position, "AMZN", Side.SELL, D(5), D("120"), D(1))
    assert sale.realized_pl == D(75)
    assert sale.cash_delta == D(600)
    assert (sale.position.qty, sale.position.avg_entry_price) == (D(15), D(105))
    assert not sale.closed


def test_selling_everything_closes_the_position():
    bought = apply_fill(None, "AMZN", Side.BUY, D(10), D("100"), D(1))
    sold = apply_fill(bought.position, "AMZN", Side.SELL, D(10), D("99.50"), D(1))
    assert sold.closed and not sold.reopened
    assert sold.position.qty == 0
    assert sold.realized_pl == D("-5.00")


def test_a_fill_through_zero_closes_and_reopens_short_at_the_fill_price():
    bought = apply_fill(None, "AMZN", Side.BUY, D(10), D("100"), D(1))
    flipped = apply_fill(bought.position, "AMZN", Side.SELL, D(15), D("102"), D(1))
    assert flipped.closed and flipped.reopened
    assert flipped.realized_pl == D(20)
    assert (flipped.position.qty, flipped.position.avg_entry_price) == (D(-5), D(102))


def test_covering_a_short_realizes_inverse_gains():
    short = apply_fill(None, "AMZN", Side.SELL, D(10), D("100"), D(1))
    assert short.cash_delta == D(1000)
    cover = apply_fill(short.position, "AMZN", Side.BUY, D(10), D("90"), D(1))
    assert cover.realized_pl == D(100)


fills = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(1, 50),
        st.decimals(min_value=D("1.00"), max_value=D("500.00"), places=2),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(fills)
def test_cash_plus_positions_at_cost_always_balances_realized_pl(sequence):
    """Ledger invariant: starting cash + realized P&L == cash + cost of what is held."""
    cash, position, realized = D(0), None, D(0)
    for side, qty, price in sequence:
        effect = apply_fill(position, "X", side, D(qty), price, D(1))
        cash += effect.cash_delta
        realized += effect.realized_pl
        position = effect.position
    held_at_cost = position.qty * position.avg_entry_price
    assert abs(cash + held_at_cost - realized) < D("0.000001")


def test_cash_accounts_hold_the_full_cost_and_cannot_short():
    buy = HoldTerms("AMZN", Side.BUY, D(10), D("220.50"), D(1))
    assert hold_for(AccountType.CASH, buy, D(0), D(0)) == Hold(D("2205.00"), D(0))
    sell = HoldTerms("AMZN", Side.SELL, D(10), D("220.50"), D(1))
    assert hold_for(AccountType.CASH, sell, D(10), D(0)) == Hold(D(0), D(10))
    with pytest.raises(DomainError) as err:
        hold_for(AccountType.CASH, sell, D(10), D(5))  # 5 of the 10 already promised to another sell
    assert err.value.reason == "INSUFFICIENT_BUYING_POWER"


def test_margin_accounts_hold_half_and_may_short():
    sell = HoldTerms("AMZN", Side.SELL, D(10), D("200"), D(1))
    assert hold_for(AccountType.MARGIN, sell, D(4), D(0)) == Hold(D(600), D(4))
    buy = HoldTerms("AMZN", Side.BUY, D(10), D("200"), D(1))
    assert hold_for(AccountType.MARGIN, buy, D(-4), D(0)) == Hold(D(600), D(0))


def test_buying_power_and_fit():
    cash_account = Valuation(cash=D(10000), long_market_value=D(0), short_market_value=D(0), held=D(2500))
    assert buying_power(AccountType.CASH, cash_account) == D(7500)
    check_fits(AccountType.CASH, cash_account, Hold(D(7500), D(0)))
    with pytest.raises(DomainError) as err:
        check_fits(AccountType.CASH, cash_account, Hold(D("7500.01"), D(0)))
    assert (err.value.reason, err.value.metadata["buying_power"]) == ("INSUFFICIENT_BUYING_POWER", "7500.00")
    check_fits(AccountType.CASH, cash_account, Hold(D(10000), D(0)), released=D(2500))
    margin = Valuation(cash=D(10000), long_market_value=D(10000), short_market_value=D(0), held=D(0))
    assert buying_power(AccountType.MARGIN, margin) == D(30000)


def test_positions_report_open_when_nonzero():
    assert Position("X", D(1), D(1), D(1)).is_open
    assert not Position("X", D(0), D(1), D(1)).is_open


def test_option_positions_count_contracts_and_value_per_share_premium_times_100():
    put = "AMZN120720P00200000"
    assert (contract_multiplier(put), contract_multiplier("AMZN")) == (D(100), D(1))
    assert (asset_class_of(put), asset_class_of("AMZN")) == (AssetClass.US_OPTION, AssetClass.US_EQUITY)
    sold = apply_fill(None, put, Side.SELL, D(3), D("2.40"), D(100))
    assert (sold.cash_delta, sold.position.qty, sold.position.avg_entry_price) == (D("720.00"), D(-3), D("2.40"))
    assert market_value(sold.position, D("1.00")) == D("-300.00")
    assert unrealized_pl(sold.position, D("1.00")) == D("420.00")
    bought_back = apply_fill(sold.position, put, Side.BUY, D(1), D("1.00"), D(100))
    assert (bought_back.realized_pl, bought_back.cash_delta) == (D("140.00"), D("-100.00"))
