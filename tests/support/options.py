"""Builders for option contracts, legs and holdings in the options rule tests."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from services.common.instruments import CALL, PUT, SymbolSpec, parse_symbol
from services.common.spreads import LegQuote, OptionLeg
from services.common.trading import Side

EXPIRY = date(2025, 1, 17)
LATER = date(2025, 2, 21)
BUY, SELL = Side.BUY, Side.SELL


def contract(kind: str, strike: str | int, underlying: str = "XYZ", expiry: date = EXPIRY) -> SymbolSpec:
    """An OCC contract through the same parser orders use (``call``/``put`` below)."""
    letter = "C" if kind == CALL else "P"
    return parse_symbol(f"{underlying}{expiry:%y%m%d}{letter}{int(Decimal(strike) * 1000):08d}")


def call(strike: str | int, underlying: str = "XYZ", expiry: date = EXPIRY) -> SymbolSpec:
    return contract(CALL, strike, underlying, expiry)


def put(strike: str | int, underlying: str = "XYZ", expiry: date = EXPIRY) -> SymbolSpec:
    return contract(PUT, strike, underlying, expiry)


def leg(side: Side, spec: SymbolSpec, ratio: int = 1) -> OptionLeg:
    return OptionLeg(spec, side, ratio)


def quote(side: Side, bid: str, ask: str, ratio: int = 1) -> LegQuote:
    return LegQuote(side, ratio, Decimal(bid), Decimal(ask))
