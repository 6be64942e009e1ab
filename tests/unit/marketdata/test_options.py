"""Pure option rules with hand-checked values: contract terms and expiry, the listed grid,
the price grid, Black-Scholes-Merton against textbook examples, the calibration fit and
the quote rule."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.common.instruments import (
    AM,
    INDEX,
    PM,
    ExerciseStyle,
    Settlement,
    contract_terms,
    on_option_grid,
    parse_symbol,
    to_option_grid,
)
from services.marketdata.domain import option_model
from services.marketdata.domain.calendar import xnys
from services.marketdata.domain.calibration import Calibration, ChainPoint, SmileKnot, fit
from services.marketdata.domain.options import (
    is_expired,
    last_trade_ns,
    listed_expirations,
    listed_strikes,
    strike_increment,
)


def utc_ns(*parts) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp()) * 10**9


@pytest.mark.parametrize(
    "symbol, underlying, terms",
    [
        ("AMZN120622C00220000", "AMZN", (ExerciseStyle.AMERICAN, Settlement.PHYSICAL, "")),
        ("SPY230915P00440000", "SPY", (ExerciseStyle.AMERICAN, Settlement.PHYSICAL, "")),
        ("SPX230915C04500000", "^SPX", (ExerciseStyle.EUROPEAN, Settlement.CASH, AM)),
        ("SPXW230915C04500000", "^SPX", (ExerciseStyle.EUROPEAN, Settlement.CASH, PM)),
        ("XSP230915C00450000", "^XSP", (ExerciseStyle.EUROPEAN, Settlement.CASH, PM)),
        ("VIX210519C00010500", "^VIX", (ExerciseStyle.EUROPEAN, Settlement.CASH, AM)),
        ("VIXW210428P00017000", "^VIX", (ExerciseStyle.EUROPEAN, Settlement.CASH, AM)),
    ],
)
def test_contract_terms_by_root(symbol, underlying, terms):
    spec = parse_symbol(symbol)
    assert spec.underlying == underlying and spec.root == symbol[: len(symbol) - 15]
    found = contract_terms(spec)
    assert (found.exercise_style, found.settlement_type, found.settlement_time) == terms


def test_padded_occ_symbols_and_indexes_parse_to_their_canonical_form():
    assert parse_symbol("SPY   230914C00360000").symbol == "SPY230914C00360000"
    assert parse_symbol("vixw  210428p00017000").symbol == "VIXW210428P00017000"
    index = parse_symbol("^vix")
    assert (index.symbol, index.asset_class, index.is_index, index.multiplier) == ("^VIX", INDEX, True, 1)


@pytest.mark.parametrize(
    "symbol, close",
    [
        ("AMZN120622C00220000", (2012, 6, 22, 20)),  # a Friday weekly: that day's close
        ("AMZN120721C00220000", (2012, 7, 20, 20)),  # pre-2015 Saturday-dated monthly: Friday's close
        ("AMZN121123C00220000", (2012, 11, 23, 18)),  # the day after Thanksgiving closes at 13:00
        ("SPXW230915C04500000", (2023, 9, 15, 20)),  # PM-settled: trades its expiration day
        ("SPX230915C04500000", (2023, 9, 14, 20)),  # AM-settled: the session before
        ("VIX210428C00017000", (2021, 4, 27, 20)),  # VIX: the Tuesday before the Wednesday
        ("AAPL130329C00450000", (2013, 3, 28, 20)),  # Good Friday: Thursday's close
    ],
)
def test_trading_stops_at_the_close_of_the_last_trading_day(symbol, close):
    spec = parse_symbol(symbol)
    last = last_trade_ns(spec, xnys())
    assert last == utc_ns(*close)
    assert not is_expired(spec, last - 1, xnys()) and is_expired(spec, last, xnys())


def test_strike_increments_and_the_listed_strikes():
    assert [strike_increment(Decimal(p)) for p in ("24.99", "25", "200", "200.01")] == [Decimal("2.5"), 5, 5, 10]
    assert listed_strikes(Decimal("223.565")) == [
        Decimal(s) for s in (170, 175, 180, 185, 190, 195, 200, 210, 220, 230, 240, 250, 260, 270)
    ]
    assert listed_strikes(Decimal(20)) == [Decimal(s) for s in ("15", "17.5", "20", "22.5", "25")]


def test_listed_expirations_are_weeklies_five_weeks_out_and_three_monthlies():
    assert listed_expirations(date(2012, 6, 21), xnys()) == [
        date(2012, 6, 22),
        date(2012, 6, 29),
        date(2012, 7, 6),
        date(2012, 7, 13),
        date(2012, 7, 20),
        date(2012, 8, 17),
        date(2012, 9, 21),
    ]
    # Good Friday 2013 is a holiday: that week's contracts expire on the Thursday.
    around_easter = listed_expirations(date(2013, 3, 25), xnys())
    assert date(2013, 3, 28) in around_easter and date(2013, 3, 29) not in around_easter
    # An expiration day lists its own contracts until they expire.
    assert listed_expirations(date(2012, 6, 22), xnys())[0] == date(2012, 6, 22)


@pytest.mark.parametrize(
    "price, root, down, up",
    [
        ("2.993", "AMZN", "2.99", "3.00"),
        ("3.07", "AMZN", "3.05", "3.10"),
        ("3.07", "SPY", "3.07", "3.07"),
        ("0.004", "AMZN", "0.00", "0.01"),
        ("-1", "AMZN", "0", "0"),
    ],
)
def test_prices_round_onto_the_option_grid(price, root, down, up):
    assert to_option_grid(Decimal(price), root, up=False) == Decimal(down)
    assert to_option_grid(Decimal(price), root, up=True) == Decimal(up)


def test_black_scholes_merton_matches_the_textbook():
    # Hull, Options, Futures, and Other Derivatives: S 42, K 40, r 10%, sigma 20%, six months:
    # call 4.76, put 0.81.
    assert round(option_model.price("call", 42, 40, 0.5, 0.10, 0.0, 0.20), 2) == 4.76
    assert round(option_model.price("put", 42, 40, 0.5, 0.10, 0.0, 0.20), 2) == 0.81
    # Hull's greeks example: S 49, K 50, r 5%, sigma 20%, 20 weeks: delta 0.522, gamma 0.066,
    # theta -4.31 a year, vega 12.1 per unit of volatility.
    greeks = option_model.greeks("call", 49, 50, 20 / 52, 0.05, 0.0, 0.20)
    assert greeks.delta.quantize(Decimal("0.001")) == Decimal("0.522")
    assert greeks.gamma.quantize(Decimal("0.001")) == Decimal("0.066")
    assert (greeks.theta * 365).quantize(Decimal("0.01")) == Decimal("-4.31")
    assert (greeks.vega * 100).quantize(Decimal("0.1")) == Decimal("12.1")
    assert greeks.implied_volatility == Decimal("0.2000")


def test_implied_volatility_solves_back_the_volatility_and_refuses_impossible_premiums():
    premium = option_model.price("put", 100, 95, 0.25, 0.01, 0.0, 0.35)
    assert abs(option_model.implied_volatility("put", premium, 100, 95, 0.25, 0.01, 0.0) - 0.35) < 1e-6
    assert option_model.implied_volatility("call", 1.0, 100, 80, 0.25, 0.01, 0.0) is None  # below intrinsic
    assert option_model.implied_volatility("call", 1.0, 100, 80, 0.0, 0.01, 0.0) is None


def point(kind, strike, bid, ask, iv, days=10):
    return ChainPoint(
        kind,
        strike,
        date(2023, 9, 14 + days) if days < 17 else date(2023, 10, days - 16),
        bid,
        ask,
        iv,
        100.0,
        date(2023, 9, 14),
    )


def test_the_fit_keeps_out_of_the_money_two_sided_points_and_takes_medians():
    points = [
        point("put", 99, 1.0, 1.2, 0.20),
        point("put", 99.5, 1.1, 1.3, 0.22),
        point("put", 99.8, 1.2, 1.6, 0.30),
        point("call", 99, 2.0, 2.2, 0.50),  # in the money: left out
        point("put", 99, 0.0, 0.2, 0.20),  # no bid: left out
        point("call", 101, 0.9, 1.1, 0.0),  # no implied volatility: left out
        point("call", 101, 0.9, 1.1, 0.18, days=0),
    ]  # expiring today: left out
    [knot] = fit(points)
    assert (knot.dte_min, knot.dte_max, knot.contracts, knot.volatility) == (8, 30, 3, 0.22)
    # Half-spreads 0.1/1.1, 0.1/1.2, 0.2/1.4: the median is 0.1/1.1.
    assert knot.half_spread_fraction == 0.0909


def test_the_calibration_interpolates_in_moneyness_and_is_flat_beyond():
    calibration = Calibration(
        [
            SmileKnot(8, 30, -0.5, 0.30, 0.10, 5),
            SmileKnot(8, 30, 0.5, 0.20, 0.02, 5),
            SmileKnot(31, 90, 0.0, 0.40, 0.05, 5),
        ]
    )
    assert calibration.at(0.0, 10) == pytest.approx((0.25, 0.06))
    assert calibration.at(-2.0, 10) == (0.30, 0.10) and calibration.at(2.0, 10) == (0.20, 0.02)
    assert calibration.at(0.0, 60) == (0.40, 0.05)
    assert calibration.at(0.0, 1) == pytest.approx((0.25, 0.06))  # no 1-7 day knots: the nearest bucket's


def test_a_model_quote_brackets_the_model_value_on_the_grid():
    calibration = Calibration([SmileKnot(1, 7, 0.0, 0.30, 0.05, 5)])
    spec = parse_symbol("AMZN120622C00225000")  # out of the money: a fraction of its value
    quote = option_model.model_quote(spec, Decimal("222.10"), 1.25 / 365, 0.001, 0.0, calibration)
    expected = Decimal(option_model.price("call", 222.10, 225, 1.25 / 365, 0.001, 0.0, quote.volatility))
    assert quote.value == expected.quantize(Decimal("0.0001"))
    assert quote.half_spread == (quote.value * Decimal("0.05")).quantize(Decimal("0.0001"))
    assert quote.bid <= quote.value <= quote.ask and quote.bid < quote.ask
    assert on_option_grid(quote.bid, "AMZN") and on_option_grid(quote.ask, "AMZN")
    assert quote.bid == to_option_grid(quote.value - quote.half_spread, "AMZN", up=False)
    far = option_model.model_quote(
        parse_symbol("AMZN120622C00270000"), Decimal("222.10"), 1.25 / 365, 0.001, 0.0, calibration
    )
    assert (far.bid, far.ask) == (Decimal(0), Decimal("0.01"))  # no bid, one tick offered


def test_an_in_the_money_quote_is_as_wide_as_its_out_of_the_money_twin_and_the_stock():
    calibration = Calibration([SmileKnot(1, 7, -1.9, 0.70, 0.3333, 5), SmileKnot(1, 7, 0.0, 0.30, 0.05, 5)])
    years, stock_half_spread = 1 / 365, Decimal("0.08")
    itm = option_model.model_quote(
        parse_symbol("AMZN120622C00220000"), Decimal("222.10"), years, 0.001, 0.0, calibration, stock_half_spread
    )
    put = option_model.price("put", 222.10, 220, years, 0.001, 0.0, itm.volatility)
    _, fraction = calibration.at(option_model.moneyness(220, 222.10, years), 1)
    assert itm.half_spread == (Decimal(put) * Decimal(fraction) + stock_half_spread).quantize(Decimal("0.0001"))
    assert itm.bid <= itm.value <= itm.ask
    # Deep in the money a fraction of the premium would quote 170 calls at 35.70 / 71.50 around
    # an intrinsic 53.60; the twin (a worthless put) leaves the stock's width and the grid.
    deep = option_model.model_quote(
        parse_symbol("AMZN120622C00170000"), Decimal("223.60"), years, 0.001, 0.0, calibration, stock_half_spread
    )
    assert (deep.bid, deep.ask) == (Decimal("53.50"), Decimal("53.70"))


def test_a_looped_recording_never_plays_an_expired_contracts_quotes():
    from services.marketdata.recording import BUNDLED_OPTION_QUOTES, load_recording
    from services.marketdata.timeline import ReplayTimeline

    timeline = ReplayTimeline(load_recording(BUNDLED_OPTION_QUOTES), xnys(), loop=True)
    weekly = "VIXW210428P00017000"  # AM-settled: trading stops at the 2021-04-27 close
    tuesday = list(timeline.between(utc_ns(2021, 4, 27), utc_ns(2021, 4, 28), {weekly, "A"}))
    assert {t.symbol for t in tuesday} == {weekly, "A"}
    assert max(t.quote_at_ns for t in tuesday if t.symbol == weekly) < utc_ns(2021, 4, 27, 20)
    wednesday = list(timeline.between(utc_ns(2021, 4, 28), utc_ns(2021, 4, 29), {weekly, "A"}))
    assert wednesday and {t.symbol for t in wednesday} == {"A"}
    assert timeline.latest(weekly, utc_ns(2021, 4, 29)).quote_at_ns < utc_ns(2021, 4, 27, 20)
