"""Expiration, exercise and assignment end to end, on the real mesh over a stepped replay
(the bundled AMZN day repeated as the following sessions): option positions are seeded
through the ledger's real fill path (a hold, then an OrderFilled event, as the orders
service sends them), a long call is exercised early over REST, the replay steps across the
close of Friday 2012-06-22 and the ``mbt.expire_options`` job (a real worker, on the
embedded transport with SQLite and on Redis with PostgreSQL) settles the book at the
day's official close: an in-the-money long call exercised, an out-of-the-money one expired
worthless, a short put assigned; cash, positions, activities and audit rows agree to the
cent. The job and the RPC run again change nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from mbt.accounts.v1 import accounts_pb2
from mbt.common.v1 import events_pb2, events_pb2_grpc, trading_pb2
from mbt.orders.v1 import orders_pb2
from services.common.ids import new_id
from services.common.instruments import parse_symbol
from services.common.wire.conv import to_date
from tests.support.identity import as_service, as_user
from tests.support.jobs import VARIANTS, jobs_mesh
from tests.support.option_views import cash, expirations, holdings
from tests.support.trading import Trading, eventually, filled_event, rest_as

D = Decimal
JOB = "mbt.expire_options"
FRIDAY = "2012-06-22"
# After the do-not-exercise cutoff (the close + MBT_DO_NOT_EXERCISE_CUTOFF_MINUTES, 90): the run is due.
AFTER_FRIDAYS_CLOSE = datetime(2012, 6, 22, 21, 35, tzinfo=UTC)
ITM_CALL = "AMZN120622C00215000"
OTM_CALL = "AMZN120622C00230000"
LATER_CALL = "AMZN120720C00200000"
SHORT_PUT = "AMZN120622P00225000"
UNPRICED = "ZZZZ120622C00010000"  # no market data of ZZZZ: no close to settle on


@pytest.fixture(params=VARIANTS)
async def expiry(request, tmp_path):
    async with jobs_mesh(request.param, tmp_path) as mesh:
        yield mesh


async def seed_fill(
    trading: Trading, user: str, symbol: str, side: str, qty: str, price: str, *, fill_id: str | None = None
) -> None:
    """A fill through the ledger's own path: the orders service's hold, then its OrderFilled
    event (stamped START), delivered to accounts and activities. An OCC symbol is an option
    (x 100), anything else a stock."""
    order_id = new_id("ord")
    wire_side = trading_pb2.ORDER_SIDE_BUY if side == "buy" else trading_pb2.ORDER_SIDE_SELL
    option = parse_symbol(symbol).is_option
    multiplier = "100" if option else "1"
    await trading.accounts().ReserveBuyingPower(
        accounts_pb2.ReserveBuyingPowerRequest(
            order_id=order_id,
            order_version=1,
            user_id=user,
            symbol=symbol,
            asset_class=trading_pb2.ASSET_CLASS_US_OPTION if option else trading_pb2.ASSET_CLASS_US_EQUITY,
            side=wire_side,
            qty=qty,
            order_type=trading_pb2.ORDER_TYPE_LIMIT,
            limit_price=price,
            multiplier=multiplier,
            worst_price=price,
        ),
        metadata=as_service("orders"),
    )
    order = orders_pb2.Order(order_id=order_id, user_id=user, version=1, symbol=symbol, side=wire_side, qty=qty)
    event = filled_event(order, fill_id or new_id("fill"), qty=qty, price=price, multiplier=multiplier)
    for service in ("accounts", "activities"):
        sink = events_pb2_grpc.EventSinkServiceStub(trading.channel(service))
        await sink.Deliver(events_pb2.DeliverRequest(events=[event]), metadata=as_service("orders"))


async def test_the_book_settles_at_fridays_close_once(expiry):
    trading, processes, queue = expiry
    await trading.accounts().GetAccount(accounts_pb2.GetAccountRequest(), metadata=as_user("bob"))  # opened
    await trading.accounts().UpdateUser(
        accounts_pb2.UpdateUserRequest(user_id="bob", account_type=accounts_pb2.ACCOUNT_TYPE_MARGIN),
        metadata=as_service("tests"),
    )
    await seed_fill(trading, "alice", ITM_CALL, "buy", "1", "6.00")
    await seed_fill(trading, "alice", OTM_CALL, "buy", "1", "0.50")
    await seed_fill(trading, "alice", LATER_CALL, "buy", "2", "21.00")
    await seed_fill(trading, "bob", SHORT_PUT, "sell", "1", "5.00")
    await seed_fill(trading, "carol", UNPRICED, "buy", "1", "1.00")

    async with rest_as(trading.mesh, "alice") as alice, rest_as(trading.mesh, "bob") as bob:
        assert await cash(alice) == D("95150.00")  # 100,000 - 600 - 50 - 4,200: premiums × 100
        assert (await holdings(alice))[ITM_CALL] == (D(1), D(6))

        # Early exercise of one long American call: 100 shares at the strike, at once.
        exercised = await alice.post(f"/api/mbt/positions/{LATER_CALL}/exercise", json={"qty": "1"})
        assert exercised.status_code == 200, exercised.text
        settlement = exercised.json()["data"]
        assert (settlement["outcome"], settlement["stock_side"], settlement["stock_qty"]) == ("exercised", "buy", "100")
        assert (settlement["strike_price"], settlement["cash_delta"]) == ("200.00", "-20000.00")
        assert await cash(alice) == D("75150.00")
        assert (await holdings(alice))["AMZN"] == (D(100), D(200))
        short = await bob.post(f"/api/mbt/positions/{SHORT_PUT}/exercise", json={})
        assert (short.status_code, short.json()["error"]["code"]) == (400, "failed_precondition")

        # Before the close nothing is due; then the replay steps across Friday's close.
        await trading.step_to(AFTER_FRIDAYS_CLOSE)
        await processes.start("worker")
        await asyncio.to_thread(queue.offer, JOB, FRIDAY)

        async def done():
            run = await processes.run(JOB, FRIDAY)
            assert run is not None and run.state == "done", run
            return run

        run = await eventually(done, timeout=120)
        assert run.attempts == 1
        assert run.result["settled"] == 3 and run.result["accounts"] == 3, run.result
        assert run.result["outcomes"] == {"exercised": 1, "expired_worthless": 1, "assigned": 1}
        assert run.result["shortfalls"] == []
        # A contract with no settlement price stays open, reported; it holds up nobody else.
        [unpriced] = run.result["unpriced"]
        assert unpriced.startswith("ZZZZ expiring 2012-06-22: "), unpriced

        bars = await alice.get("/api/mbt/bars/AMZN", params={"timeframe": "1Day", "from": "2012-06-22T00:00:00Z"})
        close = D(bars.json()["data"][-1]["close"])
        assert D(215) < close < D(225)  # the in-the-money call and put are in the money by this close

        # alice: the 215 call exercised (100 shares at 215), the 230 call expired worthless.
        assert await cash(alice) == D("53650.00")
        assert await holdings(alice) == {"AMZN": (D(200), D("207.5")), LATER_CALL: (D(1), D(21))}
        rows = await expirations(alice, 3)
        by_symbol = {(r["symbol"], r["subtype"]): r for r in rows}
        assert set(by_symbol) == {(LATER_CALL, "exercised"), (ITM_CALL, "exercised"), (OTM_CALL, "expired_worthless")}
        assert D(by_symbol[ITM_CALL, "exercised"]["net_amount"]) == D("-21500")
        assert by_symbol[ITM_CALL, "exercised"]["description"].startswith("OPEXC: 1 AMZN120622C00215000 exercised")
        assert f"${close:,}" in by_symbol[ITM_CALL, "exercised"]["description"]
        assert "AMZN position now 200" in by_symbol[ITM_CALL, "exercised"]["description"]
        assert by_symbol[OTM_CALL, "expired_worthless"]["description"].startswith("OPEXP")
        assert D(by_symbol[OTM_CALL, "expired_worthless"]["net_amount"]) == 0

        # bob (margin): the short put assigned: 100 shares bought at 225 with the premium kept.
        assert await cash(bob) == D("78000.00")
        assert await holdings(bob) == {"AMZN": (D(100), D(225))}
        [assigned] = await expirations(bob, 1)
        assert (assigned["subtype"], D(assigned["net_amount"])) == ("assigned", D("-22500"))
        assert assigned["description"].startswith("OPASN")
        pnl = (await bob.get("/api/mbt/pnl")).json()["data"]
        assert {line["symbol"]: D(line["realized_pl"]) for line in pnl["lines"]}[SHORT_PUT] == D(500)

        async def audited():
            actions = sorted(
                e.record.action
                for e in await trading.audit(user_id="alice")
                if e.record.entity_type == "option_position"
            )
            assert actions == ["exercise", "exercise", "expire"], actions

        await eventually(audited)

        # Again: the job's key is done (not run again), and the RPC itself settles nothing.
        assert (await asyncio.to_thread(queue.offer, JOB, FRIDAY)).state == "done"
        again = await trading.accounts().ExpireOptions(
            accounts_pb2.ExpireOptionsRequest(session_date=to_date(datetime(2012, 6, 22).date())),
            metadata=as_service("jobs"),
        )
        assert (list(again.settlements), again.accounts, len(again.unpriced)) == ([], 1, 1)
        assert (await cash(alice), await cash(bob)) == (D("53650.00"), D("78000.00"))
        assert len(await expirations(alice, 3)) == 3
        assert (await processes.run(JOB, FRIDAY)).attempts == 1

        # Native gRPC: the rest of the later call exercised early (no qty: the whole position).
        native = await trading.accounts().ExerciseOption(
            accounts_pb2.ExerciseOptionRequest(symbol=LATER_CALL), metadata=as_user("alice")
        )
        assert (native.settlement.qty, native.settlement.cash_delta) == ("1", "-20000.00")
        assert native.settlement.outcome == accounts_pb2.OPTION_OUTCOME_EXERCISED
        assert await cash(alice) == D("33650.00")
        assert await holdings(alice) == {"AMZN": (D(300), D("205"))}
        assert len(await expirations(alice, 4)) == 4
