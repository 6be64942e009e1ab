"""Defence in depth at the point of truth: whatever a caller upstream decided, the ledger
refuses a fill no hold covers, negative cash and a short position in a cash account, and an
idempotency key (fill id, event id) sent again with other terms. A refusal is loud: an
error log line, an audit row and a metric — and nothing changes."""

from __future__ import annotations

import logging
from decimal import Decimal

import grpc
import httpx
import pytest
from prometheus_client import REGISTRY

from mbt.accounts.v1 import accounts_pb2
from mbt.common.v1 import events_pb2, events_pb2_grpc, trading_pb2
from mbt.orders.v1 import orders_pb2
from services.common.wire.conv import to_timestamp
from tests.support.identity import as_service, as_user
from tests.support.mesh import free_port
from tests.support.trading import START, Trading, eventually, filled_event, rest_as, start_trading_mesh

D = Decimal


@pytest.fixture
async def trading(databases, tmp_path):
    mesh = await start_trading_mesh(databases, tmp_path)
    trading = Trading(mesh)
    yield trading
    await trading.close()
    await mesh.stop()


def refusals(reason: str) -> float:
    return REGISTRY.get_sample_value("mbt_ledger_refusals_total", {"service": "accounts", "reason": reason}) or 0.0


async def deliver(trading: Trading, *events: events_pb2.Event) -> None:
    sink = events_pb2_grpc.EventSinkServiceStub(trading.channel("accounts"))
    await sink.Deliver(events_pb2.DeliverRequest(events=list(events)), metadata=as_service("orders"))


async def resting_buy(trading: Trading, user: str, qty: str, limit: str) -> orders_pb2.Order:
    async with rest_as(trading.mesh, user) as client:
        response = await client.post(
            "/api/mbt/orders",
            json={
                "symbol": "AMZN",
                "side": "buy",
                "qty": qty,
                "order_type": "limit",
                "limit_price": limit,
                "time_in_force": "gtc",
            },
        )
        assert response.status_code == 200, response.text
        order_id = response.json()["data"]["order_id"]
    reply = await trading.orders().GetOrder(orders_pb2.GetOrderRequest(order_id=order_id), metadata=as_user(user))
    return reply.order


async def account(trading: Trading, user: str) -> accounts_pb2.Account:
    return (await trading.accounts().GetAccount(accounts_pb2.GetAccountRequest(), metadata=as_user(user))).account


@pytest.mark.parametrize(
    "qty, price, why",
    [
        ("2", "10.00", "the fill is for 2, the hold for 1"),
        ("1", "10.01", "above the held worst price"),
    ],
)
async def test_a_fill_the_hold_does_not_cover_is_refused_loudly(trading, caplog, qty, price, why):
    order = await resting_buy(trading, "uma", "1", "10.00")
    before = await account(trading, "uma")
    counted = refusals("ledger_invariant")
    with caplog.at_level(logging.ERROR, logger="services.accounts.usecases"):
        await deliver(trading, filled_event(order, "fill_uncovered1", qty=qty, price=price))
    after = await account(trading, "uma")
    assert (after.cash, after.reserved) == (before.cash, before.reserved)
    assert refusals("ledger_invariant") == counted + 1
    [line] = [r for r in caplog.records if r.getMessage() == "fill refused by the ledger"]
    assert why in line.fields["why"]

    async def audited():
        rows = [e.record for e in await trading.audit(user_id="uma") if e.record.action == "refuse_fill"]
        assert [(e.entity_id, e.after["reason"]) for e in rows] == [("fill_uncovered1", "ledger_invariant")]

    await eventually(audited)


async def test_a_fill_for_an_order_that_holds_nothing_is_refused(trading):
    order = await resting_buy(trading, "vic", "1", "10.00")
    ghost = orders_pb2.Order()
    ghost.CopyFrom(order)
    ghost.order_id = "ord_neverheld"
    counted = refusals("ledger_invariant")
    await deliver(trading, filled_event(ghost, "fill_ghost1", qty="1", price="5.00"))
    assert D((await account(trading, "vic")).cash) == D("100000.00")
    assert refusals("ledger_invariant") == counted + 1


async def test_a_fill_id_applied_again_with_other_terms_changes_nothing(trading):
    order = await resting_buy(trading, "wes", "1", "10.00")
    await deliver(trading, filled_event(order, "fill_twice1", qty="1", price="9.00"))
    assert D((await account(trading, "wes")).cash) == D("100000.00") - D("9.00")
    counted = refusals("idempotency_key_reused")
    await deliver(trading, filled_event(order, "fill_twice1", qty="1", price="1.00"))
    assert D((await account(trading, "wes")).cash) == D("100000.00") - D("9.00")
    assert refusals("idempotency_key_reused") == counted + 1


async def test_an_event_id_delivered_again_with_another_payload_is_refused(trading):
    order = await resting_buy(trading, "xia", "1", "10.00")
    first = filled_event(order, "fill_evt1", qty="1", price="9.00")
    await deliver(trading, first)
    forged = filled_event(order, "fill_evt2", qty="1", price="8.00")
    forged.event_id = first.event_id
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await deliver(trading, forged)
    assert refused.value.code() is grpc.StatusCode.ALREADY_EXISTS
    await deliver(trading, first)  # the genuine redelivery is still a no-op
    assert D((await account(trading, "xia")).cash) == D("100000.00") - D("9.00")


async def test_orders_refuses_a_fill_id_recorded_again_with_other_terms(trading):
    order = await resting_buy(trading, "yan", "1", "10.00")
    fill = orders_pb2.Fill(
        fill_id="fill_rec1",
        order_id=order.order_id,
        symbol="AMZN",
        side=trading_pb2.ORDER_SIDE_BUY,
        qty="1",
        price="9.00",
        bid_price="8.99",
        ask_price="9.00",
        bid_size="1",
        ask_size="1",
        quote_at=to_timestamp(START),
        quote_sequence=7,
        filled_at=to_timestamp(START),
        rule="limit_buy_at_ask",
        multiplier="1",
    )
    orders = trading.orders()
    first = await orders.RecordFill(orders_pb2.RecordFillRequest(fill=fill), metadata=as_service("matcher"))
    repeat = await orders.RecordFill(orders_pb2.RecordFillRequest(fill=fill), metadata=as_service("matcher"))
    assert (first.duplicate, repeat.duplicate) == (False, True)
    fill.quote_sequence = 8
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await orders.RecordFill(orders_pb2.RecordFillRequest(fill=fill), metadata=as_service("matcher"))
    assert refused.value.code() is grpc.StatusCode.ALREADY_EXISTS


async def test_refusals_are_counted_where_prometheus_scrapes_them(databases, tmp_path):
    port = free_port()
    mesh = await start_trading_mesh(databases, tmp_path, MBT_ACCOUNTS_METRICS_PORT=str(port))
    trading = Trading(mesh)
    try:
        order = await resting_buy(trading, "zed", "1", "10.00")
        await deliver(trading, filled_event(order, "fill_scraped1", qty="5", price="10.00"))
        async with httpx.AsyncClient() as http:
            scraped = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        [line] = [
            x
            for x in scraped.splitlines()
            if x.startswith('mbt_ledger_refusals_total{reason="ledger_invariant",service="accounts"}')
        ]
        assert float(line.split()[-1]) >= 1
    finally:
        await trading.close()
        await mesh.stop()
