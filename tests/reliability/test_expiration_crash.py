"""SIGKILL accounts (one case) or orders (the other) while the expiration run of Friday
2012-06-22 settles a book of option positions, let the supervisor restart it, and check that
no exercise or assignment is applied twice or lost.

The whole system runs as ``python -m services.run`` (every service, the jobs' worker and
scheduler, the gateway; SQLite files and the embedded transport, or PostgreSQL and Redis) on
a stepped replay of the bundled AMZN day. Just before Thursday's close each user opens,
through real orders, one kind of book on contracts expiring Friday: a cash-secured put in
the money (assigned), a covered call in the money (called away), a long call in the money
the account can pay for (exercised), or long puts out of the money (expired worthless); the
last two also have a working sell order on their contracts (expired by orders at the
contract's last close). Then the replay steps past Friday's close and the do-not-exercise
cutoff: the scheduler offers ``mbt.expire_options``, whose run settles one account per unit
of work; the test watches accounts' positions and kills the service once some accounts have
settled and others not. The recovery path is the job's: its attempts are retried while
accounts restarts (UNAVAILABLE), and a retry whose message never arrives is sent again by the
scheduler's sweep. Killing orders leaves the run going; orders comes back to expire what is
left of the working orders and relay its events.

Then, from the outside: one ``expiration`` activity per contract and account with the
outcome the close decides; cash and positions recompute from fills + settlements
(``ledger_check``); the working orders expired with ``contract_expired``; one audit row per
exercise, assignment and expiry; and the run asked again settles nothing and changes
nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import grpc
import httpx
import pytest
from sqlalchemy import select

from mbt.accounts.v1 import accounts_pb2
from mbt.activities.v1 import activities_pb2
from mbt.orders.v1 import orders_pb2
from services.accounts.store import PositionRow
from services.common.config import SERVICES
from services.common.instruments import CALL, parse_symbol
from services.common.persistence.db import BlockingDatabase
from services.common.wire.conv import to_date
from services.jobs.records import JobRecords, JobRun
from tests.support.databases import REDIS_URL
from tests.support.identity import BULK_TIER, as_service, as_user, rest_headers
from tests.support.ledger_check import assert_ledger_consistent
from tests.support.mesh import free_port
from tests.support.redis_keys import fresh_prefix
from tests.support.trading import Trading, eventually

ROOT = Path(__file__).resolve().parents[2]
D = Decimal
JOB = "mbt.expire_options"
FRIDAY = date(2012, 6, 22)
# Past the close (20:00 UTC) and the do-not-exercise cutoff 90 minutes later: the run is due.
AFTER_THE_CUTOFF = datetime(2012, 6, 22, 21, 35, tzinfo=UTC)
EXPIRING = "AMZN120622"

# Ten minutes before Thursday's close: Friday's contracts out of the money still have a bid
# (the 220 put 0.15 / 0.16, AMZN 220.87 / 220.99), and the step to Friday's cutoff replays
# little more than Friday's session. The replay repeats the recorded day, so Friday's
# official close is the recording's, 220.51.
START = datetime(2012, 6, 21, 19, 50, tzinfo=UTC)
ITM_PUT, ITM_CALL, DEEP_CALL, OTM_PUT = (
    "AMZN120622P00230000",
    "AMZN120622C00210000",
    "AMZN120622C00200000",
    "AMZN120622P00220000",
)
# Each kind of book, as the orders opening it: (symbol, side, qty), in that order.
BOOKS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "put-writer": ((ITM_PUT, "sell", 1),),  # assigned: 100 shares bought at 230
    "covered": (("AMZN", "buy", 200), (ITM_CALL, "sell", 2)),  # called away: 200 shares sold at 210
    "caller": ((DEEP_CALL, "buy", 1),),  # exercised: 100 shares bought at 200
    "otm": ((OTM_PUT, "buy", 2),),  # expired worthless
}
# A working gtc sell of one long contract, far above its bid: it cannot fill before the
# contract's last close, where orders expires it.
WORKING = {"caller": (DEEP_CALL, "100.00"), "otm": (OTM_PUT, "50.00")}
USERS_PER_BOOK = 4
USERS = [f"{book}-{n}" for n in range(USERS_PER_BOOK) for book in BOOKS]


def book_of(user: str) -> str:
    return user.rsplit("-", 1)[0]


@dataclass(frozen=True)
class System:
    """``python -m services.run`` and what the test reaches it by."""

    process: subprocess.Popen
    env: dict[str, str]
    var: Path

    def target(self, service: str) -> str:  # what Trading asks its mesh
        return f"127.0.0.1:{self.env[f'MBT_{service.upper()}_PORT']}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['MBT_GATEWAY_PORT']}"

    def supervisor_log(self) -> str:
        return (self.var.parent / "run.out").read_text(errors="replace")


@pytest.fixture
async def system(databases, tmp_path):
    var = tmp_path / "var"
    env = {
        **os.environ,
        "MBT_DATA_DIR": str(var),
        "MBT_GATEWAY_PORT": str(free_port()),
        "MBT_REPLAY_MODE": "stepped",
        "MBT_REPLAY_START": START.isoformat(),
        "MBT_LOG_LEVEL": "INFO",  # var/log/ tells what each process did when a run goes wrong
        # A job whose retry message is lost is sent again by the scheduler's sweep this long
        # after it was due (wall seconds; 300 by default).
        "MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS": "3",
        "MBT_JOBS_DATABASE_URL": databases.new("jobs"),
    }
    for name in SERVICES:
        env[f"MBT_{name.upper()}_PORT"] = str(free_port())
        if name != "matcher":
            env[f"MBT_{name.upper()}_DATABASE_URL"] = databases.new(name)
    async with AsyncExitStack() as stack:
        if databases.backend == "postgres" and REDIS_URL:  # the production shape: jobs on a Redis broker
            env.update(MBT_REDIS_URL=REDIS_URL, MBT_REDIS_KEY_PREFIX=await stack.enter_async_context(fresh_prefix()))
        with open(tmp_path / "run.out", "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "services.run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            yield System(process, env, var)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()


def expiring_positions(db: BlockingDatabase) -> list[str]:
    """The accounts of the open positions in contracts expiring Friday, one entry a position
    (accounts' own rows: the run settles each account in one transaction)."""
    with db.snapshot() as session:
        rows = session.execute(
            select(PositionRow.account_id).where(
                PositionRow.closed_at.is_(None), PositionRow.symbol.like(f"{EXPIRING}%")
            )
        )
        return list(rows.scalars())


def kill_mid_run(system: System, service: str, holders: int, timeout: float = 120) -> tuple[int, int]:
    """Watch the run settle accounts; SIGKILL ``service`` (by its pid file) once a quarter of
    the ``holders`` have settled. Returns (accounts, positions) still open once the killed
    process is gone. Blocking: run it off the event loop."""
    db = BlockingDatabase(system.env["MBT_ACCOUNTS_DATABASE_URL"])
    try:
        deadline = time.monotonic() + timeout
        while len(set(expiring_positions(db))) > holders - holders // 4:
            assert time.monotonic() < deadline, "the expiration run did not start"
            time.sleep(0.005)
        pid = int((system.var / "run" / f"{service}.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):  # (until the supervisor reaps it)
            time.sleep(0.01)
        left = expiring_positions(db)
        return len(set(left)), len(left)
    finally:
        db.dispose()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def job_run(system: System) -> JobRun | None:
    records = JobRecords(BlockingDatabase(system.env["MBT_JOBS_DATABASE_URL"]))
    try:
        return records.get(JOB, FRIDAY.isoformat())
    finally:
        records.db.dispose()


async def rest(client: httpx.AsyncClient, method: str, path: str, user: str, **kwargs) -> dict | list:
    response = await client.request(method, path, headers=rest_headers(user, BULK_TIER), **kwargs)
    assert response.status_code == 200, response.text  # a restarting service answers 503: ask again
    return response.json()["data"]


async def position_opened(client: httpx.AsyncClient, user: str, symbol: str, side: str, qty: int) -> None:
    """A market order of ``qty`` ``symbol``, once filled and applied by accounts (the next
    order of the book may need it: a covered call its shares)."""
    await rest(
        client,
        "POST",
        "/api/mbt/orders",
        user,
        json={"symbol": symbol, "side": side, "qty": str(qty), "order_type": "market", "time_in_force": "day"},
    )

    async def applied():
        position = await rest(client, "GET", f"/api/mbt/positions/{symbol}", user)
        assert D(position["qty"]) == (qty if side == "buy" else -qty), position

    await eventually(applied, timeout=60)


async def open_book(client: httpx.AsyncClient, user: str) -> str | None:
    """``user``'s book, filled, and its working order if it has one (that order's id)."""
    for symbol, side, qty in BOOKS[book_of(user)]:
        await position_opened(client, user, symbol, side, qty)
    if book_of(user) not in WORKING:
        return None
    symbol, limit = WORKING[book_of(user)]
    working = await rest(
        client,
        "POST",
        "/api/mbt/orders",
        user,
        json={"symbol": symbol, "side": "sell", "qty": "1", "order_type": "limit"}
        | {"limit_price": limit, "time_in_force": "gtc"},
    )
    assert working["status"] == "accepted", working
    return working["order_id"]


def outcome(symbol: str, qty: int, close: Decimal) -> tuple[str, str]:
    """(activity subtype, audit action) of ``qty`` contracts of ``symbol`` at ``close``."""
    spec = parse_symbol(symbol)
    assert spec.strike is not None
    moneyness = close - spec.strike if spec.option_type == CALL else spec.strike - close
    if moneyness < D("0.01"):
        return "expired_worthless", "expire"
    return ("exercised", "exercise") if qty > 0 else ("assigned", "assign")


def expected_settlements(user: str, close: Decimal) -> dict[str, tuple[str, str]]:
    return {
        symbol: outcome(symbol, qty if side == "buy" else -qty, close)
        for symbol, side, qty in BOOKS[book_of(user)]
        if symbol.startswith(EXPIRING)
    }


async def expirations(trading: Trading, user: str) -> list:
    reply = await trading.activities().ListActivities(
        activities_pb2.ListActivitiesRequest(activity_type=activities_pb2.ACTIVITY_TYPE_EXPIRATION, page_size=200),
        metadata=as_user(user, BULK_TIER),
    )
    return list(reply.activities)


async def settlement_audit(trading: Trading, user: str) -> Counter:
    return Counter(
        (e.record.entity_id, e.record.action)
        for e in await trading.audit(user_id=user)
        if e.record.entity_type == "option_position"
    )


async def snapshot(trading: Trading, user: str) -> tuple:
    """Everything a second run could change of ``user``: cash, positions, activities, audit."""
    metadata = as_user(user, BULK_TIER)
    account = (await trading.accounts().GetAccount(accounts_pb2.GetAccountRequest(), metadata=metadata)).account
    positions = (
        await trading.accounts().ListPositions(accounts_pb2.ListPositionsRequest(), metadata=metadata)
    ).positions
    activities = (
        await trading.activities().ListActivities(
            activities_pb2.ListActivitiesRequest(page_size=200), metadata=metadata
        )
    ).activities
    return (
        account.cash,
        account.reserved,
        sorted((p.symbol, p.qty) for p in positions),
        sorted(a.activity_id for a in activities),
        len(await trading.audit(user_id=user)),
    )


async def settled_once(trading: Trading, user: str, close: Decimal) -> None:
    """One expiration activity and one audit row per contract, with the close's outcome, and
    the ledger recomputing from fills + settlements. A service still restarting (UNAVAILABLE)
    is a check to make again, as a mismatch is."""
    try:
        await _settled_once(trading, user, close)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() != grpc.StatusCode.UNAVAILABLE, exc.details()
        raise


async def _settled_once(trading: Trading, user: str, close: Decimal) -> None:
    expected = expected_settlements(user, close)
    rows = await expirations(trading, user)
    assert sorted((r.symbol, r.subtype) for r in rows) == sorted((s, sub) for s, (sub, _) in expected.items()), (
        user,
        rows,
    )
    assert await settlement_audit(trading, user) == Counter((s, action) for s, (_, action) in expected.items())
    state = await assert_ledger_consistent(trading, user)
    assert not [symbol for symbol in state.positions if symbol.startswith(EXPIRING)], (user, state.positions)


@pytest.mark.parametrize("killed", ["accounts", "orders"])
async def test_sigkill_during_the_expiration_run_settles_every_contract_once(system, killed):
    await eventually(lambda: _all_up(system), timeout=120, interval=0.5)
    trading = Trading(system)  # System answers target() as a Mesh does
    try:
        async with httpx.AsyncClient(base_url=system.url, timeout=30) as client:
            opened = await asyncio.gather(*(open_book(client, user) for user in USERS))
            working = {user: order_id for user, order_id in zip(USERS, opened, strict=True) if order_id}
            assert len(working) == len(WORKING) * USERS_PER_BOOK

            await trading.step_to(AFTER_THE_CUTOFF)  # the scheduler offers the run once the clock passes the cutoff
            accounts_left, positions_left = await asyncio.to_thread(kill_mid_run, system, killed, len(USERS))
            if killed == "accounts":
                assert 0 < accounts_left < len(USERS), accounts_left  # caught mid-way, by design

            async def run_done():
                run = await asyncio.to_thread(job_run, system)
                assert run is not None and run.state == "done", run
                return run

            run = await eventually(run_done, timeout=180, interval=0.5)
            if killed == "accounts":
                # The attempt cut short was retried, and the retry settled what it had left.
                assert run.attempts >= 2 and run.result["settled"] == positions_left, (run, positions_left)
            assert f"{killed} died with exit code -9" in system.supervisor_log()

            bars = await rest(
                client,
                "GET",
                "/api/mbt/bars/AMZN",
                USERS[0],
                params={"timeframe": "1Day"} | {"from": "2012-06-22T00:00:00Z"},
            )
            close = D(bars[-1]["close"])
            assert D(220) < close < D(230)  # the books' outcomes are those their comments say
            outcomes = Counter(sub for user in USERS for sub, _ in expected_settlements(user, close).values())
            assert outcomes == {"assigned": 2 * USERS_PER_BOOK, "exercised": USERS_PER_BOOK} | {
                "expired_worthless": USERS_PER_BOOK
            }

            for user in USERS:
                await eventually(lambda user=user: settled_once(trading, user, close), timeout=120, interval=0.5)
            for user, order_id in working.items():
                order = (
                    await trading.orders().GetOrder(
                        orders_pb2.GetOrderRequest(order_id=order_id), metadata=as_user(user, BULK_TIER)
                    )
                ).order
                assert (order.status, order.cancel_reason) == (orders_pb2.ORDER_STATUS_EXPIRED, "contract_expired")
                actions = [e.record.action for e in await trading.audit(entity_id=order_id)]
                assert actions.count("expire") == 1, actions

            before = [await snapshot(trading, user) for user in USERS]
            again = await trading.accounts().ExpireOptions(
                accounts_pb2.ExpireOptionsRequest(session_date=to_date(FRIDAY)), metadata=as_service("jobs")
            )
            assert list(again.settlements) == [] and list(again.shortfalls) == []
            assert [await snapshot(trading, user) for user in USERS] == before
    finally:
        await trading.close()


async def _all_up(system: System) -> None:
    assert system.process.poll() is None, system.supervisor_log()
    assert "all up" in system.supervisor_log()
