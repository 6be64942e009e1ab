"""Activities' pure rules: what activity an event makes and how it reads."""

from __future__ import annotations

from decimal import Decimal

from services.common.wire.conv import amount, on_price_grid, qty_str


def fill_description(side: str, qty: Decimal, symbol: str, price: Decimal) -> str:
    verb = "Bought" if side == "buy" else "Sold"
    return f"{verb} {qty_str(qty)} {symbol} at ${on_price_grid(price):,}"


def opening_description(starting_cash: Decimal) -> str:
    return f"Account opened with ${amount(starting_cash):,}"
