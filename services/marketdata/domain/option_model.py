"""The option quote model (pure): Black-Scholes-Merton prices and greeks from QuantLib,
and the quote rule that turns a model value into a bid and an ask.

Pricing is QuantLib's ``BlackCalculator`` on the forward ``S·e^((r−q)T)`` with discount
``e^(−rT)`` and standard deviation ``σ·√T``: the Black-Scholes-Merton value of a European
option on a stock with a continuous dividend yield ``q``. Equity options are American; for
calls on a stock paying no dividend (AMZN, GOOG in 2012) the values coincide, and for puts
the early-exercise premium over weeks to months is small: the model ignores it (documented).

Quote rule (``model_quote``): the volatility and the relative half-spread come from the
calibration at the contract's moneyness ``ln(K/S)/√T`` and days to expiry. An out-of-the-money
contract's half-spread is that fraction of its model value. An in-the-money contract's is its
out-of-the-money twin's (the other right at the same strike) plus the underlying's
half-spread: by put-call parity the in-the-money option is its twin plus the stock, which is
how market makers quote it, so its width in dollars is the twin's and the stock's, not a
fraction of its intrinsic value (the calibration is fitted on the out-of-the-money side only;
a fraction of a deep in-the-money premium would put the bid far below intrinsic value). The
bid is the model value minus the half-spread rounded down onto the option price grid, the
ask the value plus the half-spread rounded up (so bid <= value <= ask always), at least one
tick apart; a bid that rounds to 0 is no bid (the quote is then ``empty``, as real deep
out-of-the-money quotes are).

Money is Decimal: QuantLib computes in floating point; its value is quantized to 4 places
before the spread is applied, and every price leaves on the option grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import QuantLib as ql

from services.common.instruments import CALL, PUT, SymbolSpec, option_tick, to_option_grid
from services.marketdata.domain.calibration import DAYS_PER_YEAR, Calibration
from services.marketdata.domain.ticks import Tick

MODEL_NAME = "black_scholes_merton"
# Underlyings whose options price off a forward MBT has no data for (VIX options off VIX
# futures, not the spot index): no implied volatility or greeks rather than wrong ones.
FORWARD_PRICED = frozenset({"^VIX"})
PLACES = Decimal("0.0001")
GAMMA_PLACES = Decimal("0.000001")
YEAR_PLACES = Decimal("0.00000001")


@dataclass(frozen=True)
class Greeks:
    """Per share: delta per $1, gamma per $1, theta per calendar day, vega per volatility
    point (1%); implied volatility annualised."""

    delta: Decimal
    gamma: Decimal
    theta: Decimal
    vega: Decimal
    implied_volatility: Decimal


@dataclass(frozen=True)
class ModelInputs:
    """What a model quote was computed from (see the Quote.model message)."""

    underlying_symbol: str
    underlying_sequence: int
    underlying_price: Decimal
    volatility: Decimal
    risk_free_rate: Decimal
    dividend_yield: Decimal
    time_to_expiry: Decimal
    model_price: Decimal
    half_spread: Decimal
    model: str = MODEL_NAME


@dataclass(frozen=True)
class ModelQuote:
    bid: Decimal
    ask: Decimal
    volatility: float
    value: Decimal
    half_spread: Decimal


def _calculator(
    option_type: str, spot: float, strike: float, years: float, rate: float, dividend_yield: float, volatility: float
) -> ql.BlackCalculator:
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if option_type == CALL else ql.Option.Put, strike)
    forward = spot * math.exp((rate - dividend_yield) * years)
    return ql.BlackCalculator(payoff, forward, volatility * math.sqrt(years), math.exp(-rate * years))


def price(
    option_type: str, spot: float, strike: float, years: float, rate: float, dividend_yield: float, volatility: float
) -> float:
    """The Black-Scholes-Merton value per share (``years`` > 0, ``volatility`` > 0)."""
    return float(_calculator(option_type, spot, strike, years, rate, dividend_yield, volatility).value())


def greeks(
    option_type: str, spot: float, strike: float, years: float, rate: float, dividend_yield: float, volatility: float
) -> Greeks:
    """Black-Scholes-Merton greeks at ``volatility`` (``Greeks`` says the units)."""
    calculator = _calculator(option_type, spot, strike, years, rate, dividend_yield, volatility)
    return Greeks(
        Decimal(calculator.delta(spot)).quantize(PLACES),
        Decimal(calculator.gamma(spot)).quantize(GAMMA_PLACES),
        Decimal(calculator.thetaPerDay(spot, years)).quantize(PLACES),
        Decimal(calculator.vega(years) / 100).quantize(PLACES),
        Decimal(volatility).quantize(PLACES),
    )


def implied_volatility(
    option_type: str, premium: float, spot: float, strike: float, years: float, rate: float, dividend_yield: float
) -> float | None:
    """The volatility at which the model value is ``premium``; None when none does (a premium
    at or below the discounted intrinsic value, or no time left)."""
    if years <= 0 or premium <= 0:
        return None
    payoff_type = ql.Option.Call if option_type == CALL else ql.Option.Put
    forward = spot * math.exp((rate - dividend_yield) * years)
    try:
        deviation = ql.blackFormulaImpliedStdDev(payoff_type, strike, forward, premium, math.exp(-rate * years))
    except RuntimeError:
        return None
    volatility = deviation / math.sqrt(years)
    return volatility if volatility > 0 else None


def _option_terms(spec: SymbolSpec) -> tuple[str, Decimal]:
    """An option contract's type and strike; ValueError for a spec of no option."""
    if spec.option_type is None or spec.strike is None:
        raise ValueError(f"{spec.symbol} is not an option contract")
    return spec.option_type, spec.strike


def moneyness(strike: float, spot: float, years: float) -> float:
    return math.log(strike / spot) / math.sqrt(years)


def model_quote(
    spec: SymbolSpec,
    spot: Decimal,
    years: float,
    rate: float,
    dividend_yield: float,
    calibration: Calibration,
    underlying_half_spread: Decimal = Decimal(0),
) -> ModelQuote:
    """The model's bid and ask of option ``spec`` with the underlying at ``spot`` (its mid,
    dollars per share, ``underlying_half_spread`` half its bid-ask width) and ``years``
    (> 0) to the close of its last trading day (the module docstring gives the rule)."""
    option_type, contract_strike = _option_terms(spec)
    strike = float(contract_strike)
    days = max(1, math.ceil(years * DAYS_PER_YEAR))
    volatility, half_spread_fraction = calibration.at(moneyness(strike, float(spot), years), days)
    value = Decimal(price(option_type, float(spot), strike, years, rate, dividend_yield, volatility)).quantize(PLACES)
    in_the_money = (spot > contract_strike) if option_type == CALL else (spot < contract_strike)
    if in_the_money:
        twin = PUT if option_type == CALL else CALL
        twin_value = Decimal(price(twin, float(spot), strike, years, rate, dividend_yield, volatility))
        half_spread = (twin_value * Decimal(half_spread_fraction) + underlying_half_spread).quantize(PLACES)
    else:
        half_spread = (value * Decimal(half_spread_fraction)).quantize(PLACES)
    bid = to_option_grid(value - half_spread, spec.root, up=False)
    ask = to_option_grid(value + half_spread, spec.root, up=True)
    if ask <= bid:
        ask = bid + option_tick(bid, spec.root)
    return ModelQuote(bid, ask, volatility, value, half_spread)


def years_between(from_ns: int, to_ns: int) -> float:
    """ACT/365 years from one instant to another."""
    return (to_ns - from_ns) / (DAYS_PER_YEAR * 86_400 * 1_000_000_000)


def inputs(
    spec: SymbolSpec,
    underlying_sequence: int,
    spot: Decimal,
    years: float,
    rate: Decimal,
    dividend_yield: Decimal,
    quote: ModelQuote,
) -> ModelInputs:
    return ModelInputs(
        spec.underlying,
        underlying_sequence,
        spot,
        Decimal(quote.volatility).quantize(PLACES),
        rate,
        dividend_yield,
        Decimal(years).quantize(YEAR_PLACES),
        quote.value,
        quote.half_spread,
    )


def quote_greeks(
    spec: SymbolSpec,
    tick: Tick | None,
    underlying: Tick | None,
    last_trade_ns: int,
    rate: Decimal,
    dividend_yield: Decimal,
) -> Greeks | None:
    """A contract's greeks: at the model's inputs for a model quote (also one that rounds to
    no bid: the model's value is defined there), else at the volatility implied by the
    quote's mid against the underlying's mid (or index level) at the quote's time to expiry.
    None without a quote, for a recorded quote without a usable mid and underlying, for
    ``FORWARD_PRICED`` underlyings, or when no volatility solves the mid."""
    if tick is None or spec.underlying in FORWARD_PRICED:
        return None
    option_type, strike = _option_terms(spec)
    if tick.model is not None:
        inputs = tick.model
        return greeks(
            option_type,
            float(inputs.underlying_price),
            float(strike),
            float(inputs.time_to_expiry),
            float(inputs.risk_free_rate),
            float(inputs.dividend_yield),
            float(inputs.volatility),
        )
    spot = None if underlying is None else underlying.mid
    premium = tick.mid
    years = years_between(tick.quote_at_ns, last_trade_ns)
    if spot is None or premium is None or years <= 0:
        return None
    volatility = implied_volatility(
        option_type, float(premium), float(spot), float(strike), years, float(rate), float(dividend_yield)
    )
    if volatility is None:
        return None
    return greeks(option_type, float(spot), float(strike), years, float(rate), float(dividend_yield), volatility)
