"""Accounts' pure rules: starting cash by profile, positions under fills (average entry,
realized P&L), buying power and the hold an order needs. No I/O; prices are passed in."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from services.common.errors import DomainError


class AccountType(str, Enum):
    CASH = "cash"
    MARGIN = "margin"


class Profile(str, Enum):
    TRIAL = "trial"
    INCOME_BUILDER = "income_builder"
    DIVERSIFIER = "diversifier"


class Tier(str, Enum):
    FREE = "free"
    PRO = "pro"
    PRO_PLUS = "pro_plus"


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"


STARTING_CASH = {Profile.TRIAL: Decimal("10000.00"), Profile.INCOME_BUILDER: Decimal("50000.00"),
                 Profile.DIVERSIFIER: Decimal("100000.00")}
DEFAULT_PROFILE = Profile.DIVERSIFIER
REG_T_INITIAL = Decimal("0.5")
PRICE_PLACES = Decimal("0.0000000001")


@dataclass(frozen=True)
class Position:
    """Signed quantity: negative when short."""

    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    multiplier: Decimal
    realized_pl: Decimal = Decimal(0)

    @property
    def is_open(self) -> bool:
        return self.qty != 0


@dataclass(frozen=True)
class FillEffect:
    cash_delta: Decimal
    position: Position      # after the fill (qty 0 when it closed)
    realized_pl: Decimal    # realized by this fill
    closed: bool            # the position went to zero
    reopened: bool          # it crossed zero: the old one closed, a new one opened


def apply_fill(position: Position | None, symbol: str, side: Side, qty: Decimal, price: Decimal,
               multiplier: Decimal) -> FillEffect:
    """Cash and position after one fill. Increases average in; reductions realize P&L
    against the average entry; a fill that crosses zero closes and reopens."""
    signed = qty if side is Side.BUY else -qty
    cash_delta = -signed * price * multiplier
    current = position or Position(symbol, Decimal(0), Decimal(0), multiplier)
    if current.qty == 0 or (current.qty > 0) == (signed > 0):
        new_qty = current.qty + signed
        average = ((abs(current.qty) * current.avg_entry_price + qty * price) / abs(new_qty)).quantize(PRICE_PLACES)
        return FillEffect(cash_delta, Position(symbol, new_qty, average.normalize(), multiplier, current.realized_pl),
                          Decimal(0), False, False)
    reduced = min(qty, abs(current.qty))
    direction = 1 if current.qty > 0 else -1
    realized = (price - current.avg_entry_price) * reduced * multiplier * direction
    remaining = current.qty + signed
    if remaining == 0:
        after = Position(symbol, Decimal(0), current.avg_entry_price, multiplier, current.realized_pl + realized)
        return FillEffect(cash_delta, after, realized, True, False)
    if (remaining > 0) == (current.qty > 0):
        after = Position(symbol, remaining, current.avg_entry_price, multiplier, current.realized_pl + realized)
        return FillEffect(cash_delta, after, realized, False, False)
    return FillEffect(cash_delta, Position(symbol, remaining, price, multiplier, Decimal(0)), realized, True, True)


def mark_price(position: Position, bid: Decimal | None, ask: Decimal | None) -> Decimal:
    """What closing would get: the bid for a long, the ask for a short; the entry price
    when there is no usable quote."""
    quote = bid if position.qty > 0 else ask
    return quote if quote is not None and quote > 0 else position.avg_entry_price


def market_value(position: Position, mark: Decimal) -> Decimal:
    return position.qty * mark * position.multiplier


def unrealized_pl(position: Position, mark: Decimal) -> Decimal:
    return (mark - position.avg_entry_price) * position.qty * position.multiplier


@dataclass(frozen=True)
class Valuation:
    cash: Decimal
    long_market_value: Decimal
    short_market_value: Decimal
    held: Decimal

    @property
    def equity(self) -> Decimal:
        return self.cash + self.long_market_value + self.short_market_value


def excess(account_type: AccountType, valuation: Valuation) -> Decimal:
    """What new holds may still take: cash for a cash account; for margin, equity less the
    Reg T initial requirement of the positions. Holds already taken are subtracted."""
    if account_type is AccountType.CASH:
        return valuation.cash - valuation.held
    requirement = REG_T_INITIAL * (valuation.long_market_value - valuation.short_market_value)
    return valuation.equity - requirement - valuation.held


def buying_power(account_type: AccountType, valuation: Valuation) -> Decimal:
    """In dollars of stock a new order may buy (Reg T: twice the margin excess)."""
    room = max(Decimal(0), excess(account_type, valuation))
    return room if account_type is AccountType.CASH else room / REG_T_INITIAL


@dataclass(frozen=True)
class OrderRequest:
    symbol: str
    side: Side
    qty: Decimal
    price_bound: Decimal      # limit, collar or reference: the worst price the order may fill at
    multiplier: Decimal


@dataclass(frozen=True)
class Hold:
    amount: Decimal   # cash / margin held
    qty: Decimal      # shares held so they cannot be sold twice


def hold_for(account_type: AccountType, order: OrderRequest, position_qty: Decimal,
             shares_held_for_sells: Decimal) -> Hold:
    """The hold an order needs, before checking it fits. Raises for what the account type forbids."""
    value_per_share = order.price_bound * order.multiplier
    if order.side is Side.BUY:
        covering = min(order.qty, max(Decimal(0), -position_qty))
        opening = order.qty - covering
        rate = Decimal(1) if account_type is AccountType.CASH else REG_T_INITIAL
        return Hold(amount=opening * value_per_share * rate, qty=Decimal(0))
    free_shares = max(Decimal(0), position_qty - shares_held_for_sells)
    closing = min(order.qty, free_shares)
    shorting = order.qty - closing
    if shorting and account_type is AccountType.CASH:
        raise DomainError("INSUFFICIENT_BUYING_POWER",
                          f"a cash account cannot sell short: {free_shares.normalize():f} {order.symbol} free to sell, "
                          f"the order sells {order.qty.normalize():f}",
                          available_qty=format(free_shares.normalize(), "f"))
    return Hold(amount=shorting * value_per_share * REG_T_INITIAL, qty=closing)


def check_fits(account_type: AccountType, valuation: Valuation, hold: Hold, released: Decimal = Decimal(0)) -> None:
    """``released`` is the amount this order already holds (a replace re-prices it)."""
    room = excess(account_type, valuation) + released
    if hold.amount > room:
        shown = buying_power(account_type, Valuation(valuation.cash, valuation.long_market_value,
                                                     valuation.short_market_value, valuation.held - released))
        cost = hold.amount if account_type is AccountType.CASH else hold.amount / REG_T_INITIAL
        raise DomainError("INSUFFICIENT_BUYING_POWER",
                          f"the order may cost up to ${cost:,.2f}; buying power is ${shown:,.2f}",
                          buying_power=format(shown.quantize(Decimal("0.01")), "f"))
