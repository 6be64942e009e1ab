"""Holders' do-not-exercise instructions and the pre-close sale of what a cash account cannot
carry, end to end on the real mesh over a stepped replay (the bundled AMZN day repeated as
Friday 2012-06-22), with the real jobs worker (embedded transport with SQLite, Redis with
PostgreSQL):

- an instruction is taken on the expiry day until the cutoff, 90 minutes after the close
  (a repeat answers the same; a withdrawal before the cutoff; refusals for the day before,
  a short, a contract expiring later, a position not held, and after the cutoff);
- an hour before the close ``mbt.sell_uncarriable_options`` sells, through orders' submit
  path, the in-the-money call a cash account could not pay the shares of (a market
  sell_to_close with a deterministic client_order_id: filled, audited, its fill activity);
  a second submit of the same sale is the same order;
- the expiration run is refused before the cutoff, then the instructed long expires
  worthless with the reason, the withdrawn one is exercised, the sold one has nothing left
  to settle, and running it again changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal

import grpc
import pytest

from mbt.accounts.v1 import accounts_pb2
from mbt.common.v1 import trading_pb2
from mbt.orders.v1 import orders_pb2
from services.common.wire.conv import to_date
from tests.e2e.test_option_expiration import (
    FRIDAY,
    ITM_CALL,
    LATER_CALL,
    SHORT_PUT,
    seed_fill,
)
from tests.support.identity import as_service, as_user
from tests.support.jobs import VARIANTS, jobs_mesh
from tests.support.option_views import cash, expirations, holdings
from tests.support.trading import eventually, order_in, rest_as

D = Decimal
SALE = "mbt.sell_uncarriable_options"
EXPIRE = "mbt.expire_options"
IN_THE_SALE_WINDOW = datetime(2012, 6, 22, 19, 5, tzinfo=UTC)  # 3:05 pm New York: the close at 4 is 20:00 UTC
AFTER_THE_CLOSE = datetime(2012, 6, 22, 20, 5, tzinfo=UTC)
AFTER_THE_CUTOFF = datetime(2012, 6, 22, 21, 35, tzinfo=UTC)  # the cutoff: 21:30 UTC, 5:30 pm New York
CUTOFF = "2012-06-22T21:30:00Z"
NOT_HELD = "AMZN120622C00200000"
# On the quote model's listed grid (strikes $10 apart above $200): it has a bid to sell into.
SOLD_CALL = "AMZN120622C00210000"
SALE_ID = f"mbt-carry-sale-{FRIDAY}-{SOLD_CALL}"


@pytest.fixture(params=VARIANTS)
async def expiry(request, tmp_path):
    async with jobs_mesh(request.param, tmp_path) as mesh:
        yield mesh


def dne(symbol: str) -> str:
    return f"/api/mbt/positions/{symbol}/do-not-exercise"


def refused(response, status: int, code: str, words: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"], error


async def job_done(processes, queue, job: str, key: str):
    await asyncio.to_thread(queue.offer, job, key)

    async def done():
        run = await processes.run(job, key)
        assert run is not None and run.state == "done", run
        return run

    return await eventually(done, timeout=120)


async def test_instructions_and_the_pre_close_sale_decide_what_settles_at_fridays_close(expiry):
    trading, processes, queue = expiry
    await trading.accounts().GetAccount(accounts_pb2.GetAccountRequest(), metadata=as_user("dave"))  # opened
    await trading.accounts().UpdateUser(
        accounts_pb2.UpdateUserRequest(user_id="dave", account_type=accounts_pb2.ACCOUNT_TYPE_MARGIN),
        metadata=as_service("tests"),
    )
    for user in ("alice", "bob"):
        await seed_fill(trading, user, ITM_CALL, "buy", "1", "6.00")
    # carol (cash) spends on a later call what the 210 call's 100 shares would cost: 14,900 left.
    await seed_fill(trading, "carol", SOLD_CALL, "buy", "1", "11.00")
    await seed_fill(trading, "carol", LATER_CALL, "buy", "40", "21.00")
    await seed_fill(trading, "dave", SHORT_PUT, "sell", "1", "5.00")
    await seed_fill(trading, "dave", LATER_CALL, "buy", "1", "21.00")
    await processes.start("worker")

    async with (
        rest_as(trading.mesh, "alice") as alice,
        rest_as(trading.mesh, "bob") as bob,
        rest_as(trading.mesh, "carol") as carol,
        rest_as(trading.mesh, "dave") as dave,
    ):
        # Thursday: the contract expires tomorrow; instructions are taken on the day only.
        refused(await alice.post(dne(ITM_CALL), json={}), 400, "failed_precondition", "on that day only")

        await trading.step_to(IN_THE_SALE_WINDOW)
        given = await alice.post(dne(ITM_CALL), json={})
        assert given.status_code == 200, given.text
        instruction = given.json()["data"]
        assert (instruction["symbol"], instruction["instruction"]) == (ITM_CALL, "do_not_exercise")
        assert (instruction["expiration"], instruction["cutoff_time"]) == ("2012-06-22", CUTOFF)
        again = await alice.post(dne(ITM_CALL), json={})
        assert again.json()["data"] == instruction  # the same answer, the first give_time
        assert (await bob.post(dne(ITM_CALL), json={})).status_code == 200
        withdrawn = await bob.delete(dne(ITM_CALL))
        assert withdrawn.status_code == 200, withdrawn.text
        assert (withdrawn.json()["data"]["instruction"], withdrawn.json()["data"]["give_time"]) == (None, None)
        assert (await bob.delete(dne(ITM_CALL))).json()["data"] == withdrawn.json()["data"]  # none left: the same
        refused(await dave.post(dne(SHORT_PUT), json={}), 400, "failed_precondition", "for a long position")
        refused(await dave.post(dne(LATER_CALL), json={}), 400, "failed_precondition", "on that day only")
        refused(await dave.post(dne(NOT_HELD), json={}), 404, "not_found", NOT_HELD)
        with pytest.raises(grpc.aio.AioRpcError) as native:
            await trading.accounts().InstructDoNotExercise(
                accounts_pb2.InstructDoNotExerciseRequest(symbol=SHORT_PUT), metadata=as_user("dave")
            )
        assert native.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        # An hour before the close: carol's 210 call, in the money, cannot become 100 shares
        # (21,000 > 14,900 free): it is sold at the market through the orders service.
        assert await cash(carol) == D("14900.00")
        sale = await job_done(processes, queue, SALE, FRIDAY)
        assert sale.result | {"refusals": []} == {
            "session": FRIDAY,
            "accounts": 3,  # alice, bob and carol: cash accounts long a contract expiring today
            "uncarried": 1,
            "submitted": 1,
            "replayed": 0,
            "no_bid": 0,
            "refused": 0,
            "refusals": [],
        }, sale.result
        [order] = [o for o in (await carol.get("/api/mbt/orders")).json()["data"] if o["symbol"] == SOLD_CALL]
        assert (order["client_order_id"], order["side"], order["order_type"]) == (SALE_ID, "sell", "market")
        assert (order["qty"], order["position_intent"], order["time_in_force"]) == ("1", "sell_to_close", "day")

        async def filled():
            await trading.step(30)
            return await order_in(carol, order["order_id"], "filled")

        sold = await eventually(filled, timeout=60)
        [fill] = sold["fills"]
        proceeds = D(fill["price"]) * 100
        assert proceeds > 0 and fill["rule"] == "market_sell_at_bid"

        async def sale_recorded():
            assert await cash(carol) == D("14900.00") + proceeds
            assert SOLD_CALL not in await holdings(carol)
            fills = (await carol.get("/api/mbt/activities", params={"type": "fill"})).json()["data"]
            assert [a["side"] for a in fills if a["order_id"] == order["order_id"]] == ["sell"], fills
            audited = {
                (e.record.entity_type, e.record.action) for e in await trading.audit(entity_id=order["order_id"])
            }
            assert ("order", "submit") in audited, audited

        await eventually(sale_recorded)

        # Submitting the sale again (what a rerun does) answers the same order; nothing is left to sell.
        replay = await trading.orders().SubmitOrderForUser(
            orders_pb2.SubmitOrderForUserRequest(
                user_id="carol",
                order=orders_pb2.SubmitOrderRequest(
                    client_order_id=SALE_ID,
                    symbol=SOLD_CALL,
                    asset_class=trading_pb2.ASSET_CLASS_US_OPTION,
                    side=trading_pb2.ORDER_SIDE_SELL,
                    qty="1",
                    order_type=trading_pb2.ORDER_TYPE_MARKET,
                    time_in_force=trading_pb2.TIME_IN_FORCE_DAY,
                    position_intent=trading_pb2.POSITION_INTENT_SELL_TO_CLOSE,
                ),
            ),
            metadata=as_service("jobs"),
        )
        assert (replay.idempotent_replay, replay.order.order_id) == (True, order["order_id"])
        left = await trading.accounts().ListUncarriedOptions(
            accounts_pb2.ListUncarriedOptionsRequest(session_date=to_date(date(2012, 6, 22))),
            metadata=as_service("jobs"),
        )
        assert list(left.options) == []
        assert (await asyncio.to_thread(queue.offer, SALE, FRIDAY)).state == "done"
        assert len([o for o in (await carol.get("/api/mbt/orders")).json()["data"] if o["symbol"] == SOLD_CALL]) == 1

        # After the close, before the cutoff: instructions still count, so nothing settles yet.
        await trading.step_to(AFTER_THE_CLOSE)
        with pytest.raises(grpc.aio.AioRpcError) as early:
            await trading.accounts().ExpireOptions(
                accounts_pb2.ExpireOptionsRequest(session_date=to_date(date(2012, 6, 22))),
                metadata=as_service("jobs"),
            )
        assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert CUTOFF.removesuffix("Z") in early.value.details()

        # After the cutoff: too late to instruct; alice's instruction stands.
        await trading.step_to(AFTER_THE_CUTOFF)
        refused(await bob.post(dne(ITM_CALL), json={}), 400, "failed_precondition", "the cutoff for instructions")
        refused(await bob.delete(dne(ITM_CALL)), 400, "failed_precondition", "the cutoff for instructions")
        assert (await alice.post(dne(ITM_CALL), json={})).json()["data"] == instruction

        run = await job_done(processes, queue, EXPIRE, FRIDAY)
        assert run.result["outcomes"] == {"expired_worthless": 1, "exercised": 1, "assigned": 1}, run.result
        assert run.result["accounts"] == 3  # alice, bob, dave: carol's call was sold

        # alice: the 215 call, in the money, expired unexercised: no shares, the premium lost.
        [kept] = await expirations(alice, 1)
        assert (kept["symbol"], kept["subtype"], D(kept["net_amount"])) == (ITM_CALL, "expired_worthless", D(0))
        assert kept["description"].endswith("in the money; do-not-exercise instruction"), kept["description"]
        assert await cash(alice) == D("99400.00")
        assert await holdings(alice) == {}
        # bob withdrew his: exercised, 100 shares at 215.
        [exercised] = await expirations(bob, 1)
        assert exercised["subtype"] == "exercised"
        assert await holdings(bob) == {"AMZN": (D(100), D(215))}
        assert await cash(bob) == D("77900.00")

        async def audited():
            for user, expected in (
                ("alice", ["expire", "instruct"]),
                ("bob", ["exercise", "instruct", "withdraw_instruction"]),
            ):
                rows = [
                    e.record for e in await trading.audit(user_id=user) if e.record.entity_type == "option_position"
                ]
                assert sorted(r.action for r in rows) == expected, (user, rows)

        await eventually(audited)
        # carol: nothing expired; the sale was all.
        assert (await carol.get("/api/mbt/activities", params={"type": "expiration"})).json()["data"] == []

        again = await trading.accounts().ExpireOptions(
            accounts_pb2.ExpireOptionsRequest(session_date=to_date(date(2012, 6, 22))), metadata=as_service("jobs")
        )
        assert list(again.settlements) == []
        assert (await cash(alice), await cash(bob)) == (D("99400.00"), D("77900.00"))
