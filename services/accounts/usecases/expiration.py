"""Expiration, exercise and assignment (DESIGN §7, issue 11): after a session's close every
account holding contracts that expire then settles them at the underlying's official
closing price (``ExpireOptions``, run by the ``mbt.expire_options`` job), one unit of work
per account; a holder exercises a long American option early (``ExerciseOption``).

Holders' instructions: a do-not-exercise instruction for a long expiring today is taken
until the cutoff after the close (``InstructDoNotExercise``, ``WithdrawDoNotExercise``), and
the session's settlement waits for that cutoff (``ExpireOptions`` is refused before it), so
every instruction accepted is applied and none arrives after its position settled. Before
the close, the long in-the-money options a cash account could not carry into stock are
listed for the ``mbt.sell_uncarriable_options`` job to sell (``ListUncarriedOptions``).

Idempotent per (account, contract, session): a settled position is closed, so a repeat
finds nothing to settle, and each ledger movement has an id derived from those terms (the
ledger's unique fill id refuses a second one)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.accounts.clients import SETTLEMENT_LOOKBACK
from services.accounts.domain.account import Account
from services.accounts.domain.expiration import (
    CarryAction,
    ExpirationEffect,
    ExpiringPosition,
    Instruction,
    InstructionWindow,
    carry_action,
    check_instruction,
    sale_client_order_id,
    uncarried,
)
from services.accounts.domain.rules import AccountType
from services.accounts.store import AccountRepository, OptionInstructionRow
from services.accounts.usecases.deps import Deps, with_account
from services.common.errors import DomainError, invalid_argument, not_found
from services.common.instruments import AM, ContractTerms, SymbolSpec, contract_terms, parse_symbol
from services.common.persistence.uow import UnitOfWork

MARKET_TZ = ZoneInfo("America/New_York")


@dataclass(frozen=True)
class Settled:
    account_id: str
    effect: ExpirationEffect


@dataclass(frozen=True)
class ExpirationReport:
    settled: tuple[Settled, ...]
    accounts: int
    shortfalls: tuple[str, ...]  # "acct_…: short of …"
    unpriced: tuple[str, ...] = ()  # "AMZN expiring 2012-06-22: why", left open


@dataclass(frozen=True)
class InstructionState:
    """A contract's standing instruction (``instruction`` None: none, or withdrawn)."""

    symbol: str
    instruction: Instruction | None
    window: InstructionWindow
    given_at: datetime | None


@dataclass(frozen=True)
class Uncarried:
    """Long contracts one cash account should sell before the close (``reason`` says why)."""

    user_id: str
    account_id: str
    symbol: str
    qty: Decimal
    has_bid: bool
    client_order_id: str
    reason: str


@dataclass(frozen=True)
class UncarriedReport:
    options: tuple[Uncarried, ...]
    accounts: int  # cash accounts holding long contracts expiring at that close


# (expiration date, AM-settled): the options that settle at one price per underlying.
_Group = tuple[date, bool]


class Expiration:
    def __init__(self, deps: Deps, *, cutoff: timedelta, sale_lead: timedelta) -> None:
        """``cutoff``: how long after an expiry day's close instructions are taken and its
        settlement waits (``MBT_DO_NOT_EXERCISE_CUTOFF_MINUTES``); ``sale_lead``: how long
        before the close uncarriable longs are sold (``MBT_OPTION_PRE_CLOSE_SALE_MINUTES``)."""
        self.deps = deps
        self.cutoff = cutoff
        self.sale_lead = sale_lead

    async def window(self, expiration: date) -> InstructionWindow:
        """The instruction window of contracts expiring on ``expiration``: the last session
        on or before it (an expiry on a holiday settles on the session before) and its
        cutoff. FAILED_PRECONDITION when market data knows no such session."""
        sessions = [
            s
            for s in await self.deps.market.sessions(expiration - SETTLEMENT_LOOKBACK, expiration)
            if s.day <= expiration
        ]
        if not sessions:
            raise DomainError("FAILED_PRECONDITION", f"no trading session on or before {expiration} to expire at")
        session = sessions[-1]
        return InstructionWindow(session.day, session.close_at, session.close_at + self.cutoff)

    async def expire(self, session_date: date) -> ExpirationReport:
        """Settle every open option position expiring on or before ``session_date``
        (``Account.expire_options``, with each account's standing instructions), at the
        settlement prices market data gives (``MarketDataClient.settlement_price``).
        FAILED_PRECONDITION before the session's instruction cutoff (its close +
        ``cutoff``): the holders may still say do-not-exercise. Accounts settle one at a
        time, each in its own unit of work. Contracts whose underlying has no settlement
        price (market data has no closed session of it on or before the expiry) are left
        open and reported in ``unpriced``: one missing price never holds up the other
        accounts, and the next session's run tries them again."""
        window = await self.window(session_date)
        if self.deps.clock.now() < window.cutoff_at:
            raise DomainError(
                "FAILED_PRECONDITION",
                f"the options expiring at the close of {window.session_date} settle from "
                f"{window.cutoff_at.isoformat()}, when holders' do-not-exercise instructions are final",
            )
        async with self.deps.db.reading() as session:
            holders = await AccountRepository(session).option_holders()
        due: dict[str, dict[_Group, set[str]]] = {}
        terms: dict[str, ContractTerms] = {}
        for account_id, held in holders.items():
            for spec in map(parse_symbol, held):
                if spec.expiration is None or spec.expiration > session_date:
                    continue
                terms[spec.symbol] = contract_terms(spec)
                group = (spec.expiration, terms[spec.symbol].settlement_time == AM)
                due.setdefault(account_id, defaultdict(set))[group].add(spec.symbol)
        prices: dict[tuple[str, date, bool], Decimal] = {}
        unpriced: dict[tuple[str, date, bool], str] = {}
        for groups in due.values():
            for (expiration, am), contracts in groups.items():
                for underlying in {parse_symbol(s).underlying for s in contracts}:
                    key = (underlying, expiration, am)
                    if key in prices or key in unpriced:
                        continue
                    try:
                        prices[key] = await self.deps.market.settlement_price(underlying, expiration, am=am)
                    except DomainError as exc:
                        if exc.reason not in ("FAILED_PRECONDITION", "NOT_FOUND"):
                            raise
                        unpriced[key] = exc.message
        settled: list[Settled] = []
        shortfalls: list[str] = []
        for account_id, groups in due.items():
            async with self.deps.uow() as uow:
                repo = AccountRepository(uow.session, uow.collect)
                account = await repo.account(account_id, lock=True)
                if account is None:
                    continue
                now = self.deps.clock.now()
                instructions = await repo.instructions(account_id)
                for (expiration, am), symbols in sorted(groups.items()):
                    at_price = {u: p for (u, e, a), p in prices.items() if (e, a) == (expiration, am)}
                    priced = {s for s in symbols if parse_symbol(s).underlying in at_price}
                    if not priced:
                        continue
                    run = account.expire_options(expiration, terms, at_price, now, priced, instructions)
                    settled.extend(Settled(account_id, effect) for effect in run.effects)
                    if run.shortfall is not None:
                        shortfalls.append(f"{account_id}: {run.shortfall}")
                await repo.save(account)
        return ExpirationReport(
            tuple(settled),
            len(due),
            tuple(shortfalls),
            tuple(f"{u} expiring {e}: {why}" for (u, e, _), why in sorted(unpriced.items())),
        )

    async def exercise(self, user_id: str, symbol: str, qty: Decimal | None) -> Settled:
        """Exercise ``qty`` (default: all) long contracts of ``symbol`` now
        (``Account.exercise``'s rules and refusals): NOT_FOUND unless the account holds a
        position in it (whatever the text: an odd symbol is one nobody holds),
        INVALID_ARGUMENT for a position that is not an option."""
        now = self.deps.clock.now()
        today = now.astimezone(MARKET_TZ).date()

        def exercise(account: Account) -> Settled:
            spec = _held_symbol(symbol)
            if spec.symbol not in account.positions:
                raise not_found("position", spec.symbol)
            if not spec.is_option:
                raise invalid_argument(f"{spec.symbol} is not an option contract: only options are exercised", "symbol")
            return Settled(account.account_id, account.exercise(spec.symbol, qty, contract_terms(spec), today, now))

        return await with_account(self.deps, user_id, exercise)

    async def instruct(self, user_id: str, symbol: str, *, give: bool) -> InstructionState:
        """Give (``give``) or withdraw a do-not-exercise instruction for the caller's long
        position in ``symbol`` (``expiration.check_instruction``'s rules: FAILED_PRECONDITION
        for a short, a contract not expiring today, or after the cutoff). Idempotent: giving
        it again answers the instruction first given (even after the cutoff), withdrawing
        none answers none. NOT_FOUND without a position; INVALID_ARGUMENT for a stock."""
        spec = _held_symbol(symbol)
        if not spec.is_option or spec.expiration is None:
            window = None
        else:
            window = await self.window(spec.expiration)
        now = self.deps.clock.now()
        async with self.deps.uow() as uow:
            repo = AccountRepository(uow.session, uow.collect)
            account = await repo.account_of(user_id, lock=True)
            if account is None or spec.symbol not in account.positions:
                raise not_found("position", spec.symbol)
            if window is None:
                raise invalid_argument(
                    f"{spec.symbol} is not an option contract: instructions are for options", "symbol"
                )
            standing = await repo.instruction(account.account_id, spec.symbol)
            if give and standing is not None:
                return InstructionState(spec.symbol, Instruction(standing.instruction), window, standing.given_at)
            check_instruction(spec, account.positions[spec.symbol].qty, window, now.astimezone(MARKET_TZ).date(), now)
            if not give:
                if standing is not None:
                    await repo.remove_instruction(standing)
                    await self._audit(uow, account, spec.symbol, "withdraw_instruction", window, now)
                return InstructionState(spec.symbol, None, window, None)
            await repo.add_instruction(
                OptionInstructionRow(
                    account_id=account.account_id,
                    symbol=spec.symbol,
                    instruction=Instruction.DO_NOT_EXERCISE.value,
                    expiration=window.session_date,
                    cutoff_at=window.cutoff_at,
                    given_at=now,
                )
            )
            await self._audit(uow, account, spec.symbol, "instruct", window, now)
            return InstructionState(spec.symbol, Instruction.DO_NOT_EXERCISE, window, now)

    @staticmethod
    async def _audit(
        uow: UnitOfWork, account: Account, symbol: str, action: str, window: InstructionWindow, now: datetime
    ) -> None:
        """One audit row per instruction given (``instruct``) or withdrawn, on the position."""
        instruction = {"instruction": Instruction.DO_NOT_EXERCISE.value, "cutoff_at": window.cutoff_at.isoformat()}
        await uow.audit(
            action=action,
            entity_type="option_position",
            entity_id=symbol,
            user_id=account.user_id,
            before=instruction if action == "withdraw_instruction" else None,
            after=instruction if action == "instruct" else None,
            occurred_at=now,
        )

    async def uncarried(self, session_date: date) -> UncarriedReport:
        """The long in-the-money contracts expiring at ``session_date``'s close that each cash
        account could not carry into stock if its underlyings settled at their latest mids
        (``expiration.uncarried``; longs the holder said do-not-exercise are not counted),
        each with whether it has a bid to sell into (``carry_action``). Asked in the window
        from ``sale_lead`` before the close: FAILED_PRECONDITION before it; after the close
        nothing is listed (the expiration run leaves what is left unexercised)."""
        window = await self.window(session_date)
        now = self.deps.clock.now()
        if carry_action(now, window.close_at, self.sale_lead, True) is CarryAction.WAIT:
            raise DomainError(
                "FAILED_PRECONDITION",
                f"the pre-close sale of options expiring at {window.close_at.isoformat()} starts at "
                f"{(window.close_at - self.sale_lead).isoformat()}",
            )
        async with self.deps.db.reading() as session:
            repo = AccountRepository(session)
            holders = await repo.option_holders()
            books: list[tuple[Account, list[ExpiringPosition]]] = []
            for account_id, held in holders.items():
                expiring = [s for s in map(parse_symbol, held) if s.expiration == window.session_date]
                if not expiring:
                    continue
                account = await repo.account(account_id)
                if account is None or account.account_type is not AccountType.CASH:
                    continue
                instructions = await repo.instructions(account_id)
                positions = [
                    ExpiringPosition(
                        s,
                        account.positions[s.symbol].qty,
                        contract_terms(s).settlement_type,
                        instructions.get(s.symbol),
                    )
                    for s in expiring
                    if s.symbol in account.positions
                ]
                if any(p.qty > 0 for p in positions):
                    books.append((account, positions))
        if carry_action(now, window.close_at, self.sale_lead, True) is CarryAction.DO_NOT_EXERCISE:
            return UncarriedReport((), len(books))
        marks = await self.deps.market.latest({p.contract.underlying for _, ps in books for p in ps})
        mids = {u: (m.bid + m.ask) / 2 for u, m in marks.items() if m.bid is not None and m.ask is not None}
        found: list[tuple[Account, str, Decimal]] = []
        for account, positions in books:
            priced = [p for p in positions if p.contract.underlying in mids]
            left = uncarried(
                priced,
                mids,
                cash_free=account.cash - account.held_beyond_positions(),
                shares_free=account.shares_free(),
            )
            found.extend((account, symbol, qty) for symbol, qty in sorted(left.items()))
        bids = await self.deps.market.latest({symbol for _, symbol, _ in found})
        options = []
        for account, symbol, qty in found:
            spec = parse_symbol(symbol)
            mark = bids.get(symbol)
            has_bid = mark is not None and mark.bid is not None and mark.bid > 0
            options.append(
                Uncarried(
                    account.user_id,
                    account.account_id,
                    symbol,
                    qty,
                    carry_action(now, window.close_at, self.sale_lead, has_bid) is CarryAction.SELL_AT_MARKET,
                    sale_client_order_id(window.session_date, symbol),
                    f"{qty:f} long {symbol} in the money at {spec.underlying} {mids[spec.underlying]}: "
                    "the cash account cannot carry the stock of exercising them",
                )
            )
        return UncarriedReport(tuple(options), len(books))


def _held_symbol(symbol: str) -> SymbolSpec:
    """``symbol`` as a position's key; NOT_FOUND for text no position could have."""
    try:
        return parse_symbol(symbol)
    except DomainError:
        raise not_found("position", symbol) from None
