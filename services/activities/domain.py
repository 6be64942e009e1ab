"""Activities' pure rules: what activity an event makes and how it reads."""

from __future__ import annotations

from decimal import Decimal

from services.common.conv import decimal_str


def fill_description(side: str, qty: Decimal, symbol: str, price: Decimal) -> str:
    verb = "Bought" if side == "buy" else "Sold"
    return f"{verb} {decimal_str(qty)} {symbol} at ${price:,.2f}"


def opening_description(starting_cash: Decimal) -> str:
    return f"Account opened with ${starting_cash:,.2f}"
