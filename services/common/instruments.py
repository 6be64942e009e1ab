"""Instruments every service speaks of: US equity tickers, OCC option symbols, and the
price grid each trades on (pure rules, shared by market data, orders, accounts, matcher).

An OCC symbol is the root (1-6 characters), the expiry as YYMMDD, C or P, and the strike
times 1000 in eight digits: ``AAPL250117C00150000`` is the AAPL call expiring 2025-01-17
with strike 150. The 21-character form pads the root with spaces
(``SPY   230914C00360000``); both are accepted and the compact form is canonical.

An index is named with Cboe's caret (``^VIX``, ``^SPX``): its level prices models and
cash settlement, never a trade. Options on an index are listed under their own roots
(``SPXW``, ``VIXW``); ``INDEX_OPTION_ROOTS`` maps each to its index and settlement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from services.common.errors import invalid_argument

CENT = Decimal("0.01")
NICKEL = Decimal("0.05")
# The Penny Interval Program's always-penny classes: quoted in $0.01 at every price.
PENNY_AT_EVERY_PRICE = frozenset({"SPY", "QQQ", "IWM"})
PENNY_BELOW = Decimal(3)

EQUITY = "equity"
OPTION = "option"
INDEX = "index"
CALL = "call"
PUT = "put"
# When a cash-settled option's settlement value is taken: AM, the index's opening value on
# the expiration date (trading stopped at the previous session's close); PM, its closing
# value on the last trading day (which is the expiration date).
AM = "am"
PM = "pm"

# Cboe-listed index option roots: (the index, when its settlement value is taken). Sources:
# Cboe product specifications — SPX (AM, third Friday), SPXW (PM weeklies/EOM), XSP (PM),
# VIX and VIXW (AM, the Special Opening Quotation on the expiration Wednesday), NDX (AM),
# NDXP (PM), RUT (AM), RUTW (PM). All European-style and cash-settled.
INDEX_OPTION_ROOTS: dict[str, tuple[str, str]] = {
    "SPX": ("^SPX", AM),
    "SPXW": ("^SPX", PM),
    "XSP": ("^XSP", PM),
    "VIX": ("^VIX", AM),
    "VIXW": ("^VIX", AM),
    "NDX": ("^NDX", AM),
    "NDXP": ("^NDX", PM),
    "RUT": ("^RUT", AM),
    "RUTW": ("^RUT", PM),
}

_TICKER = re.compile(r"^[A-Z]{1,6}(\.[A-Z]{1,2})?$")
_INDEX = re.compile(r"^\^[A-Z]{1,6}$")
_OCC = re.compile(r"^([A-Z][A-Z0-9]{0,5}) *(\d{2})(\d{2})(\d{2})([CP])(\d{8})$")
MAX_SYMBOL_LENGTH = 32


class Settlement(StrEnum):
    """What exercise delivers: 100 shares per contract (equity and ETF options) or the
    intrinsic value in cash (index options such as SPX, XSP, VIX)."""

    PHYSICAL = "physical"
    CASH = "cash"


class ExerciseStyle(StrEnum):
    AMERICAN = "american"  # exercisable on any business day up to expiry
    EUROPEAN = "european"  # only at expiry (most index options)


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str
    asset_class: str
    underlying: str
    expiration: date | None = None
    option_type: str | None = None
    strike: Decimal | None = None
    # The OCC root (option class) of an option: the underlying for equity options, its own
    # name for index options (SPXW on ^SPX).
    root: str = ""

    @property
    def is_option(self) -> bool:
        return self.asset_class == OPTION

    @property
    def is_index(self) -> bool:
        return self.asset_class == INDEX

    @property
    def multiplier(self) -> Decimal:
        return Decimal(100) if self.is_option else Decimal(1)


@dataclass(frozen=True)
class ContractTerms:
    """How an option is exercised and settled: ``exercise_style`` american or european,
    ``settlement_type`` physical (100 shares per contract at the strike) or cash (the
    intrinsic value x 100 against the index's settlement value), and for cash settlement
    ``settlement_time`` am or pm (empty for physical)."""

    exercise_style: ExerciseStyle
    settlement_type: Settlement
    settlement_time: str = ""


def contract_terms(spec: SymbolSpec) -> ContractTerms:
    """Equity and ETF options are American and physically settled; index options
    (``INDEX_OPTION_ROOTS``) European and cash-settled, AM or PM (OCC and Cboe product
    specifications)."""
    index = INDEX_OPTION_ROOTS.get(spec.root)
    if index is None:
        return ContractTerms(ExerciseStyle.AMERICAN, Settlement.PHYSICAL)
    return ContractTerms(ExerciseStyle.EUROPEAN, Settlement.CASH, index[1])


def occ_symbol(underlying: str, expiration: date, option_type: str, strike: Decimal) -> str:
    """The compact OCC symbol; ``underlying`` is the option's root (``SPXW`` for ^SPX weeklies)."""
    return f"{underlying}{expiration:%y%m%d}{'C' if option_type == CALL else 'P'}{int(strike * 1000):08d}"


def is_option_symbol(symbol: str) -> bool:
    """Whether ``symbol`` is an OCC option symbol (padded or compact); no other check."""
    return _OCC.match(symbol.strip().upper()) is not None


def parse_symbol(raw: str, field: str = "symbol") -> SymbolSpec:
    """The validated symbol, or ``invalid_argument`` naming ``field`` and saying why."""
    if not raw or not raw.strip():
        raise invalid_argument(f"{field} is required", field)
    if len(raw) > MAX_SYMBOL_LENGTH:
        raise invalid_argument(f"{field} is too long to be a ticker or an OCC option symbol", field)
    text = raw.strip().upper()
    if _TICKER.match(text):
        return SymbolSpec(text, EQUITY, text)
    if _INDEX.match(text):
        return SymbolSpec(text, INDEX, text)
    occ = _OCC.match(text)
    if occ is None:
        raise invalid_argument(
            f"{field} {raw!r} is neither a ticker (e.g. AAPL, BRK.B), an OCC option symbol "
            f"(e.g. AAPL250117C00150000) nor an index (e.g. ^VIX)",
            field,
        )
    root, yy, mm, dd, kind, strike_digits = occ.groups()
    try:
        expiration = date(2000 + int(yy), int(mm), int(dd))
    except ValueError:
        raise invalid_argument(f"{field} {raw!r} has an impossible expiry date {yy}{mm}{dd} (YYMMDD)", field) from None
    strike = Decimal(int(strike_digits)) / 1000
    if strike <= 0:
        raise invalid_argument(f"{field} {raw!r} has a zero strike", field)
    option_type = CALL if kind == "C" else PUT
    underlying = INDEX_OPTION_ROOTS[root][0] if root in INDEX_OPTION_ROOTS else root
    return SymbolSpec(
        occ_symbol(root, expiration, option_type, strike), OPTION, underlying, expiration, option_type, strike, root
    )


def parse_symbols(raws, field: str = "symbols", *, limit: int = 100) -> list[SymbolSpec]:
    """Several symbols, at least one and at most ``limit``, duplicates removed in order."""
    if not raws:
        raise invalid_argument(f"{field} needs at least one symbol", field)
    if len(raws) > limit:
        raise invalid_argument(f"{field} takes at most {limit} symbols", field)
    specs: dict[str, SymbolSpec] = {}
    for index, raw in enumerate(raws):
        spec = parse_symbol(raw, f"{field}[{index}]")
        specs.setdefault(spec.symbol, spec)
    return list(specs.values())


def option_tick(price: Decimal, underlying: str) -> Decimal:
    """The minimum price increment of an option premium (dollars per share): the Penny
    Interval Program's $0.01 below $3.00 and $0.05 from $3.00, $0.01 at every price for SPY,
    QQQ and IWM (Cboe Options Exchange Rules 5.4; OCC/Options Clearing member circulars)."""
    if underlying in PENNY_AT_EVERY_PRICE or price < PENNY_BELOW:
        return CENT
    return NICKEL


def on_option_grid(price: Decimal, underlying: str) -> bool:
    """Whether ``price`` (a non-negative premium per share) is a whole number of ticks."""
    return price >= 0 and price % option_tick(price, underlying) == 0


def to_option_grid(price: Decimal, underlying: str, *, up: bool) -> Decimal:
    """``price`` rounded onto the option price grid (``option_tick``), up or down: an ask
    is rounded up and a bid down, so the quote still brackets the price. Never below 0."""
    if price <= 0:
        return Decimal(0)
    tick = option_tick(price, underlying)
    return (price / tick).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR) * tick


# Complex (multi-leg) orders: the net price is in $0.01 at every price, and each leg may
# execute in $0.01 whatever its own class's increment (Cboe Options Exchange Rules 5.4(b)).
COMPLEX_TICK = CENT


def on_complex_grid(net: Decimal) -> bool:
    """Whether a multi-leg net price (per spread, either sign) is a whole number of cents."""
    return net % COMPLEX_TICK == 0
