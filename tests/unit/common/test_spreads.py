"""Strategy classification and net prices of option structures (services/common/spreads.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.common.instruments import COMPLEX_TICK, on_complex_grid
from services.common.spreads import Strategy, classify, natural, net_bid, net_mid, net_price
from tests.support.options import BUY, LATER, SELL, call, leg, put, quote

CLASSIFIED = [
    ("long call", [leg(BUY, call(100))], Strategy.LONG_CALL, "0"),
    ("short call", [leg(SELL, call(100))], Strategy.SHORT_CALL, "0"),
    ("long put", [leg(BUY, put(100))], Strategy.LONG_PUT, "0"),
    ("short put", [leg(SELL, put(100))], Strategy.SHORT_PUT, "0"),
    ("bull call (debit)", [leg(BUY, call(100)), leg(SELL, call(105))], Strategy.VERTICAL_DEBIT, "5"),
    ("bear call (credit)", [leg(SELL, call(100)), leg(BUY, call(105))], Strategy.VERTICAL_CREDIT, "5"),
    ("bear put (debit)", [leg(SELL, put(95)), leg(BUY, put(100))], Strategy.VERTICAL_DEBIT, "5"),
    ("bull put (credit)", [leg(SELL, put(100)), leg(BUY, put(95))], Strategy.VERTICAL_CREDIT, "5"),
    (
        "iron condor, legs in any order",
        [leg(SELL, call(110)), leg(BUY, put(90)), leg(BUY, call(115)), leg(SELL, put(95))],
        Strategy.IRON_CONDOR,
        "5",
    ),
    (
        "iron condor, uneven wings: the wider",
        [leg(BUY, put(85)), leg(SELL, put(95)), leg(SELL, call(105)), leg(BUY, call(108))],
        Strategy.IRON_CONDOR,
        "10",
    ),
    (
        "reverse iron condor (closing one)",
        [leg(SELL, put(90)), leg(BUY, put(95)), leg(BUY, call(110)), leg(SELL, call(115))],
        Strategy.REVERSE_IRON_CONDOR,
        "5",
    ),
    (
        "iron butterfly",
        [leg(BUY, put(95)), leg(SELL, put(100)), leg(SELL, call(100)), leg(BUY, call(105))],
        Strategy.IRON_BUTTERFLY,
        "5",
    ),
    (
        "reverse iron butterfly",
        [leg(SELL, put(95)), leg(BUY, put(100)), leg(BUY, call(100)), leg(SELL, call(105))],
        Strategy.REVERSE_IRON_BUTTERFLY,
        "5",
    ),
    ("long straddle", [leg(BUY, call(100)), leg(BUY, put(100))], Strategy.LONG_STRADDLE, "0"),
    ("short straddle", [leg(SELL, put(100)), leg(SELL, call(100))], Strategy.SHORT_STRADDLE, "0"),
    ("long strangle", [leg(BUY, put(95)), leg(BUY, call(105))], Strategy.LONG_STRANGLE, "10"),
    ("short strangle", [leg(SELL, put(95)), leg(SELL, call(105))], Strategy.SHORT_STRANGLE, "10"),
    ("ratio spread", [leg(BUY, call(100)), leg(SELL, call(105), 2)], Strategy.CUSTOM, "5"),
    ("call butterfly", [leg(BUY, call(95)), leg(SELL, call(100)), leg(BUY, call(105))], Strategy.CUSTOM, "10"),
    ("risk reversal", [leg(SELL, put(95)), leg(BUY, call(105))], Strategy.CUSTOM, "10"),
    ("calendar", [leg(SELL, call(100)), leg(BUY, call(100, expiry=LATER))], Strategy.CUSTOM, "0"),
    (
        "condor wings crossed",
        [leg(BUY, put(90)), leg(SELL, put(110)), leg(SELL, call(100)), leg(BUY, call(115))],
        Strategy.CUSTOM,
        "25",
    ),
    (
        "condor with a long inner put",
        [leg(BUY, put(90)), leg(BUY, put(95)), leg(SELL, call(110)), leg(BUY, call(115))],
        Strategy.CUSTOM,
        "25",
    ),
]


@pytest.mark.parametrize(("name", "legs", "strategy", "width"), CLASSIFIED, ids=[c[0] for c in CLASSIFIED])
def test_classify(name, legs, strategy, width):
    structure = classify(legs)
    assert (structure.strategy, structure.width) == (strategy, Decimal(width))


def test_net_prices_of_a_bull_put_credit_spread():
    # Sell the 100 put (2.00 x 2.10), buy the 95 put (0.80 x 0.90): a credit.
    quotes = [quote(SELL, "2.00", "2.10"), quote(BUY, "0.80", "0.90")]
    assert natural(quotes) == Decimal("-1.10")  # sell at the bid, buy at the ask
    assert net_bid(quotes) == Decimal("-1.30")  # the far sides
    assert net_mid(quotes) == Decimal("-1.20")


def test_net_prices_weigh_legs_by_ratio_and_a_mid_can_fall_on_half_a_cent():
    quotes = [quote(BUY, "1.00", "1.05"), quote(SELL, "0.40", "0.45", ratio=2)]
    assert natural(quotes) == Decimal("1.05") - 2 * Decimal("0.40")
    assert net_mid(quotes) == Decimal("0.1750")
    assert not on_complex_grid(net_mid(quotes))


def test_net_price_is_the_signed_sum_of_leg_prices_times_ratios():
    assert net_price([(BUY, 1, Decimal("0.90")), (SELL, 1, Decimal("2.00")), (SELL, 2, Decimal("0.10"))]) == Decimal(
        "-1.30"
    )


def test_the_complex_grid_is_cents_of_either_sign():
    assert Decimal("0.01") == COMPLEX_TICK
    assert all(on_complex_grid(Decimal(v)) for v in ("-1.25", "0", "0.00", "3.07", "-0.01"))
    assert not any(on_complex_grid(Decimal(v)) for v in ("-1.255", "0.005"))
