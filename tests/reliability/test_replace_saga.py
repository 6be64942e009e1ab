"""A replace or a submit cut short between the hold and the commit never leaves a hold that
disagrees with its order (issue H1: a failed replace left a v+1 hold that a later replace
reused unchecked, and a $100,000 cash account ended at -$794,200).

Each scenario cuts one call of the saga with an injected fault (the orders service's
accounts client, see tests/support/faults.py), on both backends, through REST and native
gRPC, then checks the ledger invariants from the outside."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import grpc
import pytest

from mbt.accounts.v1 import accounts_pb2
from mbt.orders.v1 import orders_pb2
from services.common.clock import ManualClock, WallClock
from services.orders.app import build as build_orders
from services.orders.domain.model import Status
from services.orders.store import OrderRepository
from tests.reliability.test_ledger_interleavings import record_fill
from tests.support.faults import FaultyClient
from tests.support.identity import BULK_TIER, as_service, as_user
from tests.support.ledger_check import assert_ledger_consistent
from tests.support.mesh import mesh_settings, start_mesh
from tests.support.trading import START, Trading, eventually, rest_as

D = Decimal
LEASE = timedelta(minutes=5)  # well past REPLACE_LEASE_TIMEOUTS x the RPC timeout


@pytest.fixture
async def rig(databases, tmp_path):
    faults = FaultyClient()
    wall = ManualClock(WallClock().now())
    settings = mesh_settings(databases, tmp_path, MBT_REPLAY_MODE="stepped", MBT_REPLAY_START=START.isoformat())
    built = {}

    def orders(s):
        runtime = build_orders(s, wall=wall, wrap_accounts=faults.wrap)
        built["orders"] = runtime.registrations[0].servicer
        return runtime

    mesh = await start_mesh(settings, builders={"orders": orders})
    trading = Trading(mesh)
    trading.orders_servicer = built["orders"]
    yield mesh, trading, faults, wall
    await trading.close()
    await mesh.stop()


async def account_of(client) -> dict:
    response = await client.get("/api/mbt/account")
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def order_of(client, order_id: str) -> dict:
    response = await client.get(f"/api/mbt/orders/{order_id}")
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_a_replace_cut_after_its_hold_cannot_lend_that_hold_to_another_replace(rig):
    """The issue's reproduction, with the 5 ms deadline made deterministic: the request is cut
    right after accounts held buying power for it."""
    mesh, trading, faults, wall = rig
    async with rest_as(mesh, "alice") as alice:
        submitted = await alice.post(
            "/api/mbt/orders",
            json={
                "symbol": "AMZN",
                "qty": "1",
                "side": "buy",
                "order_type": "limit",
                "limit_price": "1.00",
                "time_in_force": "gtc",
            },
        )
        assert submitted.status_code == 200, submitted.text
        order_id = submitted.json()["data"]["order_id"]
        assert D((await account_of(alice))["reserved"]) == D("1.00")

        # Native ReplaceOrder to qty 2, cut right after accounts held buying power for it.
        faults.arm("ReserveBuyingPower", "cut_after")
        call = trading.orders().ReplaceOrder(
            orders_pb2.ReplaceOrderRequest(order_id=order_id, qty="2"), metadata=as_user("alice", BULK_TIER)
        )
        await faults.cut_short(call, "ReserveBuyingPower")
        assert await call.code() is grpc.StatusCode.CANCELLED
        order = await order_of(alice, order_id)
        assert (order["version"], order["qty"]) == (1, "1")
        # Both versions are held while the replace is unresolved: either may still fill.
        assert D((await account_of(alice))["reserved"]) == D("2.00")

        # Another replace while the cut one may still be at work: a retryable conflict.
        again = await alice.patch(f"/api/mbt/orders/{order_id}", json={"qty": "4000", "limit_price": "300.00"})
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "conflict"

        # Once its lease ran out, the interrupted replace is finished first (its hold matches
        # its terms), and the new one is held at its own terms: $1.2M does not fit.
        wall.advance(LEASE)
        again = await alice.patch(f"/api/mbt/orders/{order_id}", json={"qty": "4000", "limit_price": "300.00"})
        assert again.status_code == 400, again.text
        assert again.json()["error"]["code"] == "insufficient_buying_power"
        order = await order_of(alice, order_id)
        assert (order["version"], order["qty"], order["limit_price"]) == (2, "2", "1.00")
        account = await account_of(alice)
        assert (D(account["cash"]), D(account["reserved"])) == (D("100000.00"), D("2.00"))

        # A replace that fits goes through and holds exactly its terms.
        fits = await alice.patch(f"/api/mbt/orders/{order_id}", json={"qty": "3", "limit_price": "2.00"})
        assert fits.status_code == 200, fits.text
        assert fits.json()["data"]["version"] == 3
        await eventually(lambda: assert_ledger_consistent(trading, "alice"))
        assert D((await account_of(alice))["reserved"]) == D("6.00")


async def test_the_sell_side_twin_never_lets_a_cash_account_sell_shares_twice(rig):
    mesh, trading, faults, wall = rig
    async with rest_as(mesh, "bob") as bob:
        bought = await bob.post(
            "/api/mbt/orders",
            json={"symbol": "AMZN", "qty": "10", "side": "buy", "order_type": "market", "time_in_force": "day"},
        )
        assert bought.status_code == 200, bought.text

        async def holding_ten():
            positions = (await bob.get("/api/mbt/positions")).json()["data"]
            assert [p["qty"] for p in positions] == ["10"]

        await eventually(holding_ten)

        sell = await bob.post(
            "/api/mbt/orders",
            json={
                "symbol": "AMZN",
                "qty": "1",
                "side": "sell",
                "order_type": "limit",
                "limit_price": "900.00",
                "time_in_force": "gtc",
            },
        )
        assert sell.status_code == 200, sell.text
        sell_id = sell.json()["data"]["order_id"]
        faults.arm("ReserveBuyingPower", "lose_reply")
        cut = await bob.patch(f"/api/mbt/orders/{sell_id}", json={"qty": "2"})
        assert cut.status_code == 503, cut.text
        wall.advance(LEASE)
        # The interrupted replace (2 shares) is finished, then this one holds all ten.
        replaced = await bob.patch(f"/api/mbt/orders/{sell_id}", json={"qty": "10"})
        assert replaced.status_code == 200, replaced.text
        # Not one more share may be promised to another sell.
        second = await bob.post(
            "/api/mbt/orders",
            json={
                "symbol": "AMZN",
                "qty": "1",
                "side": "sell",
                "order_type": "limit",
                "limit_price": "900.00",
                "time_in_force": "gtc",
            },
        )
        assert second.status_code == 400, second.text
        assert second.json()["error"]["code"] == "insufficient_buying_power"
        assert (replaced.json()["data"]["version"], replaced.json()["data"]["qty"]) == (3, "10")
    await eventually(lambda: assert_ledger_consistent(trading, "bob"))


async def test_housekeeping_finishes_an_interrupted_replace_by_itself(rig):
    mesh, trading, faults, wall = rig
    async with rest_as(mesh, "carl") as carl:
        submitted = await carl.post(
            "/api/mbt/orders",
            json={
                "symbol": "GOOG",
                "qty": "5",
                "side": "buy",
                "order_type": "limit",
                "limit_price": "10.00",
                "time_in_force": "gtc",
            },
        )
        order_id = submitted.json()["data"]["order_id"]
        faults.arm("ReserveBuyingPower", "lose_reply")
        cut = await carl.patch(f"/api/mbt/orders/{order_id}", json={"qty": "1"})
        assert cut.status_code == 503, cut.text
        # Shrinking: while unresolved the larger (current) hold stays.
        assert D((await account_of(carl))["reserved"]) == D("50.00")
        wall.advance(LEASE)

        async def finished():
            order = await order_of(carl, order_id)
            assert (order["version"], order["qty"]) == (2, "1")
            assert D((await account_of(carl))["reserved"]) == D("10.00")

        await eventually(finished)
    await eventually(lambda: assert_ledger_consistent(trading, "carl"))


async def test_a_replace_refused_on_resume_is_abandoned_and_releases_what_it_held(rig):
    """The interrupted replace no longer fits when it is resumed (the account spent the
    money meanwhile): it is abandoned, its version's hold released, and never reused."""
    mesh, trading, faults, wall = rig
    async with rest_as(mesh, "dana") as dana:
        first = await dana.post(
            "/api/mbt/orders",
            json={
                "symbol": "AMZN",
                "qty": "100",
                "side": "buy",
                "order_type": "limit",
                "limit_price": "10.00",
                "time_in_force": "gtc",
            },
        )
        order_id = first.json()["data"]["order_id"]
        faults.arm("ReserveBuyingPower", "drop")  # the replace's hold never reached accounts
        cut = await dana.patch(f"/api/mbt/orders/{order_id}", json={"qty": "9000"})
        assert cut.status_code == 503, cut.text
        # Meanwhile the account commits most of its cash elsewhere.
        big = await dana.post(
            "/api/mbt/orders",
            json={
                "symbol": "GOOG",
                "qty": "990",
                "side": "buy",
                "order_type": "limit",
                "limit_price": "100.00",
                "time_in_force": "gtc",
            },
        )
        assert big.status_code == 200, big.text
        wall.advance(LEASE)
        resumed = await dana.patch(f"/api/mbt/orders/{order_id}", json={"limit_price": "9.00"})
        assert resumed.status_code == 200, resumed.text
        # Version 2 was the abandoned attempt: the replace that took effect is version 3.
        assert (resumed.json()["data"]["version"], resumed.json()["data"]["qty"]) == (3, "100")

        async def old_version_released():  # when accounts hears of OrderReplaced
            assert D((await account_of(dana))["reserved"]) == D("900.00") + D("99000.00")

        await eventually(old_version_released)
    await eventually(lambda: assert_ledger_consistent(trading, "dana"))


async def test_a_submit_cut_after_its_hold_is_finished_by_its_replay_and_bound_to_its_terms(rig):
    mesh, trading, faults, _wall = rig
    body = {
        "client_order_id": "cut-1",
        "symbol": "AMZN",
        "qty": "2",
        "side": "buy",
        "order_type": "limit",
        "limit_price": "5.00",
        "time_in_force": "gtc",
    }
    async with rest_as(mesh, "erin") as erin:
        faults.arm("ReserveBuyingPower", "lose_reply")
        cut = await erin.post("/api/mbt/orders", json=body)
        assert cut.status_code == 503, cut.text
        other = await erin.post("/api/mbt/orders", json={**body, "qty": "2000"})
        assert other.status_code == 409, other.text
        assert other.json()["error"]["code"] == "idempotency_key_reused"
        replay = await erin.post("/api/mbt/orders", json=body)
        assert replay.status_code == 200, replay.text
        assert (replay.json()["data"]["status"], replay.json()["meta"]["idempotent_replay"]) == ("accepted", True)
        assert D((await account_of(erin))["reserved"]) == D("10.00")
    await eventually(lambda: assert_ledger_consistent(trading, "erin"))


async def test_a_refused_submit_replayed_answers_the_same_refusal(rig):
    mesh, _trading, _faults, _wall = rig
    body = {
        "client_order_id": "too-big",
        "symbol": "AMZN",
        "qty": "100000",
        "side": "buy",
        "order_type": "limit",
        "limit_price": "200.00",
        "time_in_force": "gtc",
    }
    async with rest_as(mesh, "fred") as fred:
        first = await fred.post("/api/mbt/orders", json=body)
        again = await fred.post("/api/mbt/orders", json=body)
        assert (first.status_code, again.status_code) == (400, 400)
        assert first.json()["error"]["code"] == again.json()["error"]["code"] == "insufficient_buying_power"
        assert first.json()["error"]["message"] == again.json()["error"]["message"]
        reused = await fred.post("/api/mbt/orders", json={**body, "symbol": "GOOG", "side": "sell"})
        assert reused.status_code == 409
        assert reused.json()["error"]["code"] == "idempotency_key_reused"


async def test_accounts_binds_a_hold_to_its_terms_and_a_release_to_its_version(rig):
    _mesh, trading, _faults, _wall = rig
    accounts = trading.accounts()
    service = as_service("orders")
    request = accounts_pb2.ReserveBuyingPowerRequest(
        order_id="ord_direct1",
        order_version=1,
        user_id="gina",
        symbol="AMZN",
        side=1,
        qty="3",
        order_type=2,
        limit_price="10.00",
        worst_price="10.00",
        multiplier="1",
    )
    first = await accounts.ReserveBuyingPower(request, metadata=service)
    repeat = await accounts.ReserveBuyingPower(request, metadata=service)
    assert first.reservation == repeat.reservation
    assert first.reservation.amount == "30.00"
    other_terms = accounts_pb2.ReserveBuyingPowerRequest()
    other_terms.CopyFrom(request)
    other_terms.qty = "4"
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await accounts.ReserveBuyingPower(other_terms, metadata=service)
    assert reused.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert "other terms" in reused.value.details()

    released = await accounts.ReleaseBuyingPower(
        accounts_pb2.ReleaseBuyingPowerRequest(order_id="ord_direct1", order_version=0, user_id="gina"),
        metadata=service,
    )
    again = await accounts.ReleaseBuyingPower(
        accounts_pb2.ReleaseBuyingPowerRequest(order_id="ord_direct1", order_version=0, user_id="gina"),
        metadata=service,
    )
    assert released.released == again.released == "30.00"
    late = accounts_pb2.ReserveBuyingPowerRequest()
    late.CopyFrom(request)
    late.order_version = 2
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await accounts.ReserveBuyingPower(late, metadata=service)
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    account = await accounts.GetAccount(accounts_pb2.GetAccountRequest(), metadata=as_user("gina"))
    assert D(account.account.reserved) == 0


# A multi-leg replace cut short: while unresolved both versions hold (the larger counting,
# as for stock); once finished the hold is the new terms' requirement.
SPREAD_LEGS = [
    {"symbol": "AMZN120720P00210000", "side": "sell", "ratio": 1},
    {"symbol": "AMZN120720P00200000", "side": "buy", "ratio": 1},
]
SPREAD_WIDTH = D(1000)  # $10 between the strikes x 100


@pytest.mark.parametrize(("qty", "new_qty"), [("2", "1"), ("1", "3")])
async def test_a_spread_replace_cut_after_its_hold_holds_the_larger_version_until_finished(rig, qty, new_qty):
    mesh, trading, faults, wall = rig
    async with rest_as(mesh, "nina") as nina:
        natural = D(0)
        for leg in SPREAD_LEGS:
            quote = (await nina.get(f"/api/mbt/quotes/{leg['symbol']}")).json()["data"]
            natural += D(quote["ask_price"]) if leg["side"] == "buy" else -D(quote["bid_price"])
        submitted = await nina.post(
            "/api/mbt/orders",
            json={"legs": SPREAD_LEGS, "qty": qty, "order_type": "limit", "limit_price": str(natural - 1)}
            | {"time_in_force": "gtc", "fill_preference": "conservative"},
        )
        assert submitted.status_code == 200, submitted.text
        order_id = submitted.json()["data"]["order_id"]
        assert D((await account_of(nina))["reserved"]) == int(qty) * SPREAD_WIDTH

        faults.arm("ReserveBuyingPower", "cut_after")
        call = trading.orders().ReplaceOrder(
            orders_pb2.ReplaceOrderRequest(order_id=order_id, qty=new_qty, limit_price=str(natural - 2)),
            metadata=as_user("nina", BULK_TIER),
        )
        await faults.cut_short(call, "ReserveBuyingPower")
        assert await call.code() is grpc.StatusCode.CANCELLED
        order = await order_of(nina, order_id)
        assert (order["version"], order["qty"]) == (1, qty)
        # Either version may still fill: the larger one is held.
        larger = max(int(qty), int(new_qty)) * SPREAD_WIDTH
        assert D((await account_of(nina))["reserved"]) == larger

        wall.advance(LEASE)

        async def finished():
            order = await order_of(nina, order_id)
            assert (order["version"], order["qty"], D(order["limit_price"])) == (2, new_qty, natural - 2)
            assert D((await account_of(nina))["reserved"]) == int(new_qty) * SPREAD_WIDTH

        await eventually(finished)


async def test_a_resumed_submit_that_finds_its_order_filled_leaves_the_hold_to_the_fill(rig, monkeypatch):
    """Housekeeping read the order while it was new; by the time its resume concludes, the
    first run has accepted it and the matcher filled it. The resume must not hand the hold
    back: the fill needs it (seen on PostgreSQL as 'no active hold covers this order
    version', the position never appearing)."""
    mesh, trading, faults, _wall = rig
    submits = trading.orders_servicer.submits
    async with rest_as(mesh, "fern") as fern:
        submitted = await fern.post(
            "/api/mbt/orders",
            json={"symbol": "AMZN", "qty": "1", "side": "buy", "order_type": "limit", "limit_price": "1.00"}
            | {"time_in_force": "gtc"},
        )
        assert submitted.status_code == 200, submitted.text
        order_id = submitted.json()["data"]["order_id"]
        async with submits.deps.db.reading() as session:
            read_while_new = dataclasses.replace(await OrderRepository(session).load(order_id), status=Status.NEW)

        async def stuck_new(self, created_before, limit):
            return [read_while_new]

        monkeypatch.setattr(OrderRepository, "stuck_new", stuck_new)
        faults.arm("ReserveBuyingPower", "then", action=lambda: record_fill(trading, "fern", order_id, twice=False))
        faults.arm("ReleaseBuyingPower", "drop")
        assert await submits.resume_new() == 1
        assert ("ReleaseBuyingPower", "drop") not in faults.injected
        assert (await order_of(fern, order_id))["status"] == "filled"

        async def bought():
            assert [p["qty"] for p in (await fern.get("/api/mbt/positions")).json()["data"]] == ["1"]
            assert D((await account_of(fern))["reserved"]) == 0

        await eventually(bought)
    await eventually(lambda: assert_ledger_consistent(trading, "fern"))
