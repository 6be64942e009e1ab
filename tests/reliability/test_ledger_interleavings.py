"""Property: no interleaving of submits, replaces, cancels and fills, with failures injected
between the steps of the submit and replace sagas (a request that never arrives, a reply
that is lost) and fills recorded twice, makes a hold disagree with its order, cash negative
or a cash account short.

Hypothesis draws the sequences; each runs as a new user on one mesh per backend. After every
step the invariants that hold at any moment are checked (cash = start + signed fills, cash
>= 0, no short, holds cover the working orders); after a settle (leases run out, housekeeping
finishes or abandons what was cut short) the holds must equal the working orders'
requirement exactly."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mbt.common.v1 import trading_pb2
from mbt.orders.v1 import orders_pb2
from services.common.clock import ManualClock, WallClock
from services.common.ids import derived_id
from services.common.wire.conv import to_timestamp
from services.orders.app import build as build_orders
from tests.support.faults import FaultyClient
from tests.support.identity import BULK_TIER, as_service, as_user
from tests.support.ledger_check import assert_ledger_consistent
from tests.support.mesh import mesh_settings, start_mesh
from tests.support.trading import START, Trading, eventually, rest_as

LEASE = timedelta(minutes=5)
USERS = itertools.count()
SAGA_FAULTS = st.sampled_from([None, "drop", "lose_reply"])
# Buys rest far below the market ($1-$50), sells far above ($800+): only the test fills them.
SUBMIT = st.tuples(
    st.just("submit"), st.sampled_from(["buy", "sell"]), st.integers(1, 5), st.integers(100, 5000), SAGA_FAULTS
)
# Few orders per run, so steps often meet on the same order.
REPLACE = st.tuples(st.just("replace"), st.integers(0, 2), st.integers(1, 6), st.integers(100, 5000), SAGA_FAULTS)
CANCEL = st.tuples(st.just("cancel"), st.integers(0, 2))
FILL = st.tuples(st.just("fill"), st.integers(0, 2), st.booleans())
SETTLE = st.tuples(st.just("settle"))
STEPS = st.lists(st.one_of(SUBMIT, REPLACE, REPLACE, CANCEL, FILL, SETTLE), min_size=6, max_size=16)


@pytest.fixture
async def rig(databases, tmp_path):
    faults = FaultyClient()
    wall = ManualClock(WallClock().now())
    built = {}

    def orders(s):
        runtime = build_orders(s, wall=wall, wrap_accounts=faults.wrap)
        built["orders"] = runtime.registrations[0].servicer
        return runtime

    settings_ = mesh_settings(
        databases, tmp_path, MBT_REPLAY_MODE="stepped", MBT_REPLAY_START=START.isoformat(), MBT_RPC_TIMEOUT_SECONDS="5"
    )
    mesh = await start_mesh(settings_, builders={"orders": orders})
    trading = Trading(mesh)
    yield trading, faults, wall, built["orders"]
    await trading.close()
    await mesh.stop()


def price(side: str, cents: int) -> str:
    dollars = Decimal(cents) / 100 + (0 if side == "buy" else 800)
    return str(dollars.quantize(Decimal("0.01")))


async def record_fill(trading: Trading, user: str, order_id: str, twice: bool) -> None:
    order = (
        await trading.orders().GetOrder(
            orders_pb2.GetOrderRequest(order_id=order_id), metadata=as_user(user, BULK_TIER)
        )
    ).order
    if order.status != orders_pb2.ORDER_STATUS_ACCEPTED:
        return
    limit = order.limit_price
    cent = Decimal("0.01")
    buying = order.side == trading_pb2.ORDER_SIDE_BUY
    tick = int(START.timestamp() * 1e9) + order.version
    fill = orders_pb2.Fill(
        fill_id=derived_id("fill", order_id, order.version),
        order_id=order_id,
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        price=limit,
        multiplier="1",
        bid_price=str(Decimal(limit) - cent) if buying else limit,
        ask_price=limit if buying else str(Decimal(limit) + cent),
        bid_size="100",
        ask_size="100",
        quote_at=to_timestamp(START),
        quote_sequence=tick,
        filled_at=to_timestamp(START),
        rule="limit_buy_at_ask" if buying else "limit_sell_at_bid",
    )
    for _ in range(2 if twice else 1):
        await trading.orders().RecordFill(orders_pb2.RecordFillRequest(fill=fill), metadata=as_service("matcher"))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
# The reproduction: a replace whose reply was lost, then another replace.
@example(
    steps=[
        ("submit", "buy", 1, 100, None),
        ("replace", 0, 2, 100, "lose_reply"),
        ("replace", 0, 5, 200, None),
        ("settle",),
    ]
)
@given(steps=STEPS)
async def test_no_interleaving_with_faults_breaks_the_ledger(rig, steps):
    trading, faults, wall, orders = rig
    user = f"prop{next(USERS)}"
    placed: list[str] = []
    async with rest_as(trading.mesh, user) as client:
        for number, step in enumerate(steps):
            kind = step[0]
            if kind == "submit":
                _, side, qty, cents, fault = step
                if fault:
                    faults.arm("ReserveBuyingPower", fault)
                key = f"step-{number}"
                response = await client.post(
                    "/api/mbt/orders",
                    json={
                        "client_order_id": key,
                        "symbol": "AMZN",
                        "side": side,
                        "qty": str(qty),
                        "order_type": "limit",
                        "limit_price": price(side, cents),
                        "time_in_force": "gtc",
                    },
                )
                assert response.status_code in (200, 400, 503), response.text
                if response.status_code == 503:  # the order exists, half-submitted: the replay finds it
                    response = await client.post(
                        "/api/mbt/orders",
                        json={
                            "client_order_id": key,
                            "symbol": "AMZN",
                            "side": side,
                            "qty": str(qty),
                            "order_type": "limit",
                            "limit_price": price(side, cents),
                            "time_in_force": "gtc",
                        },
                    )
                    assert response.status_code in (200, 400), response.text
                if response.status_code == 200:
                    placed.append(response.json()["data"]["order_id"])
            elif kind == "replace" and placed:
                _, index, qty, cents, fault = step
                order_id = placed[index % len(placed)]
                side = (await client.get(f"/api/mbt/orders/{order_id}")).json()["data"]["side"]
                if fault:
                    faults.arm("ReserveBuyingPower", fault)
                response = await client.patch(
                    f"/api/mbt/orders/{order_id}", json={"qty": str(qty), "limit_price": price(side, cents)}
                )
                assert response.status_code in (200, 400, 409, 503), response.text
            elif kind == "cancel" and placed:
                response = await client.delete(f"/api/mbt/orders/{placed[step[1] % len(placed)]}")
                assert response.status_code in (200, 400), response.text
            elif kind == "fill" and placed:
                await record_fill(trading, user, placed[step[1] % len(placed)], twice=step[2])
            elif kind == "settle":
                faults.disarm()
                wall.advance(LEASE)
                await orders.submits.resume_new()
                await orders.replaces.resume()
                await eventually(lambda: assert_ledger_consistent(trading, user), timeout=30)
                continue
            faults.disarm()
            await eventually(lambda: assert_ledger_consistent(trading, user, settled=False), timeout=30)

        wall.advance(LEASE)

        async def settled():
            await orders.submits.resume_new()
            await orders.replaces.resume()
            return await assert_ledger_consistent(trading, user)

        await eventually(settled, timeout=30)
