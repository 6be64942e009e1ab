"""Instruments every service speaks of: US equity tickers, OCC option symbols, and the
price grid each trades on (pure rules, shared by market data, orders, accounts, matcher).

An OCC symbol is the root (1-6 characters), the expiry as YYMMDD, C or P, and the strike
times 1000 in eight digits: ``AAPL250117C00150000`` is the AAPL call expiring 2025-01-17
with strike 150. The 21-character form pads the root with spaces
(``SPY   230914C00360000``); both are accepted and the compact form is canonical.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import Enum

from services.common.errors import invalid_argument

CENT = Decimal("0.01")
NICKEL = Decimal("0.05")
# The Penny Interval Program's always-penny classes: quoted in $0.01 at every price.
PENNY_AT_EVERY_PRICE = frozenset({"SPY", "QQQ", "IWM"})
PENNY_BELOW = Decimal(3)

EQUITY = "equity"
OPTION = "option"
CALL = "call"
PUT = "put"

_TICKER = re.compile(r"^[A-Z]{1,6}(\.[A-Z]{1,2})?$")
_OCC = re.compile(r"^([A-Z][A-Z0-9]{0,5}) *(\d{2})(\d{2})(\d{2})([CP])(\d{8})$")
MAX_SYMBOL_LENGTH = 32


class Settlement(str, Enum):
    """What exercise delivers: 100 shares per contract (equity and ETF options) or the
    intrinsic value in cash (index options such as SPX, XSP, VIX)."""

    PHYSICAL = "physical"
    CASH = "cash"


class ExerciseStyle(str, Enum):
    AMERICAN = "american"   # exercisable on any business day up to expiry
    EUROPEAN = "european"   # only at expiry (most index options)


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str
    asset_class: str
    underlying: str
    expiration: date | None = None
    option_type: str | None = None
    strike: Decimal | None = None

    @property
    def is_option(self) -> bool:
        return self.asset_class == OPTION

    @property
    def multiplier(self) -> Decimal:
        return Decimal(100) if self.is_option else Decimal(1)


def occ_symbol(underlying: str, expiration: date, option_type: str, strike: Decimal) -> str:
    return (f"{underlying}{expiration:%y%m%d}{'C' if option_type == CALL else 'P'}"
            f"{int(strike * 1000):08d}")


def parse_symbol(raw: str, field: str = "symbol") -> SymbolSpec:
    """The validated symbol, or ``invalid_argument`` naming ``field`` and saying why."""
    if not raw or not raw.strip():
        raise invalid_argument(f"{field} is required", field)
    if len(raw) > MAX_SYMBOL_LENGTH:
        raise invalid_argument(f"{field} is too long to be a ticker or an OCC option symbol", field)
    text = raw.strip().upper()
    if _TICKER.match(text):
        return SymbolSpec(text, EQUITY, text)
    occ = _OCC.match(text)
    if occ is None:
        raise invalid_argument(f"{field} {raw!r} is neither a ticker (e.g. AAPL, BRK.B) nor an OCC option symbol "
                               f"(e.g. AAPL250117C00150000)", field)
    root, yy, mm, dd, kind, strike_digits = occ.groups()
    try:
        expiration = date(2000 + int(yy), int(mm), int(dd))
    except ValueError:
        raise invalid_argument(f"{field} {raw!r} has an impossible expiry date {yy}{mm}{dd} (YYMMDD)", field) from None
    strike = Decimal(int(strike_digits)) / 1000
    if strike <= 0:
        raise invalid_argument(f"{field} {raw!r} has a zero strike", field)
    option_type = CALL if kind == "C" else PUT
    return SymbolSpec(occ_symbol(root, expiration, option_type, strike), OPTION, root, expiration, option_type,
                      strike)


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


# Complex (multi-leg) orders: the net price is in $0.01 at every price, and each leg may
# execute in $0.01 whatever its own class's increment (Cboe Options Exchange Rules 5.4(b)).
COMPLEX_TICK = CENT


def on_complex_grid(net: Decimal) -> bool:
    """Whether a multi-leg net price (per spread, either sign) is a whole number of cents."""
    return net % COMPLEX_TICK == 0
