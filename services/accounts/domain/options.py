"""Option buying power, stated once so nothing is counted twice (DESIGN §7, issue 11 item 4):
for cash accounts, and for margin accounts where no stricter rule applies. Pure.

**The requirement R** of the option holdings of one underlying and one expiry is what they
can still cost at expiry, beyond the premiums already paid or received:

    R = 100 × max(0, −min over settlement prices S ≥ 0 of Σ qty × payoff(S))

with a long call paying (S − K)+, a long put (K − S)+, short ones the negative. The payoff
is piecewise linear, so its minimum is at S = 0 or at a strike. For DESIGN §7's strategies:
long options 0 beyond the premium; a cash-secured put strike × 100 per contract (Alpaca,
"Options Trading": a $175 put holds $17,500); a vertical credit spread width × 100 and a
debit spread 0 beyond the debit; an iron condor or butterfly the wider wing × 100, as only
one side can lose at expiry (Alpaca, "Options Level 3 Trading": a $5-wide iron condor holds
$500); a short straddle or strangle its put secured and its call covered.

**Covered calls.** Calls sold beyond the calls bought lose without bound as S rises. Free
shares of the underlying cover short calls first, 100 per contract, nearest expiry and
lowest strikes first (which leaves the least cash to hold); covering shares are locked: they cannot be sold or
promised elsewhere while the call is open, and buying the call back frees them. Short calls
the shares do not cover must be covered by calls held (a spread: its width is held in
cash). A short call neither covers is a naked call: ``uncovered_option_not_allowed``. v1
refuses it in every account type (the margin requirement of uncovered writes, Cboe Rules
10.3, is v2). Covering with shares first keeps requirements from rising at a fill: buying a
call above a covered call leaves it covered, where pairing the two instead would turn it
into a spread that needs its width in cash. The other way round, selling covering shares
needs that cash (``share_sale_hold``).

**Working orders and premiums.** A working order holds the increase of the requirement it
may cause plus any debit at its worst net price; an expected credit is not counted before
it is received. At the fill the premium moves cash and the position keeps R held, so after a
credit fill buying power is down by R − credit, never up for a structure whose credit is
below its R (every defined-risk credit structure). A covered call's R is 0 in cash: its
premium raises buying power while its shares stay locked.

Which working orders will fill is unknown, so the requirement of a book is the worst case
over every set of its working orders that could fill: it holds enough whichever fill, never
rises at a fill or a cancel (the book after is one of the sets), and never drops when an
order is added. Hold it as one account-wide figure recomputed from the book whenever
positions, working orders or free shares change; ``order_hold`` is what one order adds to
it, for the buying-power check at submission and for the user to see. (Summing amounts
fixed per order at submission is not sound: a spread that leans on an open position or on
another order's leg counts on something a cancel or a fill can take away.)

The worst set is found exactly. Orders that only buy never raise a requirement and are
left out. Orders whose legs are all puts interact with the rest only through their payoff,
which adds up, so for each S the worst set takes exactly those that lose at S:

    worst = max over S of [loss of the rest at S + Σ over put orders max(0, their loss at S)]

(the maximum over sets and the maximum over S commute; each term is convex between
strikes, so S = 0 and the strikes still suffice). The other orders (those that trade calls
and sell something) are enumerated, as calls bought back free the shares that covered them
and shares cover the lowest calls of whatever set fills: at most ``MAX_CALL_ORDERS`` such
orders work on one underlying at once (``failed_precondition`` beyond).

Arithmetic is exact: contracts are whole, strikes whole thousandths of a dollar (OCC).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from services.common.errors import DomainError
from services.common.instruments import CALL, SymbolSpec, parse_symbol
from services.common.spreads import OptionLeg
from services.common.trading import Side

ZERO = Decimal(0)
CONTRACT = Decimal(100)  # shares per contract, the option multiplier
# Working orders that trade calls and sell something, per underlying: the worst case runs
# over every subset of them (2^n books).
MAX_CALL_ORDERS = 8


@dataclass(frozen=True)
class OptionHolding:
    """Signed contracts of one option: negative when short."""

    contract: SymbolSpec
    qty: Decimal


@dataclass(frozen=True)
class OptionOrderTerms:
    """One option order (single-leg: one leg of ratio 1) as buying power sees it."""

    order_id: str
    legs: tuple[OptionLeg, ...]
    qty: Decimal  # spreads, or contracts for a single leg
    # The worst net price per spread it may fill at (its limit, or a market order's collar),
    # positive for a debit; a single-leg sell is the negative of its price.
    net_price_bound: Decimal

    @property
    def debit(self) -> Decimal:
        """What the order may pay in premium: nothing for a credit."""
        return max(ZERO, self.net_price_bound) * CONTRACT * self.qty

    def holdings(self) -> tuple[OptionHolding, ...]:
        return tuple(OptionHolding(leg.contract, leg.sign * leg.ratio * self.qty) for leg in self.legs)


@dataclass(frozen=True)
class GroupRequirement:
    underlying: str
    expiration: date
    cash: Decimal  # dollars held
    shares: Decimal  # shares of the underlying locked by short calls
    uncovered: Decimal  # shares short calls would need that neither shares nor calls held cover
    worst_at: Decimal  # the settlement price S at which the cash requirement is reached


@dataclass(frozen=True)
class Requirement:
    cash: Decimal  # dollars held, all groups
    shares: Mapping[str, Decimal]  # shares locked, by underlying
    groups: tuple[GroupRequirement, ...]  # of the worst set, by underlying then expiry
    uncovered: Mapping[str, Decimal] = field(default_factory=dict)  # shares missing, by underlying


@dataclass(frozen=True)
class OptionHold:
    """What an order adds to the account's holds."""

    cash: Decimal  # requirement + debit
    shares: Mapping[str, Decimal]  # shares it newly locks, by underlying
    requirement: Decimal  # the increase of the book's requirement
    debit: Decimal  # the premium it may pay


def contract_of(symbol: str) -> SymbolSpec | None:
    """The option contract an OCC ``symbol`` names; None for stock (or anything else)."""
    try:
        spec = parse_symbol(symbol)
    except DomainError:
        return None
    return spec if spec.is_option else None


def single_leg(order_id: str, contract: SymbolSpec, side: Side, qty: Decimal, price_bound: Decimal) -> OptionOrderTerms:
    """A single-leg order for ``qty`` contracts at worst ``price_bound`` per share, as buying
    power sees it: one leg of ratio 1, a sell's net price the negative of its premium."""
    net = price_bound if side is Side.BUY else -price_bound
    return OptionOrderTerms(order_id, (OptionLeg(contract, side, 1),), qty, net)


def requirement(positions: Iterable[OptionHolding], shares_free: Mapping[str, Decimal]) -> Requirement:
    """The requirement of open option positions: cash held and shares locked, per
    underlying and expiry. ``shares_free`` are the shares of each underlying held and not
    promised to stock sell orders; short calls they cannot cover are reported in
    ``uncovered`` (as the shares missing), not raised, so a view of the account never fails."""
    return book_requirement(positions, (), shares_free)


def book_requirement(
    positions: Iterable[OptionHolding], working: Sequence[OptionOrderTerms], shares_free: Mapping[str, Decimal]
) -> Requirement:
    """The requirement of positions and working orders in the worst case of which orders
    fill (see the module); debits are not included (``OptionOrderTerms.debit``). Raises
    ``failed_precondition`` past MAX_CALL_ORDERS call-trading selling orders on one underlying."""
    books: dict[str, _Book] = defaultdict(_Book)
    for holding in positions:
        _add(books[holding.contract.underlying].positions, holding)
    for order in working:
        legs = order.holdings()
        if all(h.qty > 0 for h in legs):
            continue  # only buys: it can only lower what the book needs
        part: dict[_Key, int] = defaultdict(int)
        for holding in legs:
            _add(part, holding)
        book = books[legs[0].contract.underlying]
        (book.call_orders if any(key[1] for key in part) else book.put_orders).append(part)
    cash, shares, uncovered, groups = ZERO, {}, {}, []
    for underlying in sorted(books):
        lots = max(0, int(shares_free.get(underlying, ZERO) // CONTRACT))
        worst = books[underlying].worst(underlying, lots)
        cash += sum((g.cash for g in worst.groups), ZERO)
        groups += worst.groups
        if worst.shares:
            shares[underlying] = worst.shares
        if worst.uncovered:
            uncovered[underlying] = worst.uncovered
    return Requirement(cash, shares, tuple(groups), uncovered)


def order_hold(
    positions: Sequence[OptionHolding],
    working: Sequence[OptionOrderTerms],
    order: OptionOrderTerms,
    shares_free: Mapping[str, Decimal],
) -> OptionHold:
    """What ``order`` must hold given the account's book: the increase of the book
    requirement with it added, plus its debit. Raises ``uncovered_option_not_allowed`` when
    it leaves more short calls uncovered than before (a naked call)."""
    before = book_requirement(positions, working, shares_free)
    after = book_requirement(positions, (*working, order), shares_free)
    _refuse_uncovered(before, after, shares_free, "the order")
    added = max(ZERO, after.cash - before.cash)
    locked = {u: n - before.shares.get(u, ZERO) for u, n in after.shares.items() if n > before.shares.get(u, ZERO)}
    return OptionHold(added + order.debit, locked, added, order.debit)


def share_sale_hold(
    positions: Sequence[OptionHolding],
    working: Sequence[OptionOrderTerms],
    shares_free: Mapping[str, Decimal],
    underlying: str,
    qty: Decimal,
) -> Decimal:
    """What selling ``qty`` free shares of ``underlying`` must hold: the cash the short calls
    they covered then need (a call spread's width once its short call loses its shares).
    ``shares_free`` before the sale. Raises ``uncovered_option_not_allowed`` when nothing
    else would cover those calls: buy them back first."""
    before = book_requirement(positions, working, shares_free)
    after = book_requirement(positions, working, {**shares_free, underlying: shares_free.get(underlying, ZERO) - qty})
    _refuse_uncovered(before, after, shares_free, "the sale")
    return max(ZERO, after.cash - before.cash)


def _refuse_uncovered(before: Requirement, after: Requirement, shares_free: Mapping[str, Decimal], what: str) -> None:
    for underlying, missing in sorted(after.uncovered.items()):
        if missing > before.uncovered.get(underlying, ZERO):
            free = shares_free.get(underlying, ZERO)
            raise DomainError(
                "UNCOVERED_OPTION_NOT_ALLOWED",
                f"{what} leaves {(missing / CONTRACT).normalize():f} short {underlying} calls uncovered: covering "
                f"them takes 100 {underlying} shares each or a call held, and {free.normalize():f} shares are free "
                f"(naked calls are not allowed)",
                underlying=underlying,
                shares_missing=format(missing.normalize(), "f"),
            )


# --- one underlying: whole contracts, strikes in thousandths ------------------------------

_Key = tuple[date, bool, int]  # expiry, is a call, strike in thousandths of a dollar


def _add(into: dict[_Key, int], holding: OptionHolding) -> None:
    contract, qty = holding.contract, holding.qty
    if not contract.is_option or contract.expiration is None or contract.strike is None:
        raise ValueError(f"{contract.symbol} is not an option contract")
    if qty != qty.to_integral_value():
        raise ValueError(f"{contract.symbol}: options are held in whole contracts, not {qty}")
    into[(contract.expiration, contract.option_type == CALL, int(contract.strike * 1000))] += int(qty)


@dataclass
class _Worst:
    groups: list[GroupRequirement]
    shares: Decimal
    uncovered: Decimal


@dataclass
class _Set:
    """One set of fills: per expiry, the payoff at each price point and the net calls by strike."""

    payoffs: dict[date, list[int]]
    calls: dict[date, dict[int, int]]


@dataclass
class _Book:
    positions: dict[_Key, int] = field(default_factory=lambda: defaultdict(int))
    call_orders: list[dict[_Key, int]] = field(default_factory=list)
    put_orders: list[dict[_Key, int]] = field(default_factory=list)

    def worst(self, underlying: str, lots: int) -> _Worst:
        """The worst of every subset of the call orders filling (put orders by their losses)."""
        if len(self.call_orders) > MAX_CALL_ORDERS:
            raise DomainError(
                "FAILED_PRECONDITION",
                f"at most {MAX_CALL_ORDERS} working orders that trade "
                f"{underlying} calls and sell may work at once; cancel one first",
            )
        everything = [self.positions, *self.call_orders, *self.put_orders]
        expiries = sorted({key[0] for part in everything for key in part})
        # Every strike of the book is a price point of every set: more points than a set's own
        # kinks change no maximum.
        points = {e: sorted({0, *(key[2] for part in everything for key in part if key[0] == e)}) for e in expiries}
        put_losses = {
            e: [sum(max(0, -_payoff(order, e, x)) for order in self.put_orders) for x in points[e]] for e in expiries
        }
        best: tuple[int, list[_Group]] | None = None
        shares = uncovered = 0
        for fills in self._sets(expiries, points):
            groups = _settle(fills, expiries, points, put_losses, lots)
            cash = sum(g.loss for g in groups)
            if best is None or cash > best[0]:
                best = (cash, groups)
            shares = max(shares, sum(g.covered for g in groups))
            uncovered = max(uncovered, sum(g.uncovered for g in groups))
        assert best is not None
        return _Worst(
            [
                GroupRequirement(
                    underlying,
                    g.expiration,
                    Decimal(g.loss) / 10,
                    Decimal(g.covered) * CONTRACT,
                    Decimal(g.uncovered) * CONTRACT,
                    Decimal(g.worst_at) / 1000,
                )
                for g in best[1]
            ],
            Decimal(shares) * CONTRACT,
            Decimal(uncovered) * CONTRACT,
        )

    def _sets(self, expiries: list[date], points: dict[date, list[int]]) -> list[_Set]:
        """The positions with each subset of the call orders filled (the empty one first):
        payoffs add up, and calls net by strike as the ledger nets them."""

        def of(part: Mapping[_Key, int]) -> _Set:
            calls: dict[date, dict[int, int]] = {e: defaultdict(int) for e in expiries}
            for (expiry, is_call, strike), qty in part.items():
                if is_call:
                    calls[expiry][strike] += qty
            return _Set({e: [_payoff(part, e, x) for x in points[e]] for e in expiries}, calls)

        sets = [of(self.positions)]
        for order in map(of, self.call_orders):
            for known in list(sets):
                sets.append(
                    _Set(
                        {e: [a + b for a, b in zip(known.payoffs[e], order.payoffs[e], strict=True)] for e in expiries},
                        {e: _merged(known.calls[e], order.calls[e]) for e in expiries},
                    )
                )
        return sets


def _merged(first: Mapping[int, int], second: Mapping[int, int]) -> dict[int, int]:
    merged = dict(first)
    for strike, qty in second.items():
        merged[strike] = merged.get(strike, 0) + qty
    return merged


@dataclass
class _Group:
    expiration: date
    loss: int  # the worst loss at expiry: thousandths of a dollar per share, times contracts
    covered: int  # short call contracts shares cover
    uncovered: int  # short call contracts nothing covers
    worst_at: int  # where, in thousandths of a dollar


def _settle(
    fills: _Set, expiries: list[date], points: dict[date, list[int]], put_losses: dict[date, list[int]], lots: int
) -> list[_Group]:
    """Each expiry of one set of fills: shares cover the lowest short calls, nearest expiry
    first (a covered call loses no cash: its shares are delivered); the loss is the worst at
    S = 0 or a strike, the put orders' losses added."""
    groups = []
    for expiry in expiries:
        covers = []
        for strike, qty in sorted(fills.calls[expiry].items()):
            take = min(lots, max(0, -qty))
            if take:
                covers.append((strike, take))
                lots -= take
        loss, worst_at = 0, 0
        for x, payoff, put_loss in zip(points[expiry], fills.payoffs[expiry], put_losses[expiry], strict=True):
            relief = sum(take * max(0, x - strike) for strike, take in covers)
            if -payoff - relief + put_loss > loss:
                loss, worst_at = -payoff - relief + put_loss, x
        covered = sum(take for _, take in covers)
        tail = sum(fills.calls[expiry].values()) + covered
        groups.append(_Group(expiry, loss, covered, max(0, -tail), worst_at))
    return groups


def _payoff(part: Mapping[_Key, int], expiry: date, price: int) -> int:
    """Per share, in thousandths, of ``part``'s contracts of ``expiry`` settling at ``price``."""
    return sum(
        qty * max(0, price - strike if is_call else strike - price)
        for (when, is_call, strike), qty in part.items()
        if when == expiry
    )
