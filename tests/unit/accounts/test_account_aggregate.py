"""The Account aggregate (no database): holds bound to the terms of each order version, the
larger of a pending and a current version counting, releases and fills recorded as events,
and the ledger refusing — with an event, changing nothing — what would break it."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.accounts.domain.account import Account, AccountOpened, FillApplied, FillRefused, HoldReleased, HoldTaken
from services.accounts.domain.rules import (
    AccountType,
    FillTerms,
    Hold,
    HoldTerms,
    Mark,
    Profile,
    Valuation,
    VersionHold,
)
from services.common.errors import DomainError
from services.common.trading import Side

AT = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)
D = Decimal
NO_MARKS: dict[str, Mark] = {}


def buy(qty, price, symbol="AMZN") -> HoldTerms:
    return HoldTerms(symbol, Side.BUY, D(qty), D(price), D(1))


def sell(qty, price, symbol="AMZN") -> HoldTerms:
    return HoldTerms(symbol, Side.SELL, D(qty), D(price), D(1))


def opened(profile=Profile.TRIAL) -> Account:
    account = Account.open("acct_1", "u", profile, AT)
    account.events.clear()
    return account


def test_opening_takes_the_profiles_starting_cash():
    account = Account.open("acct_1", "u", Profile.INCOME_BUILDER, AT)
    assert (account.cash, account.account_type) == (D("50000.00"), AccountType.CASH)
    assert account.events == [AccountOpened("acct_1", "u", AccountType.CASH, Profile.INCOME_BUILDER, D("50000.00"), AT)]


def test_a_hold_is_idempotent_for_its_terms_and_refused_for_others():
    account = opened()
    first = account.hold("ord_1", 1, buy(10, "100.00"), NO_MARKS, AT)
    assert account.hold("ord_1", 1, buy(10, "100.00"), NO_MARKS, AT) == first
    assert [type(e) for e in account.events] == [HoldTaken]
    with pytest.raises(DomainError) as reused:
        account.hold("ord_1", 1, buy(11, "100.00"), NO_MARKS, AT)
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert account.valuation(NO_MARKS) == Valuation(D("10000.00"), D(0), D(0), D("1000.00"))


def test_a_pending_replace_holds_the_larger_version_until_the_old_one_is_superseded():
    account = opened()
    account.hold("ord_1", 1, buy(10, "100.00"), NO_MARKS, AT)
    account.hold("ord_1", 2, buy(5, "100.00"), NO_MARKS, AT)  # shrinking: the current hold still counts
    assert account.held().amount == D("1000.00")
    account.release("ord_1", "superseded", AT, below=2)
    assert account.held().amount == D("500.00")
    with pytest.raises(DomainError) as stale:
        account.hold("ord_1", 1, buy(10, "100.00"), NO_MARKS, AT)
    assert stale.value.reason == "FAILED_PRECONDITION"


def test_a_hold_that_does_not_fit_changes_nothing():
    account = opened()
    with pytest.raises(DomainError) as refused:
        account.hold("ord_1", 1, buy(101, "100.00"), NO_MARKS, AT)
    assert refused.value.reason == "INSUFFICIENT_BUYING_POWER"
    assert account.events == [] and account.held().amount == 0


def test_a_release_answers_what_it_released_and_an_ended_order_never_holds_again():
    account = opened()
    account.hold("ord_1", 1, buy(10, "100.00"), NO_MARKS, AT)
    assert account.release("ord_1", "canceled", AT) == account.release("ord_1", "canceled", AT) == D("1000.00")
    assert [type(e) for e in account.events] == [HoldTaken, HoldReleased]
    with pytest.raises(DomainError) as ended:
        account.hold("ord_1", 2, buy(1, "1.00"), NO_MARKS, AT)
    assert ended.value.reason == "FAILED_PRECONDITION"


def test_a_release_of_nothing_leaves_a_marker_that_refuses_a_late_hold():
    account = opened()
    assert account.release("ord_9", "abandoned", AT, version=3) == 0
    assert account.events == [HoldReleased("ord_9", 3, "abandoned", AT, marker=True)]
    with pytest.raises(DomainError) as late:
        account.hold("ord_9", 3, buy(1, "1.00"), NO_MARKS, AT)
    assert late.value.reason == "FAILED_PRECONDITION"


def test_a_covered_fill_moves_cash_and_the_position_and_releases_the_hold():
    account = opened()
    account.hold("ord_1", 1, buy(10, "100.00"), NO_MARKS, AT)
    effect = account.apply_fill("fill_1", FillTerms("ord_1", "AMZN", Side.BUY, D(10), D("99.50"), D(1)), 1, AT)
    assert (account.cash, account.positions["AMZN"].qty, account.held().amount) == (D("9005.00"), D(10), D(0))
    assert effect.cash_delta == D("-995.00")
    assert [type(e) for e in account.events] == [HoldTaken, FillApplied, HoldReleased]


@pytest.mark.parametrize(
    "fill, why",
    [
        (FillTerms("ord_1", "AMZN", Side.BUY, D(11), D("99.50"), D(1)), "the fill is for 11"),
        (FillTerms("ord_1", "AMZN", Side.BUY, D(10), D("100.01"), D(1)), "above the held worst price"),
        (FillTerms("ord_1", "GOOG", Side.BUY, D(10), D("99.50"), D(1)), "not a buy of GOOG"),
        (FillTerms("ord_2", "AMZN", Side.BUY, D(1), D("1.00"), D(1)), "no active hold"),
    ],
)
def test_the_ledger_refuses_a_fill_no_hold_covers_and_changes_nothing(fill, why):
    account = opened()
    account.hold("ord_1", 1, buy(10, "100.00"), NO_MARKS, AT)
    account.events.clear()
    assert account.apply_fill("fill_x", fill, 1, AT) is None
    [refused] = account.events
    assert isinstance(refused, FillRefused) and refused.reason == "LEDGER_INVARIANT" and why in refused.why
    assert (account.cash, account.positions, account.held().amount) == (D("10000.00"), {}, D("1000.00"))


def test_a_cash_account_never_goes_short_even_if_a_hold_said_so():
    account = opened()
    # A hold without recorded terms (taken before holds kept them) covers by amount only.
    account.holds["ord_1"] = [VersionHold(1, None, Hold(D(0), D(0)), True, symbol="AMZN")]
    assert account.apply_fill("fill_s", FillTerms("ord_1", "AMZN", Side.SELL, D(5), D("100"), D(1)), 1, AT) is None
    [refused] = account.events
    assert "short" in refused.why and account.positions == {}


CALL = "AMZN120720C00220000"  # one contract is 100 shares; prices are per share


def test_an_option_fill_moves_cash_by_price_times_qty_times_100_and_counts_contracts():
    account = opened()
    account.hold("ord_1", 1, HoldTerms(CALL, Side.BUY, D(2), D("3.10"), D(100)), NO_MARKS, AT)
    assert account.held().amount == D("620.00")
    account.apply_fill("fill_1", FillTerms("ord_1", CALL, Side.BUY, D(2), D("3.05"), D(100)), 1, AT)
    position = account.positions[CALL]
    assert (account.cash, position.qty, position.avg_entry_price) == (D("9390.00"), D(2), D("3.05"))
    marks = {CALL: Mark(D("3.50"), D("3.60"), AT)}
    assert account.valuation(marks) == Valuation(D("9390.00"), D("700.00"), D(0), D(0), D("700.00"))
    assert account.buying_power(marks) == D("9390.00")
    account.hold("ord_2", 1, HoldTerms(CALL, Side.SELL, D(2), D("3.50"), D(100)), marks, AT)
    effect = account.apply_fill("fill_2", FillTerms("ord_2", CALL, Side.SELL, D(2), D("3.50"), D(100)), 1, AT)
    assert effect is not None and effect.realized_pl == D("90.00")
    assert (account.cash, account.positions) == (D("10090.00"), {})


def test_an_option_fill_or_hold_with_a_share_multiplier_is_refused():
    account = opened()
    with pytest.raises(DomainError) as wrong:
        account.hold("ord_1", 1, HoldTerms(CALL, Side.BUY, D(1), D("3.10"), D(1)), NO_MARKS, AT)
    assert wrong.value.reason == "INVALID_ARGUMENT"
    account.hold("ord_1", 1, HoldTerms(CALL, Side.BUY, D(1), D("3.10"), D(100)), NO_MARKS, AT)
    account.events.clear()
    assert account.apply_fill("fill_1", FillTerms("ord_1", CALL, Side.BUY, D(1), D("3.05"), D(1)), 1, AT) is None
    [refused] = account.events
    assert isinstance(refused, FillRefused) and "multiplier" in refused.why


def exit_of(terms: HoldTerms, group: str) -> HoldTerms:
    return HoldTerms(terms.symbol, terms.side, terms.qty, terms.price_bound, terms.multiplier, exit_group=group)


def test_the_two_exits_of_a_bracket_promise_their_shares_once():
    """A bracket's or oco's exits close the same position: their holds count once, the
    larger (README "Order classes"); a third sell finds nothing free."""
    account = opened()
    account.hold("ord_0", 1, buy(10, "100.00"), NO_MARKS, AT)
    account.apply_fill("fill_0", FillTerms("ord_0", "AMZN", Side.BUY, D(10), D("100.00"), D(1)), 1, AT)
    account.hold("ord_tp", 1, exit_of(sell(10, "110.00"), "grp"), NO_MARKS, AT)
    account.hold("ord_sl", 1, exit_of(sell(10, "90.00"), "grp"), NO_MARKS, AT)
    assert account.held() == Hold(D(0), D(10))
    assert account.shares_free() == {"AMZN": D(0)}
    with pytest.raises(DomainError) as refused:
        account.hold("ord_x", 1, sell(1, "100.00"), NO_MARKS, AT)
    assert refused.value.reason == "INSUFFICIENT_BUYING_POWER"
    # One exit fills: its hold goes with the fill; the sibling's with its cancel, once.
    account.apply_fill("fill_tp", FillTerms("ord_tp", "AMZN", Side.SELL, D(10), D("110.00"), D(1)), 1, AT)
    account.events.clear()
    account.release("ord_sl", "canceled", AT)
    account.release("ord_sl", "canceled", AT)  # the cancel event delivered again
    assert [(e.order_id, e.reason) for e in account.events if isinstance(e, HoldReleased)] == [("ord_sl", "canceled")]
    assert (account.held(), account.positions, account.cash) == (Hold(D(0), D(0)), {}, D("10100.00"))


def test_option_exits_of_a_pair_hold_their_larger_debit_once_beside_the_secured_put():
    put = "AMZN120720P00210000"
    account = opened()
    account.cash = D("50000")
    sold = HoldTerms(put, Side.SELL, D(1), D("0.26"), D(100))
    account.hold("ord_put", 1, sold, NO_MARKS, AT)
    account.apply_fill("fill_put", FillTerms("ord_put", put, Side.SELL, D(1), D("0.26"), D(100)), 1, AT)
    assert account.held().amount == D(21000)
    account.hold("ord_tp", 1, HoldTerms(put, Side.BUY, D(1), D("0.13"), D(100), exit_group="root"), NO_MARKS, AT)
    account.hold("ord_sl", 1, HoldTerms(put, Side.BUY, D(1), D("0.546"), D(100), exit_group="root"), NO_MARKS, AT)
    assert account.held().amount == D(21000) + D("54.60")
    # Without a group the two buy-backs would each hold their debit.
    account.hold("ord_other", 1, HoldTerms(put, Side.BUY, D(1), D("0.10"), D(100)), NO_MARKS, AT)
    assert account.held().amount == D(21000) + D("54.60") + D(10)
