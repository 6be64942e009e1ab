"""What accounts does at a session's close (the jobs ``mbt.eod_mark_all``,
``mbt.credit_dividends`` and ``mbt.accrue_margin_interest`` call it over gRPC) and the
portfolio history the EOD snapshots serve. Every account's state at a moment is replayed
from its ledger (``eod.holdings_at``), so a job that runs late — the replay stepped past
several closes at once — still sees each close as it was.

* ``mark``: the day's dividends and interest are posted first (idempotent), then one snapshot
  per account, marked at the quote in force at the close: each symbol asked for once.
* ``credit_dividends``: dividends whose pay date (the ex-date when the pay date is unknown,
  as in the bundled Yahoo history) is the day; the shares held just before the ex-date's
  open get qty × amount, a short is charged the same. One ledger entry per (account, symbol,
  ex-date), posted at the day's close.
* ``accrue_interest``: a margin account's debit balance (negative cash before the close's
  postings) is charged nightly, actual/360, for the calendar days until the next session
  (Friday's night covers the weekend), one entry per (account, session), posted at the close.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import partial

from services.accounts.clients import Session
from services.accounts.domain.account import Account
from services.accounts.domain.eod import (
    HistoryPoint,
    check_timeframe,
    history,
    holdings_at,
    period_start,
    snapshot,
)
from services.accounts.domain.rules import AccountType
from services.accounts.store import AccountRepository
from services.accounts.usecases.deps import Deps
from services.common.errors import DomainError, invalid_argument, not_found
from services.common.ids import derived_id
from services.common.rpc import context

# How far before its pay date a dividend's ex-date may be.
PAY_DATE_LOOKBACK = timedelta(days=120)
# Sessions looked ahead for the next one (interest's day count).
NEXT_SESSION_LOOKAHEAD = timedelta(days=10)


@dataclass(frozen=True)
class MarkResult:
    accounts: int
    created: int
    symbols: list[str]
    total_equity: Decimal


@dataclass(frozen=True)
class PostingResult:
    """What a posting run did: ``items`` dividends paid (or days of interest), ``posted``
    entries written by this run, ``total`` their signed sum."""

    items: int
    posted: int
    total: Decimal


@dataclass(frozen=True)
class PortfolioHistoryReport:
    base_value: Decimal
    timeframe: str
    points: list[HistoryPoint]


class EndOfDay:
    def __init__(self, deps: Deps, margin_rate_bps: int) -> None:
        self.deps = deps
        self.margin_rate_bps = margin_rate_bps

    async def _closed_session(self, day: date | None) -> Session:
        """The session of ``day``: invalid_argument when there is none, failed_precondition
        while it has not closed yet on the market clock."""
        if day is None:
            raise invalid_argument("session_date is required", "session_date")
        sessions = await self.deps.market.sessions(day, day)
        if not sessions:
            raise invalid_argument(f"{day} is not an XNYS trading day", "session_date")
        if sessions[0].close_at > self.deps.clock.now():
            raise DomainError("FAILED_PRECONDITION", f"the session of {day} has not closed yet")
        return sessions[0]

    async def mark(self, day: date | None) -> MarkResult:
        """One snapshot per account opened by the close (each written once: a repeat writes none)."""
        session = await self._closed_session(day)
        await self.credit_dividends(session.day)
        await self.accrue_interest(session.day)
        async with self.deps.db.reading() as reading:
            repo = AccountRepository(reading)
            accounts = [row.account_id for row in await repo.account_rows(opened_by=session.close_at)]
            ledgers = await repo.ledgers(session.close_at)
        holdings = {account: holdings_at(ledgers.get(account, []), session.close_at) for account in accounts}
        symbols = sorted({symbol for held in holdings.values() for symbol in held.positions})
        marks = await self.deps.market.at(set(symbols), session.close_at)
        snapshots = {account: snapshot(held, marks) for account, held in holdings.items()}
        created = 0
        async with self.deps.uow() as uow:
            repo = AccountRepository(uow.session, uow.collect)
            done = await repo.snapshot_accounts(session.day)
            now = self.deps.clock.now()
            for account, value in snapshots.items():
                if account not in done:
                    repo.add_snapshot(account, session.day, session.close_at, value, now)
                    created += 1
        total = sum((value.equity for value in snapshots.values()), Decimal(0))
        return MarkResult(len(snapshots), created, symbols, total)

    async def credit_dividends(self, day: date | None) -> PostingResult:
        session = await self._closed_session(day)
        async with self.deps.db.reading() as reading:
            repo = AccountRepository(reading)
            accounts = [row.account_id for row in await repo.account_rows(opened_by=session.close_at)]
            ledgers = await repo.ledgers(session.close_at)
        stocks = {
            entry.symbol
            for entries in ledgers.values()
            for entry in entries
            if entry.kind == "fill" and entry.multiplier == 1 and not entry.symbol.startswith("^")
        }
        due = [
            dividend
            for dividend in await self.deps.market.dividends(stocks, session.day - PAY_DATE_LOOKBACK, session.day)
            if (dividend.pay_date or dividend.ex_date) == session.day
        ]
        posted, total = 0, Decimal(0)
        for dividend in due:
            ex_sessions = await self.deps.market.sessions(dividend.ex_date, dividend.ex_date + NEXT_SESSION_LOOKAHEAD)
            ex_open = ex_sessions[0].open_at if ex_sessions else session.open_at
            for account in accounts:
                position = holdings_at(ledgers.get(account, []), ex_open, inclusive=False).positions.get(
                    dividend.symbol
                )
                if position is None:
                    continue
                entry_id = derived_id("led", "dividend", account, dividend.symbol, dividend.ex_date.isoformat())
                paid = await self._post(
                    account,
                    entry_id,
                    partial(
                        Account.post_dividend,
                        entry_id=entry_id,
                        symbol=dividend.symbol,
                        ex_date=dividend.ex_date,
                        pay_date=session.day,
                        qty=position.qty,
                        cash_amount=dividend.cash_amount,
                        at=session.close_at,
                    ),
                )
                if paid is not None:
                    posted, total = posted + 1, total + paid
        return PostingResult(len(due), posted, total)

    async def accrue_interest(self, day: date | None) -> PostingResult:
        session = await self._closed_session(day)
        following = await self.deps.market.sessions(
            session.day + timedelta(days=1), session.day + NEXT_SESSION_LOOKAHEAD
        )
        days = (following[0].day - session.day).days if following else 1
        async with self.deps.db.reading() as reading:
            repo = AccountRepository(reading)
            accounts = [
                row.account_id
                for row in await repo.account_rows(opened_by=session.close_at)
                if row.account_type == AccountType.MARGIN.value
            ]
            ledgers = await repo.ledgers(session.close_at)
        posted, total = 0, Decimal(0)
        for account in accounts:
            cash = holdings_at(ledgers.get(account, []), session.close_at, inclusive=False).cash
            if cash >= 0:
                continue
            entry_id = derived_id("led", "interest", account, session.day.isoformat())
            charged = await self._post(
                account,
                entry_id,
                partial(
                    Account.charge_interest,
                    entry_id=entry_id,
                    session_date=session.day,
                    debit_balance=-cash,
                    rate_bps=self.margin_rate_bps,
                    days=days,
                    at=session.close_at,
                ),
            )
            if charged:
                posted, total = posted + 1, total + charged
        return PostingResult(days, posted, total)

    async def _post(self, account_id: str, entry_id: str, change: Callable[[Account], Decimal]) -> Decimal | None:
        """Run ``change`` on the locked account unless ``entry_id`` is already in its ledger
        (None then); one unit of work."""
        async with self.deps.uow() as uow:
            repo = AccountRepository(uow.session, uow.collect)
            account = await repo.account(account_id, lock=True)
            if account is None or await repo.entry_exists(entry_id):
                return None
            result = change(account)
            await repo.save(account)
            return result

    async def portfolio_history(self, user_id: str, period: str, timeframe: str) -> PortfolioHistoryReport:
        """The user's equity at each session close of ``period`` (ending today, simulated)."""
        timeframe = check_timeframe(timeframe)
        since = period_start(period, self.deps.clock.now().date())
        async with self.deps.db.reading() as reading:
            repo = AccountRepository(reading)
            account = await repo.account_of(user_id)
            if account is None:
                if context.identity().kind == "ops":
                    raise not_found("account of user", user_id)
                return PortfolioHistoryReport(Decimal(0), timeframe, [])
            rows = await repo.snapshots(account.account_id, since=since)
            before = await repo.snapshot_before(account.account_id, since) if since is not None else None
        base = before.equity if before is not None else account.starting_cash
        return PortfolioHistoryReport(base, timeframe, history(base, [(row.closed_at, row.equity) for row in rows]))
