"""Option order rules (services/orders/domain/options.py): single-leg checks and the price
grid, position intents, multi-leg legs and ratios, and the limit-price sign check."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.common.errors import REASON_STATUS, DomainError
from services.common.instruments import parse_symbol
from services.common.spreads import Strategy, resolve_leg_intents
from services.common.trading import OrderType, PositionIntent, TimeInForce, resolve_intent
from services.orders.domain.options import (
    check_limit_sign,
    check_net_price,
    validate_multileg,
    validate_single_leg,
)
from tests.support.options import BUY, LATER, SELL, call, leg, put, quote

D = Decimal
LIMIT, MARKET, STOP, STOP_LIMIT = OrderType.LIMIT, OrderType.MARKET, OrderType.STOP, OrderType.STOP_LIMIT
DAY, GTC = TimeInForce.DAY, TimeInForce.GTC
BTO, BTC = PositionIntent.BUY_TO_OPEN, PositionIntent.BUY_TO_CLOSE
STO, STC = PositionIntent.SELL_TO_OPEN, PositionIntent.SELL_TO_CLOSE


def refused(call_, *args, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as err:
        call_(*args, **kwargs)
    return err.value


# --- single-leg: the grid and the order's shape ----------------------------------------------

GRID = [
    ("AMZN", "2.99", True),
    ("AMZN", "2.995", False),
    ("AMZN", "3.00", True),
    ("AMZN", "3.01", False),
    ("AMZN", "3.05", True),
    ("AMZN", "0.01", True),
    ("AMZN", "12.35", True),
    ("AMZN", "12.37", False),
    ("SPY", "3.01", True),
    ("QQQ", "7.77", True),
    ("IWM", "15.03", True),
    ("SPY", "3.015", False),
]


@pytest.mark.parametrize(("underlying", "price", "ok"), GRID)
def test_prices_on_the_penny_program_grid(underlying, price, ok):
    contract = call(100, underlying=underlying)
    args = (contract, D(1), LIMIT, DAY, D(price), None)
    if ok:
        validate_single_leg(*args)
    else:
        error = refused(validate_single_leg, *args)
        assert (error.reason, error.metadata["field"]) == ("INVALID_ARGUMENT", "limit_price")
        assert f"{underlying} options trade in" in error.message


def test_stop_prices_are_on_the_grid_too():
    error = refused(validate_single_leg, call(100, "AMZN"), D(1), STOP_LIMIT, GTC, D("3.05"), D("3.02"))
    assert error.metadata["field"] == "stop_price"


SHAPES = [
    ("a stock", {"contract": parse_symbol("AMZN")}, "symbol"),
    ("half a contract", {"qty": D("0.5")}, "qty"),
    ("no contracts", {"qty": D(0)}, "qty"),
    ("ioc", {"tif": TimeInForce.IOC}, "time_in_force"),
    ("fok", {"tif": TimeInForce.FOK}, "time_in_force"),
    ("limit without a price", {"limit": None}, "limit_price"),
    ("market with a limit", {"kind": MARKET}, "limit_price"),
    ("stop without a stop", {"kind": STOP, "limit": None}, "stop_price"),
    ("negative premium", {"limit": D("-1.00")}, "limit_price"),
]


@pytest.mark.parametrize(("name", "changes", "field"), SHAPES, ids=[s[0] for s in SHAPES])
def test_single_leg_refusals_name_the_field(name, changes, field):
    values = {"contract": call(100), "qty": D(2), "kind": LIMIT, "tif": DAY, "limit": D("1.25"), "stop": None} | changes
    error = refused(
        validate_single_leg,
        values["contract"],
        values["qty"],
        values["kind"],
        values["tif"],
        values["limit"],
        values["stop"],
    )
    assert (error.reason, error.metadata["field"]) == ("INVALID_ARGUMENT", field)


def test_every_order_type_and_day_or_gtc_are_accepted():
    for kind, limit, stop in (
        (MARKET, None, None),
        (LIMIT, "1.25", None),
        (STOP, None, "1.50"),
        (STOP_LIMIT, "1.55", "1.50"),
    ):
        for tif in (DAY, GTC):
            validate_single_leg(put(95), D(3), kind, tif, limit and D(limit), stop and D(stop))


# --- position intent ----------------------------------------------------------------------------

INFERRED = [
    ("buy with nothing held opens", BUY, "1", "0", BTO),
    ("buy while long adds", BUY, "1", "2", BTO),
    ("buy while short closes", BUY, "2", "-3", BTC),
    ("sell with nothing held opens", SELL, "1", "0", STO),
    ("sell while short adds", SELL, "1", "-1", STO),
    ("sell while long closes", SELL, "2", "2", STC),
]


@pytest.mark.parametrize(("name", "side", "qty", "held", "intent"), INFERRED, ids=[i[0] for i in INFERRED])
def test_intent_is_inferred_closing_when_the_order_reduces_the_position(name, side, qty, held, intent):
    assert resolve_intent(side, D(qty), None, D(held)) is intent
    assert resolve_intent(side, D(qty), intent, D(held)) is intent


CONTRADICTED = [
    ("an intent of the other side", BUY, "1", STO, "0", "is for a sell order"),
    ("closing what is not held", SELL, "1", STC, "0", "no long position to close"),
    ("closing a long with a buy", BUY, "1", BTC, "2", "no short position to close"),
    ("closing more than held", SELL, "3", STC, "2", "closes at most the 2 contracts held"),
    ("closing across zero, inferred", SELL, "3", None, "2", "open the rest with sell_to_open"),
    ("opening against a short", BUY, "1", BTO, "-1", "use buy_to_close"),
]


@pytest.mark.parametrize(
    ("name", "side", "qty", "intent", "held", "words"), CONTRADICTED, ids=[c[0] for c in CONTRADICTED]
)
def test_intent_contradicting_the_position_is_refused(name, side, qty, intent, held, words):
    error = refused(resolve_intent, side, D(qty), intent, D(held))
    assert (error.reason, error.metadata["field"]) == ("INVALID_ARGUMENT", "position_intent")
    assert words in error.message


def test_leg_intents_count_ratio_times_qty_contracts():
    legs = [leg(SELL, put(100)), leg(BUY, put(95), 2)]
    positions = {put(100).symbol: D(-2)}
    assert resolve_leg_intents(legs, D(2), [None, None], {}) == (STO, BTO)
    # Buying back 2 of the short 100 put closes it; the second leg opens 4.
    assert resolve_leg_intents([leg(BUY, put(100)), leg(SELL, put(95))], D(2), [None, None], positions) == (BTC, STO)
    error = refused(resolve_leg_intents, legs, D(3), [None, STC], positions)
    assert error.metadata["field"] == "legs[1].position_intent"


# --- multi-leg ----------------------------------------------------------------------------------

IRON_CONDOR = [leg(BUY, put(90)), leg(SELL, put(95)), leg(SELL, call(105)), leg(BUY, call(110))]
BULL_PUT = [leg(SELL, put(100)), leg(BUY, put(95))]


def test_an_iron_condor_for_a_credit_is_accepted_and_classified():
    structure = validate_multileg(IRON_CONDOR, D(2), LIMIT, GTC, D("-1.25"))
    assert (structure.strategy, structure.width) == (Strategy.IRON_CONDOR, D(5))


@pytest.mark.parametrize("limit", ["-1.20", "0", "0.00", "1.15", "-0.01"])
def test_a_multileg_limit_may_be_a_debit_a_credit_or_zero(limit):
    assert validate_multileg(BULL_PUT, D(1), LIMIT, DAY, D(limit)).strategy is Strategy.VERTICAL_CREDIT


def test_a_market_multileg_order_is_accepted():
    assert validate_multileg(BULL_PUT, D(3), MARKET, DAY, None).width == D(5)


MULTILEG_REFUSALS = [
    ("one leg", [leg(SELL, put(100))], {}, "legs", "2 to 4 legs"),
    ("five legs", [*IRON_CONDOR, leg(BUY, call(120))], {}, "legs", "2 to 4 legs"),
    ("a stock leg", [leg(SELL, put(100)), leg(BUY, parse_symbol("XYZ"))], {}, "legs[1].symbol", "option legs only"),
    ("a repeated contract", [leg(SELL, put(100)), leg(BUY, put(100))], {}, "legs[1].symbol", "repeats"),
    ("two underlyings", [leg(SELL, put(100)), leg(BUY, put(95, underlying="ABC"))], {}, "legs", "one underlying"),
    ("a calendar", [leg(SELL, call(100)), leg(BUY, call(100, expiry=LATER))], {}, "legs", "calendars and diagonals"),
    ("a diagonal", [leg(SELL, call(100)), leg(BUY, call(105, expiry=LATER))], {}, "legs", "not supported yet"),
    ("a zero ratio", [leg(SELL, put(100), 0), leg(BUY, put(95))], {}, "legs[0].ratio", "ratio must be"),
    ("ratios 4:2", [leg(BUY, call(100), 4), leg(SELL, call(105), 2)], {}, "legs", "send 2:1"),
    ("ratios 2:2:2:2", [leg(lg.side, lg.contract, 2) for lg in IRON_CONDOR], {}, "legs", "send 1:1:1:1"),
    ("a stop order", BULL_PUT, {"kind": STOP}, "order_type", "market or limit"),
    ("ioc", BULL_PUT, {"tif": TimeInForce.IOC}, "time_in_force", "day or gtc"),
    ("half a spread", BULL_PUT, {"qty": D("1.5")}, "qty", "whole number"),
    ("a limit without a price", BULL_PUT, {"limit": None}, "limit_price", "net per spread"),
    ("a market order with a limit", BULL_PUT, {"kind": MARKET}, "limit_price", "takes no limit_price"),
    ("a net off the cent grid", BULL_PUT, {"limit": D("-1.255")}, "limit_price", "$0.01"),
    ("a stop price", BULL_PUT, {"stop": D("1.00")}, "stop_price", "no stop_price"),
]


@pytest.mark.parametrize(
    ("name", "legs", "changes", "field", "words"), MULTILEG_REFUSALS, ids=[r[0] for r in MULTILEG_REFUSALS]
)
def test_multileg_refusals_name_the_field_and_say_why(name, legs, changes, field, words):
    values = {"qty": D(1), "kind": LIMIT, "tif": DAY, "limit": D("-1.20"), "stop": None} | changes
    error = refused(
        validate_multileg, legs, values["qty"], values["kind"], values["tif"], values["limit"], values["stop"]
    )
    assert (error.reason, error.metadata["field"]) == ("INVALID_ARGUMENT", field)
    assert words in error.message


def test_ratios_in_lowest_terms_say_what_to_send_instead():
    error = refused(validate_multileg, [leg(BUY, call(100), 4), leg(SELL, call(105), 2)], D(1), LIMIT, DAY, D("0.50"))
    assert error.message == "leg ratios 4:2 are not in lowest terms: send 2:1 and multiply qty by 2"


def test_replace_accepts_negative_and_zero_net_limits():
    for net in ("-3.10", "0", "2.00"):
        check_net_price(D(net), "limit_price")
    assert refused(check_net_price, D("-1000001"), "limit_price").metadata["field"] == "limit_price"


# --- the limit's sign ---------------------------------------------------------------------------

# Sell the 100 put 2.00 x 2.10, buy the 95 put 0.80 x 0.90: natural -1.10, net bid -1.30.
BULL_PUT_QUOTES = [quote(SELL, "2.00", "2.10"), quote(BUY, "0.80", "0.90")]
CREDIT_SPREAD = validate_multileg(BULL_PUT, D(1), LIMIT, DAY, D("-1.10"))


def test_a_credit_spread_sent_as_a_debit_is_refused_with_the_sign_to_use():
    error = refused(check_limit_sign, CREDIT_SPREAD, D("1.10"), BULL_PUT_QUOTES)
    assert error.reason == "LIMIT_PRICE_SIGN" and REASON_STATUS[error.reason] == "INVALID_ARGUMENT"
    assert error.metadata == {"field": "limit_price", "natural": "-1.10"}
    assert error.message == (
        "limit_price 1.10 is a debit, but this vertical_credit trades at a credit now "
        "(natural -1.10): send a negative limit_price for a credit, e.g. -1.10"
    )


def test_a_debit_spread_sent_as_a_credit_is_refused_with_the_sign_to_use():
    debit = validate_multileg([leg(BUY, put(100)), leg(SELL, put(95))], D(1), LIMIT, DAY, D("1.20"))
    quotes = [quote(BUY, "2.00", "2.10"), quote(SELL, "0.80", "0.90")]  # natural +1.30
    error = refused(check_limit_sign, debit, D("-1.20"), quotes)
    assert "send a positive limit_price for a debit, e.g. 1.30" in error.message


@pytest.mark.parametrize("limit", ["-1.30", "-1.10", "-0.50", "-0.01", "0", "0.00"])
def test_limits_of_the_structures_sign_and_zero_pass(limit):
    check_limit_sign(CREDIT_SPREAD, D(limit), BULL_PUT_QUOTES)


@pytest.mark.parametrize("limit", ["0.01", "0.10", "1.10", "5.00"])
def test_any_debit_on_a_credit_spread_further_than_its_quoted_width_is_refused(limit):
    # The spread's quoted width (natural - net bid) is 0.20; every debit is further than that
    # from the natural -1.10.
    assert refused(check_limit_sign, CREDIT_SPREAD, D(limit), BULL_PUT_QUOTES).reason == "LIMIT_PRICE_SIGN"


def test_a_credit_asked_on_a_condor_whose_wide_legs_make_its_natural_a_debit_passes():
    condor = validate_multileg(IRON_CONDOR, D(1), LIMIT, DAY, D("-0.40"))
    # Buy legs 0.20 x 0.55, sell legs 0.50 x 0.65: natural +0.10, net bid -0.90, mid -0.40.
    quotes = [
        quote(BUY, "0.20", "0.55"),
        quote(SELL, "0.50", "0.65"),
        quote(SELL, "0.50", "0.65"),
        quote(BUY, "0.20", "0.55"),
    ]
    for limit in ("-0.40", "-0.80", "-0.95", "0.10", "0.50"):
        check_limit_sign(condor, D(limit), quotes)


def test_a_credit_further_than_the_quoted_width_below_a_debit_market_is_refused():
    debit = validate_multileg([leg(BUY, put(100)), leg(SELL, put(95))], D(1), LIMIT, DAY, D("1.20"))
    quotes = [quote(BUY, "2.00", "2.10"), quote(SELL, "0.80", "0.90")]  # net bid 1.10, natural 1.30
    check_limit_sign(debit, D("5.00"), quotes)  # an overpaying debit has the right sign
    assert refused(check_limit_sign, debit, D("-0.01"), quotes).reason == "LIMIT_PRICE_SIGN"


def test_a_small_opposite_limit_near_a_structure_worth_almost_nothing_passes():
    quotes = [quote(SELL, "0.05", "0.10"), quote(BUY, "0.01", "0.04")]  # natural -0.01, width 0.08
    check_limit_sign(CREDIT_SPREAD, D("0.02"), quotes)
    assert refused(check_limit_sign, CREDIT_SPREAD, D("0.08"), quotes).reason == "LIMIT_PRICE_SIGN"
