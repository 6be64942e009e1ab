"""Option buying power (services/accounts/domain/options.py): the requirement of every
strategy, Alpaca's two documented examples, the refusals, offsetting positions, working
orders, and buying power before and after a credit fill."""

from __future__ import annotations

import itertools
from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.accounts.domain.options import (
    OptionHolding,
    OptionOrderTerms,
    book_requirement,
    order_hold,
    requirement,
    share_sale_hold,
)
from services.common.errors import REASON_STATUS, DomainError
from services.common.trading import Side
from tests.support.options import BUY, LATER, SELL, call, leg, put

D = Decimal
NO_SHARES: dict[str, Decimal] = {}
SHARES_100 = {"XYZ": D(100)}


def order(*legs, qty="1", net="0", order_id="ord_new") -> OptionOrderTerms:
    return OptionOrderTerms(order_id, tuple(legs), D(qty), D(net))


def holding(spec, qty) -> OptionHolding:
    return OptionHolding(spec, D(qty))


def hold_of(new, positions=(), working=(), shares=NO_SHARES):
    return order_hold(list(positions), list(working), new, shares)


# --- one strategy at a time, opened by one order -------------------------------------------------

STRATEGIES = [
    # (name, order, shares free, cash held, shares locked)
    ("long call: the premium only", order(leg(BUY, call(100)), net="2.50", qty="2"), NO_SHARES, "500", "0"),
    ("long put: the premium only", order(leg(BUY, put(100)), net="1.10"), NO_SHARES, "110", "0"),
    (
        "cash-secured put: Alpaca's $175 put holds $17,500",
        order(leg(SELL, put(175)), net="-3.00"),
        NO_SHARES,
        "17500",
        "0",
    ),
    ("two cash-secured puts", order(leg(SELL, put(50)), net="-1.00", qty="2"), NO_SHARES, "10000", "0"),
    ("covered call: no cash, 100 shares locked", order(leg(SELL, call(105)), net="-1.50"), SHARES_100, "0", "100"),
    (
        "bull put credit spread: width x 100",
        order(leg(SELL, put(100)), leg(BUY, put(95)), net="-1.20"),
        NO_SHARES,
        "500",
        "0",
    ),
    (
        "bear call credit spread: width x 100",
        order(leg(SELL, call(100)), leg(BUY, call(105)), net="-1.20"),
        NO_SHARES,
        "500",
        "0",
    ),
    (
        "bear call credit spread with shares: its short call covered",
        order(leg(SELL, call(100)), leg(BUY, call(105)), net="-1.20"),
        SHARES_100,
        "0",
        "100",
    ),
    (
        "bull call debit spread: the debit only",
        order(leg(BUY, call(100)), leg(SELL, call(105)), net="2.10"),
        NO_SHARES,
        "210",
        "0",
    ),
    (
        "bear put debit spread: the debit only",
        order(leg(BUY, put(100)), leg(SELL, put(95)), net="1.90", qty="3"),
        NO_SHARES,
        "570",
        "0",
    ),
    (
        "iron condor: Alpaca's $5-wide condor holds $500",
        order(leg(BUY, put(90)), leg(SELL, put(95)), leg(SELL, call(105)), leg(BUY, call(110)), net="-1.25"),
        NO_SHARES,
        "500",
        "0",
    ),
    (
        "iron condor, uneven wings: the wider",
        order(leg(BUY, put(85)), leg(SELL, put(95)), leg(SELL, call(105)), leg(BUY, call(110)), net="-2.00"),
        NO_SHARES,
        "1000",
        "0",
    ),
    (
        "iron butterfly: the wider wing",
        order(leg(BUY, put(95)), leg(SELL, put(100)), leg(SELL, call(100)), leg(BUY, call(103)), net="-3.00", qty="2"),
        NO_SHARES,
        "1000",
        "0",
    ),
    (
        "short straddle: the put secured, the call covered",
        order(leg(SELL, put(100)), leg(SELL, call(100)), net="-6.00"),
        SHARES_100,
        "10000",
        "100",
    ),
    (
        "short strangle: the put secured, the call covered",
        order(leg(SELL, put(95)), leg(SELL, call(105)), net="-3.00"),
        SHARES_100,
        "9500",
        "100",
    ),
    (
        "long straddle: the debit only",
        order(leg(BUY, put(100)), leg(BUY, call(100)), net="6.20"),
        NO_SHARES,
        "620",
        "0",
    ),
    (
        "call ratio spread 1x2: the extra call covered",
        order(leg(BUY, call(100)), leg(SELL, call(105), 2), net="0.10"),
        SHARES_100,
        "10",
        "100",
    ),
]


@pytest.mark.parametrize(("name", "new", "shares", "cash", "locked"), STRATEGIES, ids=[s[0] for s in STRATEGIES])
def test_what_each_strategy_holds(name, new, shares, cash, locked):
    held = hold_of(new, shares=shares)
    assert held.cash == D(cash)
    assert held.requirement + held.debit == held.cash
    assert held.shares.get("XYZ", D(0)) == D(locked)


NAKED = [
    ("a naked call", order(leg(SELL, call(105))), NO_SHARES),
    ("two calls on 100 shares", order(leg(SELL, call(105)), qty="2"), SHARES_100),
    ("a short straddle without shares", order(leg(SELL, put(100)), leg(SELL, call(100))), NO_SHARES),
    ("a call on another underlying's shares", order(leg(SELL, call(105, underlying="ABC"))), SHARES_100),
    ("a 1x2 call ratio spread without shares", order(leg(BUY, call(100)), leg(SELL, call(105), 2)), NO_SHARES),
]


@pytest.mark.parametrize(("name", "new", "shares"), NAKED, ids=[n[0] for n in NAKED])
def test_uncovered_calls_are_refused(name, new, shares):
    with pytest.raises(DomainError) as err:
        hold_of(new, shares=shares)
    assert err.value.reason == "UNCOVERED_OPTION_NOT_ALLOWED"
    assert REASON_STATUS[err.value.reason] == "FAILED_PRECONDITION"
    assert "naked calls are not allowed" in err.value.message


def test_covered_calls_on_two_expiries_share_one_pool_of_shares():
    first = holding(call(105), -1)
    second = order(leg(SELL, call(110, expiry=LATER)))
    with pytest.raises(DomainError):
        hold_of(second, positions=[first], shares=SHARES_100)
    assert hold_of(second, positions=[first], shares={"XYZ": D(200)}).shares == {"XYZ": D(100)}


# --- the book: positions offset orders, and nothing is held twice -------------------------------


def test_positions_hold_their_requirement_per_underlying_and_expiry():
    book = [
        holding(put(100), -1),
        holding(put(95), 1),  # bull put spread: 500
        holding(call(105), -2),  # two covered calls
        holding(put(50, underlying="ABC"), -1),  # a cash-secured put: 5,000
        holding(put(90, expiry=LATER), -1),
        holding(put(85, expiry=LATER), 1),
    ]  # another spread: 500
    held = requirement(book, {"XYZ": D(300)})
    assert held.cash == D(6000)
    assert held.shares == {"XYZ": D(200)}
    assert [(g.underlying, g.expiration.isoformat(), g.cash) for g in held.groups] == [
        ("ABC", "2025-01-17", D(5000)),
        ("XYZ", "2025-01-17", D(500)),
        ("XYZ", "2025-02-21", D(500)),
    ]
    assert held.uncovered == {}


def test_a_view_of_an_account_short_of_shares_reports_them_instead_of_failing():
    held = requirement([holding(call(105), -2)], SHARES_100)
    assert held.uncovered == {"XYZ": D(100)}


def test_closing_an_open_spread_holds_nothing_beyond_its_debit():
    spread = [holding(put(100), -1), holding(put(95), 1)]
    close = order(leg(BUY, put(100)), leg(SELL, put(95)), net="0.40")
    held = hold_of(close, positions=spread)
    assert (held.requirement, held.debit) == (D(0), D(40))


def test_buying_the_protective_put_turns_a_secured_put_into_a_spread_at_the_fill():
    short_put = [holding(put(100), -1)]
    protect = order(leg(BUY, put(95)), net="0.85")
    assert requirement(short_put, NO_SHARES).cash == D(10000)
    assert hold_of(protect, positions=short_put).cash == D(85)
    assert requirement([*short_put, holding(put(95), 1)], NO_SHARES).cash == D(500)


def test_a_put_sold_against_a_long_put_holds_the_spread_once_not_twice():
    long_put = [holding(put(95), 1)]
    first = order(leg(SELL, put(100)), order_id="ord_1")
    assert hold_of(first, positions=long_put).requirement == D(500)
    # The long put covers one of the two, never both: the second is a cash-secured put.
    assert hold_of(order(leg(SELL, put(100)), order_id="ord_2"), positions=long_put, working=[first]).requirement == D(
        10000
    )


def test_selling_a_long_call_to_close_needs_no_shares_but_selling_it_twice_does():
    long_call = [holding(call(100), 1)]
    sell = order(leg(SELL, call(100)), order_id="ord_1")
    assert hold_of(sell, positions=long_call).cash == D(0)
    with pytest.raises(DomainError) as err:
        hold_of(order(leg(SELL, call(100)), order_id="ord_2"), positions=long_call, working=[sell])
    assert err.value.reason == "UNCOVERED_OPTION_NOT_ALLOWED"


def test_a_call_sold_against_a_long_call_position_is_a_spread_not_a_naked_call():
    held = hold_of(order(leg(SELL, call(100))), positions=[holding(call(105), 1)])
    assert (held.requirement, held.shares) == (D(500), {})


def test_buying_a_covered_call_back_frees_its_shares_at_the_fill():
    covered = [holding(call(105), -1)]
    assert requirement(covered, SHARES_100).shares == {"XYZ": D(100)}
    buy_back = order(leg(BUY, call(105)), net="0.30")
    assert hold_of(buy_back, positions=covered, shares=SHARES_100).shares == {}
    assert requirement([], SHARES_100).shares == {}


def test_working_orders_hold_the_worst_case_of_which_of_them_fill():
    secured_put = order(leg(SELL, put(100)), order_id="ord_1")
    condor = order(leg(BUY, put(90)), leg(SELL, put(95)), leg(SELL, call(105)), leg(BUY, call(110)), order_id="ord_2")
    # Both lose most at 0: the put 10,000 and the condor's put wing 500.
    assert hold_of(condor, working=[secured_put]).requirement == D(500)
    call_spread = order(leg(SELL, call(110)), leg(BUY, call(115)), order_id="ord_3")
    # The call spread loses only above 115, where the put loses nothing: the put's 10,000 covers it.
    assert hold_of(call_spread, working=[secured_put]).requirement == D(0)
    assert book_requirement([], [secured_put, condor, call_spread], NO_SHARES).cash == D(10500)


def test_a_call_bought_back_frees_its_shares_but_no_longer_hedges_anything_else():
    # Two covered 95 calls, 250 shares. The order buys one back and sells a 100/105 butterfly's
    # body: if it fills, the 95s net to one short call, the freed shares cover one 100 call and
    # the other 100 call is a spread against the 105: $500, not the butterfly's $0.
    covered = [holding(call(95), -2)]
    fly = order(leg(BUY, call(95)), leg(SELL, call(100), 2), leg(BUY, call(105)))
    assert hold_of(fly, positions=covered, shares={"XYZ": D(250)}).requirement == D(500)


def test_a_call_two_orders_trade_both_ways_nets_away_when_both_fill():
    # One order buys the 95 call against a short 105 put; the other sells the 95 call covered.
    # Both filled, the 95 calls net to nothing and the put is hedged only by the long 100 puts.
    long_puts = [holding(put(100), 2)]
    reversal = order(leg(BUY, call(95)), leg(SELL, put(105)), order_id="ord_1")
    covered_call = order(leg(SELL, call(95)), order_id="ord_2")
    assert book_requirement(long_puts, [reversal, covered_call], SHARES_100).cash == D(500)


def test_more_than_the_enumerated_call_orders_on_one_underlying_are_refused():
    working = [order(leg(SELL, call(100 + 5 * n)), leg(BUY, call(105 + 5 * n)), order_id=f"ord_{n}") for n in range(8)]
    assert book_requirement([], working, NO_SHARES).cash == D(4000)
    with pytest.raises(DomainError) as err:
        hold_of(order(leg(SELL, call(150)), leg(BUY, call(155))), working=working)
    assert err.value.reason == "FAILED_PRECONDITION" and "at most 8" in err.value.message
    # Orders on puts alone are not counted. A secured put loses most at 0, where the call
    # spreads lose nothing: the book's worst goes from 4,000 (above 135) to 9,000 (at 0).
    assert hold_of(order(leg(SELL, put(90))), working=working).requirement == D(5000)


# --- buying power around a credit fill ----------------------------------------------------------


def buying_power(cash, positions, working, shares=NO_SHARES):
    """As the lead wires it: cash less the book requirement less the working orders' debits."""
    return cash - book_requirement(positions, working, shares).cash - sum((o.debit for o in working), D(0))


def test_a_credit_fill_lowers_buying_power_by_the_requirement_less_the_credit_never_more_never_up():
    cash = D(50000)
    before = buying_power(cash, [], [])
    spread = order(leg(SELL, put(100)), leg(BUY, put(95)), net="-1.20")
    working = buying_power(cash, [], [spread])
    credit = D("1.25") * 100  # filled at -1.25: a credit of 125 received
    filled = buying_power(cash + credit, [holding(put(100), -1), holding(put(95), 1)], [])
    assert (before, working, filled) == (D(50000), D(49500), D(49625))
    assert before - filled == D(500) - credit > 0


def test_a_cash_secured_put_fill_keeps_the_strike_held_and_adds_the_premium():
    cash = D(20000)
    working = buying_power(cash, [], [order(leg(SELL, put(175)), net="-3.00")])
    filled = buying_power(cash + 300, [holding(put(175), -1)], [])
    assert (working, filled) == (D(2500), D(2800))


def test_a_covered_call_premium_raises_buying_power_while_its_shares_stay_locked():
    cash = D(1000)
    filled = requirement([holding(call(105), -1)], SHARES_100)
    assert buying_power(cash + 150, [holding(call(105), -1)], [], SHARES_100) == D(1150)
    assert filled.shares == {"XYZ": D(100)}


def test_buying_a_call_above_a_covered_call_keeps_it_covered():
    covered = [holding(call(95), -1)]
    assert requirement(covered, SHARES_100).cash == D(0)
    assert requirement([*covered, holding(call(100), 1)], SHARES_100).cash == D(0)


def test_selling_the_shares_under_a_covered_spread_needs_its_width_and_under_a_covered_call_is_refused():
    spread = [holding(call(100), -1), holding(call(105), 1)]
    assert requirement(spread, SHARES_100).shares == {"XYZ": D(100)}
    assert share_sale_hold(spread, [], SHARES_100, "XYZ", D(100)) == D(500)
    assert share_sale_hold(spread, [], {"XYZ": D(150)}, "XYZ", D(50)) == D(0)
    for covered_call, qty in (([holding(call(100), -1)], D(1)), ([holding(call(100), -1)], D(150))):
        with pytest.raises(DomainError) as err:
            share_sale_hold(covered_call, [], SHARES_100, "XYZ", qty)
        assert err.value.reason == "UNCOVERED_OPTION_NOT_ALLOWED"


# --- properties: the worst case is sound, and grows only as orders are added ---------------------

CONTRACTS = [call(k) for k in (95, 100, 105, 110)] + [put(k) for k in (90, 95, 100, 105)]
HOLDINGS = st.lists(st.tuples(st.sampled_from(CONTRACTS), st.integers(-2, 2)), max_size=4)
ORDERS = st.lists(
    st.lists(
        st.tuples(st.sampled_from(CONTRACTS), st.sampled_from(list(Side)), st.integers(1, 2)),
        min_size=1,
        max_size=4,
        unique_by=lambda t: t[0],
    ),
    max_size=4,
)
SHARES = st.sampled_from([D(0), D(100), D(250), D(100_000)]).map(lambda n: {"XYZ": n})


def as_book(raw_positions, raw_orders):
    positions = [holding(spec, qty) for spec, qty in raw_positions]
    working = [
        order(*(leg(side, spec, ratio) for spec, side, ratio in legs), order_id=f"ord_{n}")
        for n, legs in enumerate(raw_orders)
    ]
    return positions, working


def merged(positions, orders):
    net = defaultdict(Decimal)
    for h in [*positions, *(h for o in orders for h in o.holdings())]:
        net[h.contract] += h.qty
    return [OptionHolding(spec, qty) for spec, qty in net.items()]


@settings(max_examples=400, deadline=None)
@given(HOLDINGS, ORDERS, SHARES)
def test_the_book_holds_exactly_the_worst_set_of_working_orders_filling(raw_positions, raw_orders, shares):
    positions, working = as_book(raw_positions, raw_orders)
    book = book_requirement(positions, working, shares)
    sets = [
        requirement(merged(positions, filled), shares)
        for size in range(len(working) + 1)
        for filled in itertools.combinations(working, size)
    ]
    assert book.shares.get("XYZ", D(0)) == max(r.shares.get("XYZ", D(0)) for r in sets)
    assert book.uncovered.get("XYZ", D(0)) == max(r.uncovered.get("XYZ", D(0)) for r in sets)
    if not book.uncovered:  # an uncovered call's loss has no bound; its cash figure is not compared
        assert book.cash == max(r.cash for r in sets)


@settings(max_examples=300, deadline=None)
@given(HOLDINGS, ORDERS, SHARES)
def test_the_book_requirement_never_drops_as_orders_are_added(raw_positions, raw_orders, shares):
    positions, working = as_book(raw_positions, raw_orders)
    previous = requirement(positions, shares)
    for count in range(1, len(working) + 1):
        now = book_requirement(positions, working[:count], shares)
        assert now.cash >= previous.cash
        assert now.uncovered.get("XYZ", D(0)) >= previous.uncovered.get("XYZ", D(0))
        previous = now
