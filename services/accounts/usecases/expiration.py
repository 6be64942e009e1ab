"""Expiration, exercise and assignment (DESIGN §7, issue 11): after a session's close every
account holding contracts that expire then settles them at the underlying's official
closing price (``ExpireOptions``, run by the ``mbt.expire_options`` job), one unit of work
per account; a holder exercises a long American option early (``ExerciseOption``).

Idempotent per (account, contract, session): a settled position is closed, so a repeat
finds nothing to settle, and each ledger movement has an id derived from those terms (the
ledger's unique fill id refuses a second one)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.accounts.domain.account import Account
from services.accounts.domain.expiration import ExpirationEffect
from services.accounts.store import AccountRepository
from services.accounts.usecases.deps import Deps, with_account
from services.common.errors import DomainError, invalid_argument, not_found
from services.common.instruments import AM, ContractTerms, contract_terms, parse_symbol

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


# (expiration date, AM-settled): the options that settle at one price per underlying.
_Group = tuple[date, bool]


class Expiration:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def expire(self, session_date: date) -> ExpirationReport:
        """Settle every open option position expiring on or before ``session_date``
        (``Account.expire_options``), at the settlement prices market data gives
        (``MarketDataClient.settlement_price``). Accounts settle one at a time, each in its
        own unit of work. Contracts whose underlying has no settlement price (market data
        has no closed session of it on or before the expiry) are left open and reported in
        ``unpriced``: one missing price never holds up the other accounts, and the next
        session's run tries them again."""
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
                for (expiration, am), symbols in sorted(groups.items()):
                    at_price = {u: p for (u, e, a), p in prices.items() if (e, a) == (expiration, am)}
                    priced = {s for s in symbols if parse_symbol(s).underlying in at_price}
                    if not priced:
                        continue
                    run = account.expire_options(expiration, terms, at_price, now, priced)
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
            try:
                spec = parse_symbol(symbol)
            except DomainError:
                raise not_found("position", symbol) from None
            if spec.symbol not in account.positions:
                raise not_found("position", spec.symbol)
            if not spec.is_option:
                raise invalid_argument(f"{spec.symbol} is not an option contract: only options are exercised", "symbol")
            return Settled(account.account_id, account.exercise(spec.symbol, qty, contract_terms(spec), today, now))

        return await with_account(self.deps, user_id, exercise)
