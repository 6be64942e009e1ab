"""The money jobs on the market clock, through the real scheduler and worker processes and
the whole mesh (both database backends): stepping the replay over two closes runs two EODs
whose snapshots hold equity = cash + positions marked at the closing quotes, to the cent, and
portfolio history answers them (REST and gRPC); a margin debit is charged a night's interest,
actual/360, each charge an activity with its teaching card as long as the investor profile
wants it; a replay that starts the day before a real ex-date of the bundled dividend file
pays the holder at the ex-date's open and charges the short seller, and nobody else.
Every expected figure is computed here from the recording and the fills."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest

from mbt.accounts.v1 import accounts_pb2
from services.common.config import Settings
from services.common.wire.conv import from_timestamp
from tests.e2e.test_accounts import market, update_user
from tests.support import recording
from tests.support.identity import as_user
from tests.support.jobs import JobsProcesses
from tests.support.mesh import start_mesh
from tests.support.money_jobs import (
    AAPL_DIVIDEND,
    EX_DATE_CLOSE,
    EX_DATE_OPEN,
    ex_date_environ,
    snapshots,
)
from tests.support.trading import CLOSE, Trading, account_when, eventually, ns, rest_as, trading_environ

D = Decimal
RATE_BPS = 800
SECOND_CLOSE = datetime(2012, 6, 22, 20, 0, tzinfo=UTC)
MARGIN = {  # user: (profile, starting cash, GOOG bought on margin, card verbosity)
    "tia": (accounts_pb2.INVESTOR_PROFILE_TRIAL, D("10000.00"), 30, "long"),
    "ian": (accounts_pb2.INVESTOR_PROFILE_INCOME_BUILDER, D("50000.00"), 100, "medium"),
    "dia": (accounts_pb2.INVESTOR_PROFILE_DIVERSIFIER, D("100000.00"), 200, "short"),
}


def cents(value: Decimal) -> Decimal:
    return value.quantize(D("0.01"), ROUND_HALF_UP)


async def jobs_done(processes: JobsProcesses, job: str, keys: list[str]):
    async def check():
        runs = sorted(await processes.runs(job), key=lambda run: run.key)
        assert [(run.key, run.state) for run in runs] == [(key, "done") for key in keys], runs
        return runs

    return await eventually(check, timeout=120)


async def filled_cash(client, starting: Decimal, symbol: str, side: str, qty: int) -> Decimal:
    """Trade at market; the cash the account has once the fill is applied."""
    order = await market(client, symbol, side, qty)
    signed = qty if side == "buy" else -qty
    cash = starting - signed * D(order["filled_avg_price"])
    await account_when(client, cash=f"{cents(cash)}")
    return cash


async def open_margin(trading: Trading, client, user: str) -> None:
    """Open the user's account (on first use, from the profile) and make it a margin account."""
    assert (await client.get("/api/mbt/account")).status_code == 200
    await update_user(trading, user, account_type=accounts_pb2.ACCOUNT_TYPE_MARGIN)
    await account_when(client, account_type="margin")


@pytest.fixture
async def mesh_with_jobs(databases, tmp_path):
    async def start(environ: dict[str, str]):
        mesh = await start_mesh(Settings.from_env(environ))
        processes = JobsProcesses(environ, tmp_path / "logs")
        started.append((mesh, processes, Trading(mesh)))
        return started[-1]

    started: list = []
    yield start, databases, tmp_path
    for mesh, processes, trading in started:
        await processes.stop()
        await trading.close()
        await mesh.stop()


async def test_two_closes_make_two_snapshots_the_portfolio_history_and_nightly_interest_with_its_card(
    mesh_with_jobs,
):
    start, databases, tmp_path = mesh_with_jobs
    environ = trading_environ(databases, tmp_path / "var", MBT_JOBS_DATABASE_URL=databases.new("jobs"))
    mesh, processes, trading = await start(environ)
    await processes.start("worker")
    await processes.start("scheduler")

    cash = {}
    async with rest_as(mesh, "alice") as alice:
        cash["alice"] = await filled_cash(alice, D("100000.00"), "AMZN", "buy", 10)
    for user, (profile, starting, qty, _) in MARGIN.items():
        await update_user(trading, user, investor_profile=profile)
        async with rest_as(mesh, user) as client:
            await open_margin(trading, client, user)
            cash[user] = await filled_cash(client, starting, "GOOG", "buy", qty)
            assert cash[user] < 0  # a debit balance: bought partly on margin

    await trading.step_to(datetime(2012, 6, 22, 20, 30, tzinfo=UTC))  # Thursday's and Friday's closes
    for job in ("mbt.eod_mark_all", "mbt.accrue_margin_interest", "mbt.credit_dividends"):
        runs = await jobs_done(processes, job, ["2012-06-21", "2012-06-22"])
        assert all(run.attempts == 1 for run in runs)

    # The replay plays the recorded day again as Friday: both closes stand on its closing quotes.
    closing_bid = {symbol: recording.standing(symbol, ns(CLOSE)).bid for symbol in ("AMZN", "GOOG")}
    rows = await asyncio.to_thread(snapshots, mesh.settings)
    assert len(rows) == 2 * len(cash)
    by_account: dict[str, list] = {}
    for row in rows:
        by_account.setdefault(row.account_id, []).append(row)
        marked = sum((D(p["market_value"]) for p in row.positions), D(0))
        assert row.equity == row.cash + marked  # exact, so to the cent
        for position in row.positions:
            assert D(position["mark"]) == closing_bid[position["symbol"]]
            assert D(position["market_value"]) == D(position["qty"]) * closing_bid[position["symbol"]]
    assert sorted(len(days) for days in by_account.values()) == [2] * len(cash)
    assert {tuple(row.as_of_date for row in days) for days in by_account.values()} == {
        (date(2012, 6, 21), date(2012, 6, 22))
    }

    # Interest: Thursday's night (1 day), then Friday's over the weekend (3 days), on the debit
    # as it stood at each close (Friday's includes Thursday's charge).
    expected_interest = {}
    for user in MARGIN:
        thursday = cents(-cash[user] * RATE_BPS / 10_000 * 1 / 360)
        friday = cents((-cash[user] + thursday) * RATE_BPS / 10_000 * 3 / 360)
        expected_interest[user] = (thursday, friday)

    async with rest_as(mesh, "alice") as alice:
        history = await alice.get("/api/mbt/portfolio/history", params={"period": "1W", "timeframe": "1D"})
        assert history.status_code == 200, history.text
        data = history.json()["data"]
        equity = cash["alice"] + 10 * closing_bid["AMZN"]
        assert data == {
            "timestamp": [CLOSE.isoformat().replace("+00:00", "Z"), SECOND_CLOSE.isoformat().replace("+00:00", "Z")],
            "equity": [f"{cents(equity)}"] * 2,
            "profit_loss": [f"{cents(equity - D('100000.00'))}"] * 2,
            "profit_loss_pct": [f"{((equity - D('100000.00')) / D('100000.00')).quantize(D('0.000001'))}"] * 2,
            "base_value": "100000.00",
            "timeframe": "1D",
        }
        wrong = await alice.get("/api/mbt/portfolio/history", params={"period": "2W"})
        assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_argument", wrong.text
        interest = await alice.get("/api/mbt/activities", params={"type": "margin_interest"})
        assert interest.json()["data"] == []  # a cash account borrows nothing

    for user, (_, starting, qty, verbosity) in MARGIN.items():
        reply = await trading.accounts().GetPortfolioHistory(
            accounts_pb2.GetPortfolioHistoryRequest(period="all"), metadata=as_user(user)
        )
        history = reply.portfolio_history
        thursday, friday = expected_interest[user]
        # Thursday's snapshot is marked after the night's interest (posted at the close, first).
        marked = qty * closing_bid["GOOG"]
        assert [D(e) for e in history.equity] == [
            cents(cash[user] - thursday + marked),
            cents(cash[user] - thursday - friday + marked),
        ]
        assert [from_timestamp(t) for t in history.timestamp] == [CLOSE, SECOND_CLOSE]
        assert history.base_value == f"{starting}"
        async with rest_as(mesh, user) as client:
            listed = (await client.get("/api/mbt/activities", params={"type": "margin_interest"})).json()["data"]
        assert [D(a["net_amount"]) for a in listed] == [-friday, -thursday]  # newest first
        card = listed[1]["card"]
        assert card["verbosity"] == verbosity and card["amount"] == f"${thursday:,}"
        debit = f"${cents(-cash[user]):,}"
        assert card["how"].startswith(f"{debit} × 8.00% ÷ 360 × 1 day = ${thursday:,}"), card
        assert "CPA" in card["tax_note"]
        if verbosity == "long":
            assert "margin loan" in card["why"] and "Form 4952" in card["tax_note"], card
            assert len(card["why"]) > 200
        elif verbosity == "short":
            assert card["why"] == "Margin loan interest."
        assert "3 days" in listed[0]["card"]["how"]


async def test_a_dividend_is_paid_to_holders_at_the_ex_date_open_and_charged_to_shorts(mesh_with_jobs):
    start, databases, tmp_path = mesh_with_jobs
    environ = ex_date_environ(databases, tmp_path / "var", MBT_JOBS_DATABASE_URL=databases.new("jobs"))
    mesh, processes, trading = await start(environ)
    await processes.start("worker")
    await processes.start("scheduler")

    cash = {}
    async with rest_as(mesh, "dora") as dora:  # long 10 the day before the ex-date
        cash["dora"] = await filled_cash(dora, D("100000.00"), "AAPL", "buy", 10)
    async with rest_as(mesh, "sam") as sam:  # short 5 the day before
        await open_margin(trading, sam, "sam")
        cash["sam"] = await filled_cash(sam, D("100000.00"), "AAPL", "sell", 5)
    await trading.step_to(EX_DATE_OPEN.replace(minute=45))
    async with rest_as(mesh, "lee") as lee:  # bought on the ex-date: not entitled
        cash["lee"] = await filled_cash(lee, D("100000.00"), "AAPL", "buy", 10)

    await trading.step_to(EX_DATE_CLOSE.replace(minute=30))
    await jobs_done(processes, "mbt.credit_dividends", ["2012-08-08", "2012-08-09"])
    runs = await processes.runs("mbt.credit_dividends")
    assert [run.result["dividends"] for run in sorted(runs, key=lambda run: run.key)] == [0, 1]

    paid = {"dora": 10 * AAPL_DIVIDEND, "sam": -5 * AAPL_DIVIDEND}
    for user, amount in paid.items():
        async with rest_as(mesh, user) as client:
            await account_when(client, cash=f"{cents(cash[user] + amount)}")

            async def recorded(client=client):  # activities records the accounts event on its own time
                rows = (await client.get("/api/mbt/activities", params={"type": "dividend"})).json()["data"]
                assert len(rows) == 1, rows
                return rows

            listed = await eventually(recorded)
        activity = listed[0]
        assert (activity["symbol"], D(activity["net_amount"]), activity["occurred_at"]) == (
            "AAPL",
            amount,
            EX_DATE_CLOSE.isoformat().replace("+00:00", "Z"),
        )
        held = "10 AAPL" if user == "dora" else "short 5 AAPL"
        assert activity["description"].endswith(f"on {held} at $2.65/share (ex-date 2012-08-09)"), activity
    async with rest_as(mesh, "lee") as lee:
        assert (await lee.get("/api/mbt/activities", params={"type": "dividend"})).json()["data"] == []
        await account_when(lee, cash=f"{cents(cash['lee'])}")
    # The ex-date's snapshot holds the dividend (posted at the close, before the marks).
    await jobs_done(processes, "mbt.eod_mark_all", ["2012-08-08", "2012-08-09"])
    rows = await asyncio.to_thread(snapshots, mesh.settings)
    dora_rows = [row for row in rows if row.as_of_date == date(2012, 8, 9)]
    assert sorted(row.cash for row in dora_rows) == sorted(
        [cash["dora"] + paid["dora"], cash["sam"] + paid["sam"], cash["lee"]]
    )
