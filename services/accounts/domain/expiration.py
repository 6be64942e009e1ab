"""Expiration, exercise and assignment of options (pure; DESIGN §7, issue 11 item 6).

At expiry each option position is judged on its underlying's settlement price, which the
caller passes in: the official regular-session closing price of the expiry day (an early
close's close on an early-close day; never an after-hours quote), or for AM-settled index
options (VIX, standard monthly SPX) the settlement value from the next session's opening.

- A contract at least $0.01 in the money is exercised (long) or assigned (short) unless
  the holder said do-not-exercise (OCC Rules, Rule 805, "exercise by exception"); a holder
  may also exercise one less in the money (a contrary instruction). An assigned short is
  assigned only when in the money: the other side's contrary instructions are not modelled.
- Physically settled: 100 shares per contract change hands at the strike — a long call
  buys them, a long put sells them, an assigned call delivers them (the shares its cover
  locked), an assigned put takes them (paid with the cash its requirement held).
- Cash-settled (index options): the intrinsic value × 100 per contract, paid to the long
  and by the short; no shares move.
- The rest expire worthless.

A cash account cannot end with negative cash nor short stock, so a long in-the-money
option it could not carry into stock (no cash for a call's shares, no shares for a put's)
is sold at the market a configured time before the close (``carry_action``; Alpaca starts
liquidating such positions in the last half hour, "Options Trading"); what is left at the
close is not exercised (``expire`` marks it do-not-exercise).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from services.accounts.domain.options import OptionHolding, requirement
from services.common.errors import DomainError
from services.common.ids import derived_id
from services.common.instruments import CALL, ExerciseStyle, Settlement, SymbolSpec
from services.common.trading import Side

ZERO = Decimal(0)
DO_NOT_EXERCISE_REASON = "do-not-exercise instruction"
CONTRACT = Decimal(100)  # shares per contract
EXERCISE_THRESHOLD = Decimal("0.01")  # OCC exercise by exception


class Outcome(StrEnum):
    """The ``expiration`` activity subtype each effect writes."""

    EXERCISED = "exercised"
    ASSIGNED = "assigned"
    CASH_SETTLED = "cash_settled"
    EXPIRED_WORTHLESS = "expired_worthless"


class Instruction(StrEnum):
    """A holder's instruction for a long position at expiry."""

    DO_NOT_EXERCISE = "do_not_exercise"
    EXERCISE = "exercise"  # even when less than $0.01 in the money


@dataclass(frozen=True)
class ExpiringPosition:
    contract: SymbolSpec
    qty: Decimal  # signed contracts: negative when short
    settlement: Settlement = Settlement.PHYSICAL
    instruction: Instruction | None = None


@dataclass(frozen=True)
class StockDelivery:
    """Shares of the underlying bought (``buy``) or sold by the account at the strike."""

    symbol: str
    side: Side
    qty: Decimal
    price: Decimal

    @property
    def signed_qty(self) -> Decimal:
        return self.qty if self.side is Side.BUY else -self.qty


@dataclass(frozen=True)
class ExpirationEffect:
    """What happens to ``qty`` contracts (signed, as the position held them)."""

    contract: SymbolSpec
    qty: Decimal
    outcome: Outcome
    settlement_price: Decimal | None  # None for an early exercise
    intrinsic: Decimal  # per share, never negative (0 when not known)
    stock: StockDelivery | None
    cash_delta: Decimal  # dollars: a stock purchase or cash settlement paid is negative
    reason: str
    # In the money and long, yet left unexercised: the cash account could not carry the stock.
    not_carried: bool = False


@dataclass(frozen=True)
class ExpirationRun:
    effects: tuple[ExpirationEffect, ...]
    cash_delta: Decimal  # dollars, all effects
    shares_delta: Mapping[str, Decimal]  # signed shares, by underlying
    # Why a cash account would still end short of cash or shares after every long that could
    # be left unexercised was: an assignment its holds did not cover. None when it fits.
    shortfall: str | None


def intrinsic_value(contract: SymbolSpec, price: Decimal) -> Decimal:
    """Per share: a call's price above the strike, a put's price below it, else 0."""
    strike = contract.strike or ZERO
    return max(ZERO, price - strike if contract.option_type == CALL else strike - price)


def expire(
    positions: Sequence[ExpiringPosition],
    settlement_prices: Mapping[str, Decimal],
    *,
    cash_account: bool,
    cash_free: Decimal,
    shares_free: Mapping[str, Decimal],
) -> ExpirationRun:
    """Decide every expiring position of one account at once: a spread's legs settle
    together, so a long call's exercise can pay for a short call's delivery.

    ``settlement_prices`` by underlying; ``cash_free`` the cash not held for anything but
    these positions (their requirement is spent here), ``shares_free`` the shares by
    underlying not promised elsewhere (the shares locked by expiring covered calls count: they
    are delivered). In a cash account, longs are left unexercised, least in the money first,
    while the cash or the shares would go below zero; ``shortfall`` says what still would."""
    effects = [_settle(position, settlement_prices) for position in positions if position.qty]
    if cash_account:
        effects = _carry(effects, cash_free, shares_free)
    shares: dict[str, Decimal] = defaultdict(Decimal)
    for effect in effects:
        if effect.stock is not None:
            shares[effect.stock.symbol] += effect.stock.signed_qty
    cash = sum((effect.cash_delta for effect in effects), ZERO)
    return ExpirationRun(
        tuple(effects), cash, dict(shares), _shortfall(cash_free + cash, shares, shares_free) if cash_account else None
    )


class CarryAction(StrEnum):
    WAIT = "wait"  # before the window, or no bid to sell into yet
    SELL_AT_MARKET = "sell_at_market"
    DO_NOT_EXERCISE = "do_not_exercise"  # the close came: leave it unexercised


def carry_action(now: datetime, close_at: datetime, sell_before: timedelta, has_bid: bool) -> CarryAction:
    """What to do, at ``now``, with long contracts ``uncarried`` reports for the session
    closing at ``close_at`` (early closes included): sell them at the market from
    ``sell_before`` the close while the option has a bid; at the close, do-not-exercise."""
    if now >= close_at:
        return CarryAction.DO_NOT_EXERCISE
    if now < close_at - sell_before or not has_bid:
        return CarryAction.WAIT
    return CarryAction.SELL_AT_MARKET


@dataclass(frozen=True)
class InstructionWindow:
    """When holders' instructions for the contracts expiring at one session are taken: on
    that session's date (market time), until ``cutoff_at`` — its close (an early close's,
    on an early-close day) plus ``MBT_DO_NOT_EXERCISE_CUTOFF_MINUTES`` (OCC Rule 805(d)(2):
    a contrary instruction for an expiring option by 5:30 pm ET, 90 minutes after a 4 pm
    close). The session's expiration run is due at the cutoff, so an instruction accepted
    is always applied."""

    session_date: date
    close_at: datetime
    cutoff_at: datetime


def check_instruction(
    contract: SymbolSpec, qty: Decimal, window: InstructionWindow, today: date, now: datetime
) -> None:
    """Raises ``DomainError("FAILED_PRECONDITION", …)`` unless a do-not-exercise instruction
    (given or withdrawn) for ``qty`` held contracts of ``contract`` (signed: negative when
    short) is taken at ``now``, market date ``today``: a long position, in a contract that
    expires at ``window``'s session, that session's date, before its cutoff. Nothing else is
    checked (the instruction stands for the whole position held at the close)."""
    if qty <= 0:
        raise DomainError(
            "FAILED_PRECONDITION",
            f"do-not-exercise is an instruction for a long position: {contract.symbol} is held "
            f"{qty.normalize():f} (an assignment is decided by the holder of the long side)",
        )
    if contract.expiration is None or today != window.session_date:
        raise DomainError(
            "FAILED_PRECONDITION",
            f"{contract.symbol} expires at the close of {window.session_date}: instructions are "
            f"taken on that day only (today is {today})",
        )
    if now >= window.cutoff_at:
        raise DomainError(
            "FAILED_PRECONDITION",
            f"the cutoff for instructions on {contract.symbol} was {window.cutoff_at.isoformat()} "
            f"({window.cutoff_at - window.close_at} after the close); it settles as it stands",
        )


def sale_client_order_id(session_date: date, symbol: str) -> str:
    """The ``client_order_id`` of the pre-close sale of ``symbol`` held by one account for the
    session ``session_date``: fixed by those terms, so a rerun of the sale answers the order
    already submitted (orders' idempotency per account and client_order_id)."""
    return f"mbt-carry-sale-{session_date.isoformat()}-{symbol}"


def uncarried(
    positions: Sequence[ExpiringPosition],
    underlying_prices: Mapping[str, Decimal],
    *,
    cash_free: Decimal,
    shares_free: Mapping[str, Decimal],
) -> dict[str, Decimal]:
    """Contracts, by option symbol, a cash account could not carry into stock if its
    underlyings settled at ``underlying_prices`` now: the ones ``expire`` would leave
    unexercised. They are what ``carry_action`` sells before the close."""
    run = expire(positions, underlying_prices, cash_account=True, cash_free=cash_free, shares_free=shares_free)
    left: dict[str, Decimal] = defaultdict(Decimal)
    for effect in run.effects:
        if effect.not_carried:
            left[effect.contract.symbol] += effect.qty
    return dict(left)


def early_exercise(
    position: ExpiringPosition,
    qty: Decimal,
    style: ExerciseStyle,
    as_of: date,
    *,
    cash_account: bool,
    cash_free: Decimal,
    shares_free: Decimal,
) -> ExpirationEffect:
    """The holder exercises ``qty`` long contracts before expiry (Alpaca: POST
    /v2/positions/{symbol}/exercise). American, physically settled options only; a cash
    account must carry the stock: cash for a call's shares, shares for a put's (else
    ``insufficient_buying_power``). Other refusals are ``failed_precondition``."""
    contract = position.contract
    if position.qty <= 0 or not ZERO < qty <= position.qty or qty != qty.to_integral_value():
        raise DomainError(
            "FAILED_PRECONDITION",
            f"exercise whole contracts of a long position: {contract.symbol} is held {position.qty.normalize():f}",
        )
    if style is not ExerciseStyle.AMERICAN or position.settlement is not Settlement.PHYSICAL:
        raise DomainError(
            "FAILED_PRECONDITION", f"{contract.symbol} can be exercised only at expiry (European-style or cash-settled)"
        )
    if contract.expiration is None or as_of > contract.expiration:
        raise DomainError("FAILED_PRECONDITION", f"{contract.symbol} has expired")
    effect = _physical(contract, qty, Outcome.EXERCISED, None, ZERO, "exercised early at the holder's request")
    stock = effect.stock
    assert stock is not None
    if cash_account and stock.side is Side.BUY and -effect.cash_delta > cash_free:
        raise DomainError(
            "INSUFFICIENT_BUYING_POWER",
            f"exercising costs ${-effect.cash_delta:,.2f} for {stock.qty:f} {stock.symbol}; ${cash_free:,.2f} is free",
        )
    if cash_account and stock.side is Side.SELL and stock.qty > shares_free:
        raise DomainError(
            "INSUFFICIENT_BUYING_POWER",
            f"exercising delivers {stock.qty:f} {stock.symbol} shares; {shares_free.normalize():f} are free",
        )
    return effect


# --- one position ------------------------------------------------------------------------

_NOT_CARRIED = "not exercised: the account cannot carry the stock (no cash for a call's shares, no shares for a put's)"


def _settle(position: ExpiringPosition, prices: Mapping[str, Decimal]) -> ExpirationEffect:
    contract, qty = position.contract, position.qty
    if contract.underlying not in prices:
        raise ValueError(f"no settlement price for {contract.underlying}")
    price = prices[contract.underlying]
    intrinsic = intrinsic_value(contract, price)
    in_the_money = intrinsic >= EXERCISE_THRESHOLD
    worth = f"{intrinsic} in the money" if intrinsic else "out of the money"
    if qty > 0 and position.instruction is Instruction.DO_NOT_EXERCISE:
        exercised, why = False, f"{worth}; {DO_NOT_EXERCISE_REASON}"
    elif qty > 0:
        exercised = in_the_money or position.instruction is Instruction.EXERCISE
        why = f"{worth} at {price}" + ("" if in_the_money or not exercised else "; exercised on the holder's request")
    else:
        exercised, why = in_the_money, f"{worth} at {price}"
    if not exercised or (position.settlement is Settlement.CASH and not intrinsic):
        return ExpirationEffect(contract, qty, Outcome.EXPIRED_WORTHLESS, price, intrinsic, None, ZERO, why)
    if position.settlement is Settlement.CASH:
        return ExpirationEffect(
            contract, qty, Outcome.CASH_SETTLED, price, intrinsic, None, intrinsic * CONTRACT * qty, why
        )
    return _physical(contract, qty, Outcome.EXERCISED if qty > 0 else Outcome.ASSIGNED, price, intrinsic, why)


def _physical(
    contract: SymbolSpec, qty: Decimal, outcome: Outcome, price: Decimal | None, intrinsic: Decimal, reason: str
) -> ExpirationEffect:
    """Stock at the strike: a long call or a short put buys it, a long put or a short call sells it."""
    strike = contract.strike or ZERO
    buys = (contract.option_type == CALL) == (qty > 0)
    shares = abs(qty) * CONTRACT
    cash = -shares * strike if buys else shares * strike
    return ExpirationEffect(
        contract,
        qty,
        outcome,
        price,
        intrinsic,
        StockDelivery(contract.underlying, Side.BUY if buys else Side.SELL, shares, strike),
        cash,
        reason,
    )


# --- what a cash account can carry -------------------------------------------------------


def _carry(
    effects: list[ExpirationEffect], cash_free: Decimal, shares_free: Mapping[str, Decimal]
) -> list[ExpirationEffect]:
    """Leave long exercises unexercised, least in the money first, while they are what puts
    cash (calls) or shares (puts) below zero, as far as that keeps the other above zero."""
    kept = [e.qty for e in effects]
    longs = sorted(
        (i for i, e in enumerate(effects) if e.outcome is Outcome.EXERCISED and e.qty > 0),
        key=lambda i: (effects[i].intrinsic, effects[i].contract.symbol),
    )
    changed = True
    while changed:
        changed = False
        cash, shares = cash_free, defaultdict(Decimal, shares_free)
        for effect, qty in zip(effects, kept, strict=True):
            cash += effect.cash_delta / effect.qty * qty
            if effect.stock is not None:
                shares[effect.stock.symbol] += effect.stock.signed_qty / effect.qty * qty
        for i in longs:
            stock = effects[i].stock
            assert stock is not None
            cost = stock.price * CONTRACT  # cash per contract a call spends, a put brings
            if stock.side is Side.BUY:  # a call: undoing one frees its cost and gives up 100 shares
                needed, allowed = -cash / cost, shares[stock.symbol] / CONTRACT
            else:  # a put: undoing one keeps 100 shares and forgoes its cost
                needed, allowed = -shares[stock.symbol] / CONTRACT, cash / cost
            undo = min(
                kept[i],
                needed.to_integral_value(rounding=ROUND_CEILING),
                allowed.to_integral_value(rounding=ROUND_FLOOR),
            )
            if undo > 0:
                kept[i] -= undo
                changed = True
                break
    result: list[ExpirationEffect] = []
    for effect, qty in zip(effects, kept, strict=True):
        if qty:
            result.append(_scaled(effect, qty))
        if qty != effect.qty:
            result.append(
                ExpirationEffect(
                    effect.contract,
                    effect.qty - qty,
                    Outcome.EXPIRED_WORTHLESS,
                    effect.settlement_price,
                    effect.intrinsic,
                    None,
                    ZERO,
                    _NOT_CARRIED,
                    True,
                )
            )
    return result


def _scaled(effect: ExpirationEffect, qty: Decimal) -> ExpirationEffect:
    if qty == effect.qty:
        return effect
    stock = effect.stock
    assert stock is not None
    share = qty / effect.qty
    return replace(effect, qty=qty, cash_delta=effect.cash_delta * share, stock=replace(stock, qty=stock.qty * share))


def _shortfall(cash: Decimal, shares_delta: Mapping[str, Decimal], shares_free: Mapping[str, Decimal]) -> str | None:
    short = [
        f"{-(shares_free.get(u, ZERO) + d).normalize():f} {u} shares"
        for u, d in sorted(shares_delta.items())
        if shares_free.get(u, ZERO) + d < 0
    ]
    if cash < 0:
        short.insert(0, f"${-cash:,.2f} of cash")
    return f"short of {' and '.join(short)} after expiration" if short else None


# --- an account's book at a close --------------------------------------------------------


def expire_book(
    expiring: Sequence[ExpiringPosition],
    remaining: Sequence[OptionHolding],
    settlement_prices: Mapping[str, Decimal],
    *,
    cash_account: bool,
    cash_free: Decimal,
    shares_free: Mapping[str, Decimal],
) -> ExpirationRun:
    """``expire`` for one account's whole option book: the ``expiring`` positions settle and
    the ``remaining`` ones (later expiries) must still be carried afterwards. A cash
    account's ``shortfall`` is judged on the book after settlement — the cash and the shares
    it would then have against what the remaining positions need (``options.requirement``
    with those shares): a remaining short call covered by a long call of its own spread needs
    no shares, however the shares were allocated before the close. ``cash_free`` and
    ``shares_free`` are as for ``expire`` (shares locked by covered calls included)."""
    run = expire(expiring, settlement_prices, cash_account=cash_account, cash_free=cash_free, shares_free=shares_free)
    if not cash_account:
        return run
    shares_after = {
        u: shares_free.get(u, ZERO) + run.shares_delta.get(u, ZERO) for u in {*shares_free, *run.shares_delta}
    }
    needs = requirement(remaining, {u: max(ZERO, q) for u, q in shares_after.items()})
    short = [f"{-q.normalize():f} {u} shares" for u, q in sorted(shares_after.items()) if q < 0]
    short += [
        f"{q.normalize():f} {u} shares to cover its remaining short calls"
        for u, q in sorted(needs.uncovered.items())
        if q > 0
    ]
    cash_left = cash_free + run.cash_delta - needs.cash
    if cash_left < 0:
        short.insert(0, f"${-cash_left:,.2f} of cash")
    shortfall = f"short of {' and '.join(short)} after expiration" if short else None
    return replace(run, shortfall=shortfall)


@dataclass(frozen=True)
class LedgerLeg:
    """One movement an effect makes in the ledger, applied like a fill (``rules.apply_fill``):
    the option position closed (at its intrinsic value when cash-settled, else at 0: a
    premium paid or received is realized then) or the stock bought or sold at the strike.
    ``entry_id`` names it once: (account, contract, day, outcome, leg)."""

    entry_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    multiplier: Decimal


def ledger_legs(account_id: str, effect: ExpirationEffect, on: date, nonce: str = "") -> tuple[LedgerLeg, ...]:
    """The ledger movements of ``effect`` (``nonce`` tells apart early exercises of one
    contract on one day). Their cash adds up to ``effect.cash_delta``."""
    contract = effect.contract
    key = (
        account_id,
        contract.symbol,
        on.isoformat(),
        effect.outcome.value,
        "carried" if not effect.not_carried else "left",
        nonce,
    )
    closing = Side.SELL if effect.qty > 0 else Side.BUY
    price = effect.intrinsic if effect.outcome is Outcome.CASH_SETTLED else ZERO
    legs = [LedgerLeg(derived_id("exp", *key, "option"), contract.symbol, closing, abs(effect.qty), price, CONTRACT)]
    if effect.stock is not None:
        stock = effect.stock
        legs.append(
            LedgerLeg(derived_id("exp", *key, "stock"), stock.symbol, stock.side, stock.qty, stock.price, Decimal(1))
        )
    return tuple(legs)
