"""The rules an account applies: starting cash by profile, positions under fills (average
entry, realized P&L), marks and valuation, buying power (cash; Reg T for margin), the hold an
order version needs and the ledger's own checks. No I/O; prices are passed in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from services.common.errors import DomainError, invalid_argument
from services.common.instruments import CENT, parse_symbol
from services.common.trading import AssetClass, FillPreference, Side


class AccountType(StrEnum):
    CASH = "cash"
    MARGIN = "margin"


class Profile(StrEnum):
    TRIAL = "trial"
    INCOME_BUILDER = "income_builder"
    DIVERSIFIER = "diversifier"


class Tier(StrEnum):
    FREE = "free"
    PRO = "pro"
    PRO_PLUS = "pro_plus"


# How a multi-leg order is priced when it does not say (issue 11): the Trial profile takes
# the natural, Income Builder the net mid, Diversifier the mid and fills on touch.
DEFAULT_FILL_PREFERENCE = {
    Profile.TRIAL: FillPreference.CONSERVATIVE,
    Profile.INCOME_BUILDER: FillPreference.MID,
    Profile.DIVERSIFIER: FillPreference.AGGRESSIVE,
}

STARTING_CASH = {
    Profile.TRIAL: Decimal("10000.00"),
    Profile.INCOME_BUILDER: Decimal("50000.00"),
    Profile.DIVERSIFIER: Decimal("100000.00"),
}
DEFAULT_PROFILE = Profile.DIVERSIFIER
# The most starting cash a user may choose, by tier (README "Accounts").
STARTING_CASH_CAP = {
    Tier.FREE: Decimal("100000.00"),
    Tier.PRO: Decimal("1000000.00"),
    Tier.PRO_PLUS: Decimal("10000000.00"),
}


def check_starting_cash(amount: Decimal, tier: Tier) -> Decimal:
    """``amount`` (USD) as a starting cash the ``tier`` allows: above zero, whole cents, at
    most ``STARTING_CASH_CAP[tier]``; ``invalid_argument`` on ``starting_cash`` otherwise.
    Returns it with two places."""
    cap = STARTING_CASH_CAP[tier]
    if amount <= 0:
        raise invalid_argument("starting_cash must be above zero", "starting_cash")
    if amount != amount.quantize(CENT):
        raise invalid_argument("starting_cash must be whole cents", "starting_cash")
    if amount > cap:
        raise invalid_argument(
            f"starting_cash {amount:f} is above the {tier.value} tier's cap of {cap:f}", "starting_cash"
        )
    return amount.quantize(CENT)


REG_T_INITIAL = Decimal("0.5")
PRICE_PLACES = Decimal("0.0000000001")


@dataclass(frozen=True)
class Mark:
    """A quote a position is valued at: the usable bid and ask (None when the quote is
    crossed, locked or empty) and its time."""

    bid: Decimal | None
    ask: Decimal | None
    quote_at: datetime | None


def contract_multiplier(symbol: str) -> Decimal:
    """Shares per unit of ``symbol``: 100 for an OCC option contract (positions count
    contracts, prices are per share), 1 for a share (OCC, "Characteristics and Risks of
    Standardized Options")."""
    return parse_symbol(symbol).multiplier


def asset_class_of(symbol: str) -> AssetClass:
    return AssetClass.US_OPTION if parse_symbol(symbol).is_option else AssetClass.US_EQUITY


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
    position: Position  # after the fill (qty 0 when it closed)
    realized_pl: Decimal  # realized by this fill
    closed: bool  # the position went to zero
    reopened: bool  # it crossed zero: the old one closed, a new one opened


def apply_fill(
    position: Position | None, symbol: str, side: Side, qty: Decimal, price: Decimal, multiplier: Decimal
) -> FillEffect:
    """Cash and position after one fill. Increases average in; reductions realize P&L
    against the average entry; a fill that crosses zero closes and reopens."""
    signed = qty if side is Side.BUY else -qty
    cash_delta = -signed * price * multiplier
    current = position or Position(symbol, Decimal(0), Decimal(0), multiplier)
    if current.qty == 0 or (current.qty > 0) == (signed > 0):
        new_qty = current.qty + signed
        average = ((abs(current.qty) * current.avg_entry_price + qty * price) / abs(new_qty)).quantize(PRICE_PLACES)
        return FillEffect(
            cash_delta,
            Position(symbol, new_qty, average.normalize(), multiplier, current.realized_pl),
            Decimal(0),
            False,
            False,
        )
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
    """Cash, the market values of the long (>= 0) and short (<= 0) positions, of which the
    option positions' (``option_long_market_value``, ``option_short_market_value``; each
    qty x mark x 100), and what holds take. USD."""

    cash: Decimal
    long_market_value: Decimal
    short_market_value: Decimal
    held: Decimal
    option_long_market_value: Decimal = Decimal(0)
    option_short_market_value: Decimal = Decimal(0)

    @property
    def equity(self) -> Decimal:
        return self.cash + self.long_market_value + self.short_market_value


def excess(account_type: AccountType, valuation: Valuation) -> Decimal:
    """What new holds may still take: cash for a cash account; for margin, the equity of the
    cash and stock less the Reg T initial requirement of the stock (50% of its long and
    short value). Holds already taken are subtracted.

    Options are not marginable: in a margin account they count exactly as in a cash
    account. A long option has no loan value (its premium is paid in full: Cboe, "Margin
    Manual", long puts and calls; FINRA Rule 4210(f)(2)), so its market value is not equity
    margin can lend against; a short option's worst case at expiry is the requirement R
    held in cash (``options.book_requirement``: strike x 100 for a cash-secured put, the
    width x 100 for a credit spread) or the shares it locks, with its premium in cash, so its
    liability is not counted a second time. R is at least Reg T's own requirement for a
    short put (premium + 20% of the underlying less the out-of-the-money amount, at least
    10% of the strike: never above the strike) and equals it for a spread (the width)."""
    if account_type is AccountType.CASH:
        return valuation.cash - valuation.held
    stock_long = valuation.long_market_value - valuation.option_long_market_value
    stock_short = valuation.short_market_value - valuation.option_short_market_value
    requirement = REG_T_INITIAL * (stock_long - stock_short)
    return valuation.cash + stock_long + stock_short - requirement - valuation.held


def buying_power(account_type: AccountType, valuation: Valuation) -> Decimal:
    """In dollars of stock a new order may buy (Reg T: twice the margin excess)."""
    room = max(Decimal(0), excess(account_type, valuation))
    return room if account_type is AccountType.CASH else room / REG_T_INITIAL


def options_buying_power(account_type: AccountType, valuation: Valuation) -> Decimal:
    """In dollars an option order may hold (its requirement R plus any debit), in every
    account type: the excess itself, as options are not marginable (``excess``)."""
    return max(Decimal(0), excess(account_type, valuation))


@dataclass(frozen=True)
class HoldLeg:
    """One leg of a multi-leg option order: ``ratio`` contracts of ``symbol`` per spread."""

    symbol: str
    side: Side
    ratio: int


@dataclass(frozen=True)
class HoldTerms:
    """The terms of one order version, as far as buying power is concerned. A hold is bound
    to them: the same (order id, version) sent again with other terms is refused. A
    multi-leg order has ``legs``, no symbol, ``qty`` spreads and ``price_bound`` its worst
    net per spread (positive a debit, negative a credit)."""

    symbol: str
    side: Side
    qty: Decimal
    price_bound: Decimal  # limit, collar or reference: the worst price the order may fill at
    multiplier: Decimal
    legs: tuple[HoldLeg, ...] = ()
    # The exits of one bracket or oco order share it: they close the same position, so they
    # hold once for the pair, the larger of the two (``exit_group_key``).
    exit_group: str = ""


def exit_group_key(order_id: str, versions: Iterable[VersionHold]) -> str:
    """The key an order's holds count under: its exit group when it has one (the exits of
    one bracket or oco hold as one order whose versions they are: the larger counts, as
    ``effective_hold`` counts a pending replace), else its own id."""
    return next((h.terms.exit_group for h in versions if h.terms is not None and h.terms.exit_group), order_id)


@dataclass(frozen=True)
class Hold:
    amount: Decimal  # cash / margin held
    qty: Decimal  # shares held so they cannot be sold twice


NO_HOLD = Hold(Decimal(0), Decimal(0))

# Why a version's hold stopped holding. The first three end the order: nothing of it may be
# held again. A superseded version was replaced by a newer one; an abandoned one was a
# replace that never took effect.
ENDED_REASONS = frozenset({"filled", "canceled", "expired"})
SUPERSEDED = "superseded"
ABANDONED = "abandoned"


@dataclass(frozen=True)
class VersionHold:
    """What one version of an order holds, and the terms it was priced for (None for a hold
    taken before holds recorded their terms: it still covers what its amount pays for)."""

    version: int
    terms: HoldTerms | None
    hold: Hold
    active: bool
    release_reason: str = ""
    symbol: str = ""


def effective_hold(holds: Iterable[VersionHold]) -> Hold:
    """What an order holds: while a replace is pending, its committed and its pending
    version are both held, the larger of the two — either may still fill, never both."""
    active = [h.hold for h in holds if h.active]
    return Hold(max((h.amount for h in active), default=Decimal(0)), max((h.qty for h in active), default=Decimal(0)))


def holds_by_order(rows: Iterable[tuple[str, Hold]]) -> dict[str, Hold]:
    """Active version holds (order id, hold) summed per order as ``effective_hold`` does."""
    result: dict[str, Hold] = {}
    for order_id, hold in rows:
        seen = result.get(order_id, NO_HOLD)
        result[order_id] = Hold(max(seen.amount, hold.amount), max(seen.qty, hold.qty))
    return result


def check_reservable(order_id: str, version: int, terms: HoldTerms, holds: list[VersionHold]) -> VersionHold | None:
    """Whether (order id, version) may hold ``terms``; returns the existing hold when this is
    a repeat of the same request (idempotent), None when a new hold is to be taken.

    Raises IDEMPOTENCY_KEY_REUSED when the version already holds other terms,
    FAILED_PRECONDITION when the order ended or has moved past this version (a late or stale
    request)."""
    ended = next((h for h in holds if h.release_reason in ENDED_REASONS), None)
    if ended is not None:
        raise DomainError("FAILED_PRECONDITION", f"order {order_id} is {ended.release_reason}; nothing more to hold")
    same = next((h for h in holds if h.version == version), None)
    if same is not None:
        if same.terms is not None and same.terms != terms:
            raise DomainError(
                "IDEMPOTENCY_KEY_REUSED",
                f"version {version} of order {order_id} already holds buying power for other terms "
                f"({describe_terms(same.terms)}); a new version is needed for "
                f"{describe_terms(terms)}",
            )
        if not same.active:
            raise DomainError(
                "FAILED_PRECONDITION",
                f"version {version} of order {order_id} no longer holds buying power ({same.release_reason})",
            )
        return same
    if any(h.version > version for h in holds):
        raise DomainError("FAILED_PRECONDITION", f"order {order_id} already holds for a version after {version}")
    return None


def describe_terms(terms: HoldTerms) -> str:
    if terms.legs:
        legs = ", ".join(f"{leg.side.value} {leg.ratio} {leg.symbol}" for leg in terms.legs)
        return f"{terms.qty.normalize():f} spreads of ({legs}) at worst net {terms.price_bound.normalize():f}"
    return f"{terms.side.value} {terms.qty.normalize():f} {terms.symbol} at worst {terms.price_bound.normalize():f}"


@dataclass(frozen=True)
class FillTerms:
    """A fill as the ledger sees it; a fill id names exactly one."""

    order_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    multiplier: Decimal


def uncovered_reason(account_type: AccountType, hold: VersionHold | None, fill: FillTerms) -> str | None:
    """Why the order version's hold does not cover ``fill``, or None when it does.

    A fill whose multiplier is not its instrument's (``contract_multiplier``) is never
    covered: it would move cash by the wrong number of shares.

    Defence in depth at the point of truth (holds are bound to terms upstream, and orders
    checks fills against the order's limits): the hold must be active, for the same
    instrument and side, for at least the fill's quantity, and — for a buy — priced at or
    beyond the fill's price, so the cash it holds pays for the fill."""
    expected = contract_multiplier(fill.symbol)
    if fill.multiplier != expected:
        return f"the fill's multiplier is {fill.multiplier.normalize():f}; {fill.symbol} trades {expected:f} per unit"
    if hold is None or not hold.active:
        return "no active hold covers this order version"
    terms = hold.terms
    if terms is None:  # a hold without recorded terms: its amount must pay for the fill
        if (
            fill.side is Side.BUY
            and account_type is AccountType.CASH
            and fill.qty * fill.price * fill.multiplier > hold.hold.amount
        ):
            return "the fill costs more than the hold"
        return None
    if (terms.symbol, terms.side, terms.multiplier) != (fill.symbol, fill.side, fill.multiplier):
        return f"the hold is for {describe_terms(terms)}, not a {fill.side.value} of {fill.symbol}"
    if fill.qty > terms.qty:
        return f"the fill is for {fill.qty.normalize():f}, the hold for {terms.qty.normalize():f}"
    if fill.side is Side.BUY and fill.price > terms.price_bound:
        return f"the fill price {fill.price} is above the held worst price {terms.price_bound}"
    return None


def ledger_breach(
    account_type: AccountType, cash_after: Decimal, position_qty_after: Decimal, *, option: bool = False
) -> str | None:
    """A cash account never has negative cash nor a short stock position (DESIGN §7: the
    ledger refuses what would break it, whatever a caller upstream decided). A short option
    (``option``) is allowed: its hold secured it in cash or covered it with shares
    (``options.order_hold``)."""
    if account_type is not AccountType.CASH:
        return None
    if cash_after < 0:
        return f"cash would be {cash_after:.2f} in a cash account"
    if position_qty_after < 0 and not option:
        return f"the position would be short {-position_qty_after:f} in a cash account"
    return None


def hold_for(
    account_type: AccountType, order: HoldTerms, position_qty: Decimal, shares_held_for_sells: Decimal
) -> Hold:
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
        raise DomainError(
            "INSUFFICIENT_BUYING_POWER",
            f"a cash account cannot sell short: {free_shares.normalize():f} {order.symbol} free to sell, "
            f"the order sells {order.qty.normalize():f}",
            available_qty=format(free_shares.normalize(), "f"),
        )
    return Hold(amount=shorting * value_per_share * REG_T_INITIAL, qty=closing)


def check_fits(
    account_type: AccountType,
    valuation: Valuation,
    hold: Hold,
    released: Decimal = Decimal(0),
    *,
    option: bool = False,
) -> None:
    """Raises ``insufficient_buying_power`` when ``hold`` does not fit the excess.
    ``released`` is the amount this order already holds (a replace re-prices it). An
    ``option`` order's hold is its requirement plus debit in full, in every account type,
    and is told against the option buying power; a stock order's against the buying power
    (Reg T: twice its hold in a margin account)."""
    room = excess(account_type, valuation) + released
    if hold.amount > room:
        freed = replace(valuation, held=valuation.held - released)
        if option:
            cost, shown, what = hold.amount, options_buying_power(account_type, freed), "option buying power"
        else:
            cost = hold.amount if account_type is AccountType.CASH else hold.amount / REG_T_INITIAL
            shown, what = buying_power(account_type, freed), "buying power"
        raise DomainError(
            "INSUFFICIENT_BUYING_POWER",
            f"the order may cost up to ${cost:,.2f}; {what} is ${shown:,.2f}",
            buying_power=format(shown.quantize(Decimal("0.01")), "f"),
        )
