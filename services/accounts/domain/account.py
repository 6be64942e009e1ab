"""The Account aggregate: a user's cash, open positions and the buying power its working
orders hold — and every change to them, as methods that enforce the rules (``rules``) and
record past-tense events (``AccountOpened``, ``HoldTaken``, ``HoldReleased``,
``FillApplied``, ``FillRefused``). The repository persists what the events say; the unit of
work publishes them. The backtest engine runs the very same aggregate in memory."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal

from services.accounts.domain.eod import dividend_amount, margin_interest
from services.accounts.domain.expiration import (
    ExpirationEffect,
    ExpirationRun,
    ExpiringPosition,
    Instruction,
    LedgerLeg,
    early_exercise,
    expire_book,
    ledger_legs,
)
from services.accounts.domain.options import (
    CONTRACT,
    OptionHolding,
    OptionOrderTerms,
    Requirement,
    book_requirement,
    contract_of,
    order_hold,
    requirement,
    single_leg,
)
from services.accounts.domain.rules import (
    ABANDONED,
    DEFAULT_FILL_PREFERENCE,
    ENDED_REASONS,
    STARTING_CASH,
    AccountType,
    FillEffect,
    FillTerms,
    Hold,
    HoldTerms,
    Mark,
    Position,
    Profile,
    Valuation,
    VersionHold,
    apply_fill,
    buying_power,
    check_fits,
    check_reservable,
    contract_multiplier,
    describe_terms,
    effective_hold,
    exit_group_key,
    hold_for,
    ledger_breach,
    mark_price,
    market_value,
    options_buying_power,
    uncovered_reason,
)
from services.common.errors import DomainError, invalid_argument
from services.common.instruments import ContractTerms, SymbolSpec, parse_symbol
from services.common.spreads import OptionLeg, resolve_leg_intents
from services.common.trading import FillPreference, PositionIntent, Side, resolve_intent


def option_terms(order_id: str, terms: HoldTerms) -> OptionOrderTerms | None:
    """An option order's terms as option buying power sees them (a multi-leg order's legs,
    or a single contract); None for stock."""
    if terms.legs:
        contracts = [contract_of(leg.symbol) for leg in terms.legs]
        if any(contract is None for contract in contracts):
            raise invalid_argument("every leg of a multi-leg order is an option contract", "legs")
        legs = tuple(
            OptionLeg(contract, leg.side, leg.ratio)
            for contract, leg in zip(contracts, terms.legs, strict=True)
            if contract is not None
        )
        return OptionOrderTerms(order_id, legs, terms.qty, terms.price_bound)
    contract = contract_of(terms.symbol)
    if contract is None:
        return None
    return single_leg(order_id, contract, terms.side, terms.qty, terms.price_bound)


def spread_uncovered_reason(hold: VersionHold | None, legs: Sequence[FillTerms]) -> str | None:
    """Why a multi-leg order version's hold does not cover a fill of ``legs``, or None: the
    hold must be active and for these legs (contract, side), at most ratio x its spreads
    each, 100 shares per contract, at a net per spread no worse than the one held."""
    if hold is None or not hold.active or hold.terms is None or not hold.terms.legs:
        return "no active multi-leg hold covers this order version"
    terms = hold.terms
    if len(legs) != len(terms.legs) or not legs:
        return f"the fill has {len(legs)} legs, the hold {len(terms.legs)}"
    spreads = legs[0].qty / terms.legs[0].ratio
    net = Decimal(0)
    for leg, held in zip(legs, terms.legs, strict=True):
        if (leg.symbol, leg.side, leg.multiplier) != (held.symbol, held.side, CONTRACT):
            return f"the hold is for {describe_terms(terms)}, not a {leg.side.value} of {leg.symbol}"
        if leg.qty != held.ratio * spreads or spreads > terms.qty:
            return f"the fill's {leg.symbol} leg is for {leg.qty.normalize():f} contracts"
        net += leg.price * held.ratio * (1 if leg.side is Side.BUY else -1)
    if net > terms.price_bound:
        return f"the fill's net {net} is beyond the held worst net {terms.price_bound}"
    return None


@dataclass(frozen=True)
class AccountOpened:
    account_id: str
    user_id: str
    account_type: AccountType
    profile: Profile
    starting_cash: Decimal
    at: datetime


@dataclass(frozen=True)
class HoldTaken:
    order_id: str
    hold: VersionHold
    at: datetime


@dataclass(frozen=True)
class HoldReleased:
    """``version`` stopped holding (``reason``); ``marker``: nothing was held — recorded so a
    reservation arriving late for that order or version is refused."""

    order_id: str
    version: int
    reason: str
    at: datetime
    marker: bool = False


@dataclass(frozen=True)
class FillApplied:
    account_id: str
    user_id: str
    fill_id: str
    fill: FillTerms
    effect: FillEffect
    cash_after: Decimal
    at: datetime


@dataclass(frozen=True)
class FillRefused:
    """The ledger did not apply a fill that would break it (``reason`` a stable reason)."""

    account_id: str
    user_id: str
    fill_id: str
    fill: FillTerms
    order_version: int
    reason: str
    why: str
    at: datetime


@dataclass(frozen=True)
class OptionSettled:
    """An option position expired, was exercised or assigned (``effect``) on ``on``; ``legs``
    are the ledger movements it made, each with what it did to its position;
    ``shortfall``: why a cash account came out of the whole run short (None when it fits)."""

    account_id: str
    user_id: str
    effect: ExpirationEffect
    on: date
    legs: tuple[tuple[LedgerLeg, FillEffect], ...]
    cash_after: Decimal
    at: datetime
    early: bool = False
    shortfall: str | None = None


@dataclass(frozen=True)
class AccountTypeChanged:
    account_id: str
    user_id: str
    before: AccountType
    after: AccountType


@dataclass(frozen=True)
class DividendPosted:
    """A cash dividend paid on ``qty`` shares held at the ex-date's open (negative: a short,
    charged)."""

    account_id: str
    user_id: str
    entry_id: str
    symbol: str
    ex_date: date
    pay_date: date
    qty: Decimal
    cash_amount: Decimal
    amount: Decimal
    cash_after: Decimal
    at: datetime


@dataclass(frozen=True)
class InterestCharged:
    """A night's margin interest on ``debit_balance`` (``amount`` positive, taken from cash)."""

    account_id: str
    user_id: str
    entry_id: str
    session_date: date
    debit_balance: Decimal
    rate_bps: int
    days: int
    amount: Decimal
    profile: Profile
    cash_after: Decimal
    at: datetime


AccountEvent = (
    AccountOpened
    | HoldTaken
    | HoldReleased
    | FillApplied
    | FillRefused
    | AccountTypeChanged
    | DividendPosted
    | InterestCharged
    | OptionSettled
)


@dataclass
class Account:
    """What the ledger knows of one account. ``holds`` lists, per order, the version holds
    loaded with the account: every active one, plus every version (released too) of the
    orders a change is about."""

    account_id: str
    user_id: str
    account_type: AccountType
    profile: Profile
    starting_cash: Decimal
    cash: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    holds: dict[str, list[VersionHold]] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    events: list[AccountEvent] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        account_id: str,
        user_id: str,
        profile: Profile,
        at: datetime,
        account_type: AccountType = AccountType.CASH,
        starting_cash: Decimal | None = None,
    ) -> Account:
        """A new account with the ``starting_cash`` its user chose (USD, checked by
        ``rules.check_starting_cash``), else its profile's (README "Accounts")."""
        cash = starting_cash if starting_cash is not None else STARTING_CASH[profile]
        account = cls(account_id, user_id, account_type, profile, cash, cash, created_at=at, updated_at=at)
        account.events.append(AccountOpened(account_id, user_id, account_type, profile, cash, at))
        return account

    # -- valuation -------------------------------------------------------------------

    def held(self) -> Hold:
        """What the account holds: each stock order its ``effective_hold``; option positions
        and working option orders their book's requirement plus the orders' debits
        (``options.book_requirement``, one account-wide figure, so nothing counts twice)."""
        amount = qty = Decimal(0)
        for versions in self.stock_holds().values():
            hold = effective_hold(versions)
            amount, qty = amount + hold.amount, qty + hold.qty
        return Hold(amount + self.option_requirement(), qty)

    def stock_holds(self) -> dict[str, list[VersionHold]]:
        """The version holds of working stock orders by ``exit_group_key``: each key holds
        its ``effective_hold`` (a bracket's or oco's two exits once, the larger)."""
        grouped: dict[str, list[VersionHold]] = {}
        for order_id, versions in self.holds.items():
            if any(h.terms is not None and option_terms("", h.terms) is not None for h in versions if h.active):
                continue
            grouped.setdefault(exit_group_key(order_id, versions), []).extend(versions)
        return grouped

    # -- options ---------------------------------------------------------------------

    def option_holdings(self) -> list[OptionHolding]:
        """The open option positions, signed contracts."""
        return [
            OptionHolding(contract, position.qty)
            for symbol, position in sorted(self.positions.items())
            if (contract := contract_of(symbol)) is not None
        ]

    def _working_option_terms(self, excluding: str, group: str) -> Iterator[tuple[str, list[OptionOrderTerms]]]:
        """(exit group key, the terms of every active version, oldest first) of each working
        option order but ``excluding`` and the orders of exit ``group``."""
        for order_id, versions in sorted(self.holds.items()):
            active = sorted((h for h in versions if h.active and h.terms is not None), key=lambda h: h.version)
            key = exit_group_key(order_id, active)
            if order_id == excluding or (group and key == group) or not active:
                continue
            terms = [order for h in active if h.terms is not None and (order := option_terms(order_id, h.terms))]
            if terms:
                yield key, terms

    def working_option_versions(self, excluding: str = "", group: str = "") -> list[list[OptionOrderTerms]]:
        """The terms that may fill of each working option order (but ``excluding`` and exit
        ``group``), one list per order: while a replace is in flight (or was cut short) both
        of its versions hold, as either may still fill; the exits of one bracket or oco close
        the same position (one at most fills), so they are one list of both exits' terms."""
        slots: dict[str, list[OptionOrderTerms]] = {}
        for key, terms in self._working_option_terms(excluding, group):
            slots.setdefault(key, []).extend(terms)
        return list(slots.values())

    def contracts_promised(self, symbol: str) -> Decimal:
        """Contracts of ``symbol`` the working option orders would sell (each sold leg's
        ratio x the order's qty; of a bracket's or oco's exits, one)."""
        return sum(
            (
                leg.ratio * order.qty
                for order in self.working_option_orders()
                for leg in order.legs
                if leg.contract.symbol == symbol and leg.side is Side.SELL
            ),
            Decimal(0),
        )

    def working_option_orders(self, excluding: str = "", group: str = "") -> list[OptionOrderTerms]:
        """Each working option order (but ``excluding`` and the orders of exit ``group``) at
        its latest active version's terms; of the exits of one bracket or oco, only the one
        with the larger debit (they close the same position: one at most fills)."""
        kept: dict[str, OptionOrderTerms] = {}
        for key, terms in self._working_option_terms(excluding, group):
            if key not in kept or terms[-1].debit > kept[key].debit:
                kept[key] = terms[-1]
        return list(kept.values())

    def _option_books(self) -> list[Requirement]:
        """The option book's requirement with each set of working terms that may fill (one
        version of every working order), and the debits of that set as extra cash."""
        holdings, working = self.option_holdings(), self.working_option_versions()
        if not holdings and not working:
            return []
        shares_free = self.shares_free()
        books = []
        for chosen in itertools.product(*working):
            book = book_requirement(holdings, list(chosen), shares_free)
            books.append(replace(book, cash=book.cash + sum((order.debit for order in chosen), Decimal(0))))
        return books

    def option_requirement(self) -> Decimal:
        """Cash the option book holds: its worst-case requirement plus working debits, the
        larger of a replace's two versions counting while it is in flight (as for stock)."""
        return max((book.cash for book in self._option_books()), default=Decimal(0))

    def held_beyond_positions(self) -> Decimal:
        """What is held for anything but the option positions' own requirement: stock
        orders, and what working option orders add to the book (with their debits)."""
        positions = self.option_holdings()
        own = requirement(positions, self.shares_free()).cash if positions else Decimal(0)
        return self.held().amount - own

    def locked_shares(self, symbol: str) -> Decimal:
        """Shares of ``symbol`` covering short calls (open or working): they cannot be sold."""
        return max((book.shares.get(symbol, Decimal(0)) for book in self._option_books()), default=Decimal(0))

    def _check_unlocked(self, terms: HoldTerms, unpromised: Decimal) -> None:
        """A stock sell may not take shares that cover short calls (open or working), in
        any account type: ``insufficient_buying_power`` saying how many are locked."""
        locked = self.locked_shares(terms.symbol)
        if locked and terms.qty > max(Decimal(0), unpromised - locked):
            free = max(Decimal(0), unpromised - locked)
            raise DomainError(
                "INSUFFICIENT_BUYING_POWER",
                f"{locked.normalize():f} {terms.symbol} shares cover short calls and cannot be sold while the calls "
                f"are open (buy them back first); {free.normalize():f} are free to sell",
                available_qty=format(free.normalize(), "f"),
            )

    def leg_intents(self, terms: HoldTerms, intents: Sequence[PositionIntent | None]) -> tuple[PositionIntent, ...]:
        """A multi-leg order's intent per leg, as sent or inferred from the positions held
        (``resolve_leg_intents``); () for any other order."""
        order = option_terms("", terms)
        if not terms.legs or order is None:
            return ()
        positions = {symbol: p.qty for symbol, p in self.positions.items()}
        return resolve_leg_intents(order.legs, terms.qty, intents or (None,) * len(terms.legs), positions)

    def fill_preference(self, sent: FillPreference | None, chosen: FillPreference | None = None) -> FillPreference:
        """A multi-leg order's fill preference: as sent, else the user's ``chosen`` default
        (their settings), else the profile's default (``DEFAULT_FILL_PREFERENCE``)."""
        return sent or chosen or DEFAULT_FILL_PREFERENCE[self.profile]

    def position_intent(self, terms: HoldTerms, intent: PositionIntent | None) -> PositionIntent | None:
        """An option order's position intent, as sent or inferred from the position held
        (``resolve_intent``: ``invalid_argument`` when it contradicts the position); None
        for stock."""
        if terms.legs or contract_of(terms.symbol) is None:
            return None
        position = self.positions.get(terms.symbol)
        return resolve_intent(terms.side, terms.qty, intent, position.qty if position else Decimal(0))

    def valuation(self, marks: Mapping[str, Mark]) -> Valuation:
        """Cash, the long and short market values at ``marks`` (what closing would get) and
        the holds."""
        long_value = short_value = option_long = option_short = Decimal(0)
        for symbol, position in self.positions.items():
            mark = marks.get(symbol)
            value = market_value(position, mark_price(position, mark.bid if mark else None, mark.ask if mark else None))
            option = value if contract_of(symbol) is not None else Decimal(0)
            if value >= 0:
                long_value, option_long = long_value + value, option_long + option
            else:
                short_value, option_short = short_value + value, option_short + option
        return Valuation(self.cash, long_value, short_value, self.held().amount, option_long, option_short)

    def buying_power(self, marks: Mapping[str, Mark]) -> Decimal:
        """In dollars of stock a new order may buy (``rules.buying_power``)."""
        return buying_power(self.account_type, self.valuation(marks))

    def options_buying_power(self, marks: Mapping[str, Mark]) -> Decimal:
        """In dollars an option order may hold (``rules.options_buying_power``)."""
        return options_buying_power(self.account_type, self.valuation(marks))

    # -- holds -----------------------------------------------------------------------

    def hold(
        self, order_id: str, version: int, terms: HoldTerms, marks: Mapping[str, Mark], at: datetime
    ) -> VersionHold:
        """Hold buying power for ``version`` of ``order_id`` with ``terms``. Idempotent for the
        same terms; IDEMPOTENCY_KEY_REUSED for other terms; FAILED_PRECONDITION for an order
        that ended or a stale version; INSUFFICIENT_BUYING_POWER when it does not fit. While a
        replace is pending both versions hold, the larger counting; INVALID_ARGUMENT for a
        multiplier that is not the instrument's (100 for an option contract)."""
        expected = CONTRACT if terms.legs else contract_multiplier(terms.symbol)
        if terms.multiplier != expected:
            raise invalid_argument(
                f"{terms.symbol} trades {expected:f} shares per unit, not {terms.multiplier.normalize():f}",
                "multiplier",
            )
        versions = self.holds.setdefault(order_id, [])
        existing = check_reservable(order_id, version, terms, versions)
        if existing is not None:
            return existing
        position = self.positions.get(terms.symbol)
        order = option_terms(order_id, terms)
        if order is not None:
            option = order_hold(
                self.option_holdings(),
                self.working_option_orders(excluding=order_id, group=terms.exit_group),
                order,
                self.shares_free(),
            )
            needed = Hold(option.cash, Decimal(0))
        else:
            own = terms.exit_group or order_id
            promised = sum(
                (
                    effective_hold(hs).qty
                    for key, hs in self.stock_holds().items()
                    if key != own and any(h.symbol == terms.symbol for h in hs)
                ),
                Decimal(0),
            )
            held = position.qty if position else Decimal(0)
            if terms.side is Side.SELL:
                self._check_unlocked(terms, held - promised)
            needed = hold_for(self.account_type, terms, held, promised)
        # A bracket's or oco's exits hold once: the pair's current hold is this order's.
        current = effective_hold(
            [h for key, hs in self.holds.items() if exit_group_key(key, hs) == terms.exit_group for h in hs]
            if terms.exit_group
            else versions
        )
        check_fits(
            self.account_type,
            self.valuation(marks),
            Hold(max(current.amount, needed.amount), max(current.qty, needed.qty)),
            released=current.amount,
            option=order is not None,
        )
        taken = VersionHold(version, terms, needed, True, symbol=terms.symbol)
        versions.append(taken)
        self.events.append(HoldTaken(order_id, taken, at))
        return taken

    def release(
        self, order_id: str, reason: str, at: datetime, *, version: int | None = None, below: int | None = None
    ) -> Decimal:
        """Release an order's holds: every version, one ``version``, or those ``below`` a version
        (superseded by it). Idempotent: a repeat answers what the first release held. A
        release that finds nothing (for one version, or for a whole order) leaves a marker."""
        versions = self.holds.setdefault(order_id, [])
        chosen = [
            h for h in versions if (version is None or h.version == version) and (below is None or h.version < below)
        ]
        if not chosen:
            if below is None:
                marker = VersionHold(version or 0, None, Hold(Decimal(0), Decimal(0)), False, reason)
                versions.append(marker)
                self.events.append(HoldReleased(order_id, marker.version, reason, at, marker=True))
            return Decimal(0)
        for hold in chosen:
            ending = reason in ENDED_REASONS and hold.release_reason not in ENDED_REASONS
            if hold.active or ending:
                versions[versions.index(hold)] = replace(hold, active=False, release_reason=reason)
                self.events.append(HoldReleased(order_id, hold.version, reason, at))
        return effective_hold(replace(h, active=True) for h in chosen).amount

    def abandon(self, order_id: str, version: int, at: datetime) -> Decimal:
        """A replace that never took effect: its version's hold goes."""
        return self.release(order_id, ABANDONED, at, version=version)

    # -- fills -----------------------------------------------------------------------

    def apply_fill(self, fill_id: str, fill: FillTerms, order_version: int, at: datetime) -> FillEffect | None:
        """Apply a fill to cash and the position and release the order's holds — unless it
        would break the ledger (no hold of ``order_version`` covering it, cash below zero or a
        short position in a cash account): then nothing changes, ``FillRefused`` is recorded
        and None returned."""
        hold = next((h for h in self.holds.get(fill.order_id, ()) if h.version == order_version), None)
        effect = apply_fill(
            self.positions.get(fill.symbol), fill.symbol, fill.side, fill.qty, fill.price, fill.multiplier
        )
        why = uncovered_reason(self.account_type, hold, fill) or ledger_breach(
            self.account_type,
            self.cash + effect.cash_delta,
            effect.position.qty,
            option=contract_of(fill.symbol) is not None,
        )
        if why is not None:
            self.events.append(
                FillRefused(self.account_id, self.user_id, fill_id, fill, order_version, "LEDGER_INVARIANT", why, at)
            )
            return None
        self.cash += effect.cash_delta
        self.updated_at = at
        if effect.position.is_open:
            self.positions[fill.symbol] = effect.position
        else:
            self.positions.pop(fill.symbol, None)
        self.events.append(FillApplied(self.account_id, self.user_id, fill_id, fill, effect, self.cash, at))
        self.release(fill.order_id, "filled", at)
        return effect

    def apply_spread_fill(
        self, fill_id: str, legs: Sequence[FillTerms], order_version: int, at: datetime
    ) -> tuple[FillEffect, ...] | None:
        """Apply a multi-leg fill all or none: each leg moves cash and its position (one
        ``FillApplied`` per leg, its id ``{fill_id}.{index}``) and the order's holds are
        released — unless the version's hold does not cover the legs (other contracts, sides
        or more contracts, a net beyond its worst) or a cash account's cash would go below
        zero: then nothing changes and ``FillRefused`` is recorded."""
        hold = next((h for h in self.holds.get(legs[0].order_id, ()) if h.version == order_version), None)
        why = spread_uncovered_reason(hold, legs)
        effects: list[FillEffect] = []
        positions = dict(self.positions)
        cash = self.cash
        for leg in legs:
            effect = apply_fill(positions.get(leg.symbol), leg.symbol, leg.side, leg.qty, leg.price, leg.multiplier)
            positions[leg.symbol] = effect.position
            cash += effect.cash_delta
            effects.append(effect)
        why = why or ledger_breach(self.account_type, cash, Decimal(0), option=True)
        if why is not None:
            self.events.append(
                FillRefused(self.account_id, self.user_id, fill_id, legs[0], order_version, "LEDGER_INVARIANT", why, at)
            )
            return None
        for index, (leg, effect) in enumerate(zip(legs, effects, strict=True)):
            self.cash += effect.cash_delta
            if effect.position.is_open:
                self.positions[leg.symbol] = effect.position
            else:
                self.positions.pop(leg.symbol, None)
            self.events.append(
                FillApplied(self.account_id, self.user_id, f"{fill_id}.{index}", leg, effect, self.cash, at)
            )
        self.updated_at = at
        self.release(legs[0].order_id, "filled", at)
        return tuple(effects)

    def refuse_reused_fill(self, fill_id: str, fill: FillTerms, order_version: int, at: datetime) -> None:
        """The fill id was applied before with other terms: nothing changes, loudly."""
        self.events.append(
            FillRefused(
                self.account_id,
                self.user_id,
                fill_id,
                fill,
                order_version,
                "IDEMPOTENCY_KEY_REUSED",
                "the fill id was applied before with other terms",
                at,
            )
        )

    # -- income and charges ---------------------------------------------------------

    def post_dividend(
        self,
        entry_id: str,
        symbol: str,
        ex_date: date,
        pay_date: date,
        qty: Decimal,
        cash_amount: Decimal,
        at: datetime,
    ) -> Decimal:
        """Pay ``qty`` × ``cash_amount`` (``eod.dividend_amount``: credited to a long, charged
        to a short) into cash; returns the signed amount."""
        paid = dividend_amount(qty, cash_amount)
        self.cash += paid
        self.updated_at = at
        self.events.append(
            DividendPosted(
                self.account_id,
                self.user_id,
                entry_id,
                symbol,
                ex_date,
                pay_date,
                qty,
                cash_amount,
                paid,
                self.cash,
                at,
            )
        )
        return paid

    def charge_interest(
        self, entry_id: str, session_date: date, debit_balance: Decimal, rate_bps: int, days: int, at: datetime
    ) -> Decimal:
        """Take ``eod.margin_interest`` of ``debit_balance`` from cash (margin accounts only);
        returns what was charged (0: nothing to charge, nothing recorded)."""
        if self.account_type is not AccountType.MARGIN:
            return Decimal(0)
        charged = margin_interest(debit_balance, rate_bps, days)
        if not charged:
            return charged
        self.cash -= charged
        self.updated_at = at
        self.events.append(
            InterestCharged(
                self.account_id,
                self.user_id,
                entry_id,
                session_date,
                debit_balance,
                rate_bps,
                days,
                charged,
                self.profile,
                self.cash,
                at,
            )
        )
        return charged

    # -- expiration, exercise and assignment ------------------------------------------

    def shares_free(self) -> dict[str, Decimal]:
        """Shares held long, by symbol, less those working sell orders hold."""
        free = {s: p.qty for s, p in self.positions.items() if p.qty > 0 and not parse_symbol(s).is_option}
        for versions in self.stock_holds().values():
            held = effective_hold(versions).qty
            symbol = next((h.symbol for h in versions if h.active), "")
            if held and symbol in free:
                free[symbol] -= held
        return free

    def expiring(self, on: date) -> list[SymbolSpec]:
        """The option contracts held that expire on or before ``on``."""
        specs = [parse_symbol(symbol) for symbol in self.positions]
        return [s for s in specs if s.is_option and s.expiration is not None and s.expiration <= on]

    def expire_options(
        self,
        on: date,
        terms: Mapping[str, ContractTerms],
        settlement_prices: Mapping[str, Decimal],
        at: datetime,
        symbols: Collection[str] | None = None,
        instructions: Mapping[str, Instruction] | None = None,
    ) -> ExpirationRun:
        """Settle every option position expiring on or before ``on`` (``expiration.expire_book``
        over the whole book) at ``settlement_prices`` by underlying; ``terms`` by contract
        symbol say how each settles. Each effect closes its position and delivers its stock
        in the ledger and records ``OptionSettled``. A shortfall does not stop a settlement
        (an assignment happens whatever the account holds): it is reported. ``symbols``
        limits the run to those contracts (AM- and PM-settled options of one index settle
        at different prices); ``instructions`` are the holder's, by contract symbol (a long
        with ``DO_NOT_EXERCISE`` expires unexercised, in the money or not)."""
        expiring = [s for s in self.expiring(on) if symbols is None or s.symbol in symbols]
        symbols = {s.symbol for s in expiring}
        run = expire_book(
            [
                ExpiringPosition(
                    s,
                    self.positions[s.symbol].qty,
                    terms[s.symbol].settlement_type,
                    (instructions or {}).get(s.symbol),
                )
                for s in expiring
            ],
            [
                OptionHolding(parse_symbol(symbol), position.qty)
                for symbol, position in self.positions.items()
                if symbol not in symbols and parse_symbol(symbol).is_option
            ],
            settlement_prices,
            cash_account=self.account_type is AccountType.CASH,
            cash_free=self.cash - self.held_beyond_positions(),
            shares_free=self.shares_free(),
        )
        for effect in run.effects:
            self._settle(effect, on, at, shortfall=run.shortfall)
        return run

    def exercise(
        self, symbol: str, qty: Decimal | None, terms: ContractTerms, on: date, at: datetime
    ) -> ExpirationEffect:
        """The holder exercises ``qty`` (default: all) long contracts of ``symbol`` early
        (``expiration.early_exercise``: FAILED_PRECONDITION for a short, European-style,
        cash-settled or expired contract or a fraction; INSUFFICIENT_BUYING_POWER when a cash
        account cannot carry the stock). FAILED_PRECONDITION too for contracts a working
        order would sell (they are promised: exercising them would leave that order selling
        what is gone). NOT_FOUND when no position is held."""
        position = self.positions.get(symbol)
        if position is None:
            raise DomainError("NOT_FOUND", f"no open position in {symbol}", resource="position", id=symbol)
        wanted = position.qty if qty is None else qty
        promised = self.contracts_promised(symbol)
        if promised and position.qty > 0 and wanted > position.qty - promised:
            free = max(Decimal(0), position.qty - promised)
            raise DomainError(
                "FAILED_PRECONDITION",
                f"{promised.normalize():f} of the {position.qty.normalize():f} {symbol} contracts held are promised "
                f"to working sell orders: cancel them first, or exercise at most {free.normalize():f}",
            )
        spec = parse_symbol(symbol)
        stock_free = self.shares_free().get(spec.underlying, Decimal(0))
        effect = early_exercise(
            ExpiringPosition(spec, position.qty, terms.settlement_type),
            wanted,
            terms.exercise_style,
            on,
            cash_account=self.account_type is AccountType.CASH,
            cash_free=self.cash - self.held().amount,
            shares_free=stock_free,
        )
        self._settle(effect, on, at, early=True, nonce=at.isoformat())
        return effect

    def _settle(
        self,
        effect: ExpirationEffect,
        on: date,
        at: datetime,
        *,
        early: bool = False,
        shortfall: str | None = None,
        nonce: str = "",
    ) -> None:
        applied = []
        for leg in ledger_legs(self.account_id, effect, on, nonce):
            fill = apply_fill(self.positions.get(leg.symbol), leg.symbol, leg.side, leg.qty, leg.price, leg.multiplier)
            self.cash += fill.cash_delta
            if fill.position.is_open:
                self.positions[leg.symbol] = fill.position
            else:
                self.positions.pop(leg.symbol, None)
            applied.append((leg, fill))
        self.updated_at = at
        self.events.append(
            OptionSettled(self.account_id, self.user_id, effect, on, tuple(applied), self.cash, at, early, shortfall)
        )

    # -- type ------------------------------------------------------------------------

    def change_type(self, account_type: AccountType) -> None:
        """Cash <-> margin, only with no positions and no working orders."""
        if account_type is self.account_type:
            return
        if self.positions or self.held() != Hold(Decimal(0), Decimal(0)):
            raise invalid_argument(
                "the account type can change only with no positions and no working orders", "account_type"
            )
        self.events.append(AccountTypeChanged(self.account_id, self.user_id, self.account_type, account_type))
        self.account_type = account_type
