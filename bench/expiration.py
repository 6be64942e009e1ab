"""Expiration run time: the accounts service's ExpireOptions use case
(``usecases.expiration.Expiration.expire``) settling 10,000 open AMZN option positions of
one expiry, on SQLite and (with ``MBT_TEST_DATABASE_URL``) on PostgreSQL.

The store is the accounts service's own, migrated to head, and seeded outside the timed part
by bulk inserts of valid rows (``seed``): per account a user, the account, its opening
deposit and one ledger ``fill`` entry per position, and the open positions, so cash is the
ledger's sum and every position replays from its fill. Four accounts in five are cash
accounts holding 4 longs (2 calls, 2 puts), 3 covered calls (100 AMZN shares held per
contract) and 3 cash-secured puts (strike x 100 in cash each), with cash for exercising
their long calls; the fifth is a margin account with 10 long or short contracts. Strikes
run from 200 to 240 around a settlement price of 220.00, so about half the positions are in
the money.

Market data is a fake answering the XNYS sessions and that settlement price; the clock
stands past the session's do-not-exercise cutoff. Each run settles a freshly seeded store."""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

import exchange_calendars
from sqlalchemy import create_engine, insert

from bench.report import Figure, machine
from services.accounts.clients import Session
from services.accounts.domain.rules import AccountType, Profile
from services.accounts.events import publish
from services.accounts.store import OUTBOX, SERVICE, AccountRow, LedgerEntryRow, PositionRow, UserRow
from services.accounts.usecases.deps import Deps
from services.accounts.usecases.expiration import Expiration, ExpirationReport
from services.common.clock import ManualClock
from services.common.config import Settings
from services.common.instruments import CALL, PUT, occ_symbol
from services.common.messaging.outbox import Outbox
from services.common.persistence import migrate
from services.common.persistence.db import Database, normalize_url
from services.common.persistence.uow import unit_of_work
from tests.support.databases import POSTGRES_URL, DatabaseFactory

POSITIONS = 10_000
PER_ACCOUNT = 10
# A PostgreSQL run takes about 4-5 minutes on 2 cores (SQLite about 2): one run there.
RUNS = {"sqlite": 3, "postgres": 1}
SEED = 20120622
UNDERLYING = "AMZN"
EXPIRY = date(2012, 6, 22)
SETTLEMENT = Decimal("220.00")
STRIKES = tuple(Decimal(strike) for strike in range(200, 245, 5))
CONTRACT = Decimal(100)
OPENED_AT = datetime(2012, 6, 18, 15, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Measured:
    seconds: float
    report: ExpirationReport
    seeded: int  # option positions seeded


def run() -> list[Figure]:
    backends = ["sqlite", *(["postgres"] if POSTGRES_URL else [])]
    figures = []
    for backend in backends:
        runs = [measure(backend, POSITIONS, SEED) for _ in range(RUNS[backend])]
        seconds = statistics.median(m.seconds for m in runs)
        report = runs[0].report
        outcomes = Counter(s.effect.outcome.value for s in report.settled)
        config = (
            f"{backend}; {runs[0].seeded:,} AMZN positions expiring {EXPIRY} in {report.accounts:,} accounts "
            f"(4/5 cash: longs, covered calls, cash-secured puts; 1/5 margin), settled at {SETTLEMENT} in "
            f"{len(report.settled):,} effects (a long a cash account cannot carry in full splits in two): "
            f"{dict(sorted(outcomes.items()))}; seeded by bulk inserts of valid rows; "
            f"{'one run (each takes minutes)' if len(runs) == 1 else f'{len(runs)} runs'}; {machine()}"
        )
        figures.append(Figure(f"ExpireOptions, {backend}", seconds, "s", len(runs), config))
        figures.append(
            Figure(f"ExpireOptions, {backend}: positions/s", runs[0].seeded / seconds, "positions/s", len(runs), config)
        )
    return figures


def measure(backend: str, positions: int, seed: int) -> Measured:
    """A fresh store of ``backend`` seeded with ``positions`` option positions, then one timed
    ``Expiration.expire`` of the expiry's session; the store is dropped afterwards."""
    with tempfile.TemporaryDirectory() as directory:
        factory = DatabaseFactory(backend, Path(directory))
        try:
            url = factory.new("bench_expiration")
            migrate.upgrade(SERVICE, url)
            seeded = seed_positions(url, positions, random.Random(seed))
            seconds, report = asyncio.run(expire(url))
            return Measured(seconds, report, len(seeded))
        finally:
            factory.drop_all()


async def expire(url: str) -> tuple[float, ExpirationReport]:
    """One ``Expiration.expire`` of ``EXPIRY``'s session on the accounts store at ``url``, as
    the service runs it after the do-not-exercise cutoff: (seconds it took, its report)."""
    settings = Settings.from_env({})
    market = FakeMarket()
    [session] = await market.sessions(EXPIRY, EXPIRY)
    cutoff = timedelta(minutes=settings.do_not_exercise_cutoff_minutes)
    clock = ManualClock(session.close_at + cutoff)
    db = Database(url)
    try:
        deps = Deps(
            db=db,
            uow=partial(unit_of_work, db, Outbox(SERVICE, OUTBOX, clock), publish),
            clock=clock,
            market=market,  # type: ignore[arg-type]  # the fake answers what expire asks
            user_key=b"bench-expiration",
        )
        expiration = Expiration(
            deps, cutoff=cutoff, sale_lead=timedelta(minutes=settings.option_pre_close_sale_minutes)
        )
        started = time.perf_counter()
        report = await expiration.expire(EXPIRY)
        return time.perf_counter() - started, report
    finally:
        await db.aclose()


def seed_positions(url: str, positions: int, rng: random.Random) -> dict[tuple[str, str], Decimal]:
    """Insert accounts holding ``positions`` option positions (``PER_ACCOUNT`` each, the last
    account the rest) expiring on ``EXPIRY``; returns their signed quantities by (account id,
    contract symbol)."""
    rows: dict[type, list[dict]] = {UserRow: [], AccountRow: [], LedgerEntryRow: [], PositionRow: []}
    n = 0
    while positions > 0:
        size = min(PER_ACCOUNT, positions)
        margin = n % 5 == 4
        book = _margin_book(size, rng) if margin else _cash_book(size, rng)
        _account_rows(rows, f"acct_bench{n:06d}", f"bench-expiry-{n:06d}", book, margin)
        positions -= size
        n += 1
    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as connection:
            for table, values in rows.items():
                connection.execute(insert(table), values)
    finally:
        engine.dispose()
    return {(p["account_id"], p["symbol"]): p["qty"] for p in rows[PositionRow] if p["symbol"] != UNDERLYING}


# (symbol, signed qty, price per share, multiplier)
_Holding = tuple[str, Decimal, Decimal, Decimal]


def _contract(kind: str, strike: Decimal) -> str:
    return occ_symbol(UNDERLYING, EXPIRY, kind, strike)


def _premium(kind: str, strike: Decimal) -> Decimal:
    """A plausible entry price: intrinsic at the settlement price plus a dollar."""
    intrinsic = SETTLEMENT - strike if kind == CALL else strike - SETTLEMENT
    return max(intrinsic, Decimal(0)) + 1


def _cash_book(size: int, rng: random.Random) -> list[_Holding]:
    """Up to 2 long calls, 2 long puts, 3 covered calls and 3 cash-secured puts (``size``
    of them, in that order), each on its own contract, plus the shares the calls cover."""
    calls = rng.sample(STRIKES, 5)
    puts = rng.sample(STRIKES, 5)
    plan = [(CALL, calls[0], 1), (CALL, calls[1], 1), (PUT, puts[0], 1), (PUT, puts[1], 1)]
    plan += [(CALL, strike, -1) for strike in calls[2:]] + [(PUT, strike, -1) for strike in puts[2:]]
    book: list[_Holding] = []
    covered = Decimal(0)
    for kind, strike, sign in plan[:size]:
        qty = Decimal(rng.randint(1, 3)) * sign
        book.append((_contract(kind, strike), qty, _premium(kind, strike), CONTRACT))
        if kind == CALL and sign < 0:
            covered -= qty
    if covered:
        book.append((UNDERLYING, covered * CONTRACT, Decimal("215.00"), Decimal(1)))
    return book


def _margin_book(size: int, rng: random.Random) -> list[_Holding]:
    contracts = rng.sample([(kind, strike) for kind in (CALL, PUT) for strike in STRIKES], size)
    return [
        (_contract(kind, strike), Decimal(rng.choice((-3, -2, -1, 1, 2, 3))), _premium(kind, strike), CONTRACT)
        for kind, strike in contracts
    ]


def _account_rows(
    rows: dict[type, list[dict]], account_id: str, user_id: str, book: list[_Holding], margin: bool
) -> None:
    """The account's rows: its opening deposit covers what its book paid for, secures and
    may exercise (cash accounts: each short put's and long call's strike x 100), so its cash
    never goes below zero."""
    paid = sum((qty * price * multiplier for _, qty, price, multiplier in book), Decimal(0))
    secured = sum(
        (_strike(symbol) * abs(qty) * multiplier for symbol, qty, _, multiplier in book if symbol != UNDERLYING),
        Decimal(0),
    )
    starting = max(paid, Decimal(0)) + secured + 10_000
    at = OPENED_AT
    profile = Profile.DIVERSIFIER.value
    rows[UserRow].append(
        {
            "user_id": user_id,
            "tier": "pro_plus",
            "investor_profile": profile,
            "starting_cash": starting,
            "created_at": at,
            "updated_at": at,
        }
    )
    cash = starting
    ledger = [_entry(account_id, "opening", "", "", Decimal(0), Decimal(0), Decimal(1), starting, cash, at)]
    for index, (symbol, qty, price, multiplier) in enumerate(book):
        delta = -qty * price * multiplier
        cash += delta
        side = "buy" if qty > 0 else "sell"
        ledger.append(
            _entry(
                account_id, "fill", symbol, side, abs(qty), price, multiplier, delta, cash, at, f"{account_id}.{index}"
            )
        )
        rows[PositionRow].append(
            {
                "position_id": f"pos_{account_id}.{index}",
                "account_id": account_id,
                "symbol": symbol,
                "asset_class": "us_equity" if symbol == UNDERLYING else "us_option",
                "qty": qty,
                "multiplier": multiplier,
                "avg_entry_price": price,
                "realized_pl": Decimal(0),
                "opened_at": at,
                "closed_at": None,
                "updated_at": at,
            }
        )
    rows[AccountRow].append(
        {
            "account_id": account_id,
            "user_id": user_id,
            "account_type": (AccountType.MARGIN if margin else AccountType.CASH).value,
            "status": "active",
            "currency": "USD",
            "investor_profile": profile,
            "starting_cash": starting,
            "cash": cash,
            "version": len(book),
            "created_at": at,
            "updated_at": at,
        }
    )
    for sequence, entry in enumerate(ledger, start=1):  # the order the ledger applied them in
        entry["sequence"] = sequence
    rows[LedgerEntryRow].extend(ledger)


def _strike(symbol: str) -> Decimal:
    return Decimal(symbol[-8:]) / 1000


def _entry(
    account_id: str,
    kind: str,
    symbol: str,
    side: str,
    qty: Decimal,
    price: Decimal,
    multiplier: Decimal,
    delta: Decimal,
    cash_after: Decimal,
    at: datetime,
    fill_id: str | None = None,
) -> dict:
    return {
        "entry_id": f"led_{fill_id or account_id}",
        "account_id": account_id,
        "kind": kind,
        "fill_id": fill_id,
        "order_id": None if fill_id is None else f"ord_{fill_id}",
        "symbol": symbol,
        "side": side,
        "qty": qty,
        "price": price,
        "multiplier": multiplier,
        "cash_delta": delta,
        "realized_pl": Decimal(0),
        "cash_after": cash_after,
        "occurred_at": at,
    }


class FakeMarket:
    """Market data as ``Expiration.expire`` asks it: the XNYS sessions and the expiry's
    settlement price of AMZN."""

    async def sessions(self, first: date, last: date) -> list[Session]:
        calendar = exchange_calendars.get_calendar("XNYS", start=f"{first.year}-01-01", end=f"{last.year}-12-31")
        return [
            Session(day.date(), calendar.session_open(day).to_pydatetime(), calendar.session_close(day).to_pydatetime())
            for day in calendar.sessions_in_range(first.isoformat(), last.isoformat())
        ]

    async def settlement_price(self, underlying: str, expiration: date, *, am: bool) -> Decimal:
        if underlying != UNDERLYING or expiration != EXPIRY or am:
            raise AssertionError(f"no settlement price of {underlying} on {expiration} (am={am}) in this benchmark")
        return SETTLEMENT
