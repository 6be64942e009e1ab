"""Equity paper trading end to end, through REST and native gRPC, on a stepped replay of the
bundled recording: every expected price is computed from the recording itself."""

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from mbt.accounts.v1 import accounts_pb2
from mbt.orders.v1 import orders_pb2
from services.common.wire.conv import datetime_from_ns, timestamp_from_ns
from tests.support import recording
from tests.support.identity import as_user, rest_headers
from tests.support.mesh import gateway_client
from tests.support.trading import CLOSE, START, eventually, ns, rest_as

D = Decimal


async def submit(client, **order):
    response = await client.post("/api/mbt/orders", json=order)
    return response


async def filled(client, order_id: str) -> dict:
    async def check():
        body = (await client.get(f"/api/mbt/orders/{order_id}")).json()["data"]
        assert body["status"] == "filled", body
        return body

    return await eventually(check)


async def test_a_market_buy_fills_at_the_standing_ask_and_everything_agrees(mesh, trading):
    async with rest_as(mesh, "alice") as alice:
        quote = recording.standing("AMZN", ns(START))
        response = await submit(
            alice, client_order_id="m-1", symbol="AMZN", side="buy", qty="10", order_type="market", time_in_force="day"
        )
        assert response.status_code == 200, response.text
        order = response.json()["data"]
        assert order["status"] == "accepted"
        assert order["collar_price"] == str((quote.ask * D("1.05")).quantize(D("0.01"), ROUND_HALF_UP))

        done = await filled(alice, order["order_id"])
        assert (done["filled_qty"], done["filled_avg_price"]) == ("10", str(quote.ask))
        [fill] = done["fills"]
        assert (fill["price"], fill["bid_price"], fill["ask_price"], fill["rule"]) == (
            str(quote.ask),
            str(quote.bid),
            str(quote.ask),
            "market_buy_at_ask",
        )
        cost = D(10) * quote.ask

        async def account_settled():
            account = (await alice.get("/api/mbt/account")).json()["data"]
            assert D(account["cash"]) == D("100000") - cost
            assert D(account["reserved"]) == 0
            return account

        account = await eventually(account_settled)
        position = (await alice.get("/api/mbt/positions/AMZN")).json()["data"]
        assert (position["qty"], position["avg_entry_price"], position["side"]) == ("10", str(quote.ask), "long")
        # Marked independently: a long at the bid of the quote standing now (the clock has not moved).
        value = 10 * quote.bid
        assert (
            position["current_price"],
            position["market_value"],
            position["cost_basis"],
            position["unrealized_pl"],
        ) == (str(quote.bid), f"{value:.2f}", f"{cost:.2f}", f"{value - cost:.2f}")
        assert (account["long_market_value"], account["equity"]) == (
            f"{value:.2f}",
            f"{D('100000') - cost + value:.2f}",
        )

        async def activity_recorded():
            activities = (await alice.get("/api/mbt/activities", params={"type": "fill"})).json()["data"]
            assert len(activities) == 1
            return activities[0]

        activity = await eventually(activity_recorded)
        assert (activity["fill_id"], D(activity["net_amount"])) == (fill["fill_id"], -cost)
        single = (await alice.get(f"/api/mbt/activities/{activity['activity_id']}")).json()["data"]
        assert single == activity

        async def audited():
            actions = sorted(e.record.action for e in await trading.audit(entity_id=order["order_id"]))
            assert actions == ["fill", "submit"]

        await eventually(audited)

        explained = (await alice.get(f"/api/mbt/fills/{fill['fill_id']}/explain")).json()["data"]
        assert explained["reproduced"] is True
        assert (explained["source"], explained["model"]) == ("replay", None)  # a recorded quote
        assert (explained["rule"], explained["fill_price"], explained["ask_price"]) == (
            "market_buy_at_ask",
            str(quote.ask),
            str(quote.ask),
        )


async def test_a_limit_order_rests_then_fills_when_the_ask_comes_down_to_it(mesh, trading):
    async with rest_as(mesh, "bob") as bob:
        quote = recording.standing("AMZN", ns(START))
        horizon = [q for q in recording.quotes("AMZN") if ns(START) < q.at_ns <= ns(START) + 600 * 10**9]
        limit = min(q.ask for q in horizon)  # reached within ten minutes, below today's standing ask
        assert limit < quote.ask
        order = (
            await submit(
                bob, symbol="AMZN", side="buy", qty="5", order_type="limit", limit_price=str(limit), time_in_force="gtc"
            )
        ).json()["data"]
        expected = recording.first_after("AMZN", ns(START), lambda q: q.ask <= limit)
        await trading.step_to(datetime_from_ns(expected.at_ns - 1000))  # the last microsecond before it can fill
        resting = (await bob.get(f"/api/mbt/orders/{order['order_id']}")).json()["data"]
        assert (resting["status"], resting["fills"]) == ("accepted", [])
        assert (await bob.get("/api/mbt/account")).json()["data"]["reserved"] == f"{5 * limit:.2f}"
        await trading.step_to(START + timedelta(seconds=601))
        done = await filled(bob, order["order_id"])
        [fill] = done["fills"]
        assert (fill["price"], fill["quote_at"]) == (str(expected.ask), _rfc3339(expected.at_ns))
        assert fill["rule"] == "limit_buy_at_ask"


async def test_stop_and_stop_limit_trigger_on_the_recorded_quotes(mesh, trading):
    async with rest_as(mesh, "carol") as carol:
        # Own some shares to sell.
        bought = (
            await submit(carol, symbol="GOOG", side="buy", qty="4", order_type="market", time_in_force="day")
        ).json()["data"]
        await filled(carol, bought["order_id"])
        now = await trading.now()
        standing_bid = recording.standing("GOOG", ns(now)).bid
        window = [q for q in recording.quotes("GOOG") if ns(now) < q.at_ns <= ns(now) + 900 * 10**9]
        lowest = min(q.bid for q in window)
        assert lowest < standing_bid - D("0.02"), "the recording's bid falls within fifteen minutes"
        stop = ((standing_bid + lowest) / 2).quantize(D("0.01"))  # below the bid now, reached later
        stop_order = (
            await submit(
                carol, symbol="GOOG", side="sell", qty="2", order_type="stop", stop_price=str(stop), time_in_force="day"
            )
        ).json()["data"]
        stop_limit = (
            await submit(
                carol,
                symbol="GOOG",
                side="sell",
                qty="2",
                order_type="stop_limit",
                stop_price=str(stop),
                limit_price=str(stop - D("5.00")),
                time_in_force="day",
            )
        ).json()["data"]
        trigger = recording.first_after("GOOG", ns(now), lambda q: q.bid <= stop)
        await trading.step_to(now + timedelta(seconds=901))
        stop_fill = (await filled(carol, stop_order["order_id"]))["fills"][0]
        assert (stop_fill["price"], stop_fill["rule"]) == (str(trigger.bid), "stop_sell_triggered_market_at_bid")
        stop_limit_done = await filled(carol, stop_limit["order_id"])
        assert stop_limit_done["triggered_at"] is not None
        assert stop_limit_done["fills"][0]["price"] == str(trigger.bid)
        assert stop_limit_done["fills"][0]["rule"] == "stop_limit_sell_triggered_limit_at_bid"


async def test_cancel_and_replace_release_and_reprice_the_hold(mesh, trading):
    async with rest_as(mesh, "dave") as dave:
        order = (
            await submit(
                dave, symbol="AMZN", side="buy", qty="10", order_type="limit", limit_price="100.00", time_in_force="gtc"
            )
        ).json()["data"]
        account = (await dave.get("/api/mbt/account")).json()["data"]
        assert D(account["reserved"]) == D("1000.00")
        replaced = await dave.patch(f"/api/mbt/orders/{order['order_id']}", json={"limit_price": "150.00", "qty": "20"})
        assert replaced.status_code == 200, replaced.text
        assert (replaced.json()["data"]["version"], replaced.json()["data"]["limit_price"]) == (2, "150.00")
        assert D((await dave.get("/api/mbt/account")).json()["data"]["reserved"]) == D("3000.00")
        too_big = await dave.patch(f"/api/mbt/orders/{order['order_id']}", json={"qty": "1000"})
        assert too_big.status_code == 400
        assert too_big.json()["error"]["code"] == "insufficient_buying_power"
        canceled = await dave.delete(f"/api/mbt/orders/{order['order_id']}")
        assert canceled.json()["data"]["status"] == "canceled"
        again = await dave.delete(f"/api/mbt/orders/{order['order_id']}")
        assert (
            again.status_code == 200 and again.json()["data"]["canceled_at"] == canceled.json()["data"]["canceled_at"]
        )

        async def released():
            assert D((await dave.get("/api/mbt/account")).json()["data"]["reserved"]) == 0

        await eventually(released)
        not_replaceable = await dave.patch(f"/api/mbt/orders/{order['order_id']}", json={"qty": "1"})
        assert not_replaceable.json()["error"]["code"] == "order_not_replaceable"


async def test_a_filled_order_cannot_be_canceled(mesh, trading):
    async with rest_as(mesh, "erin") as erin:
        order = (
            await submit(erin, symbol="AMZN", side="buy", qty="1", order_type="market", time_in_force="day")
        ).json()["data"]
        await filled(erin, order["order_id"])
        response = await erin.delete(f"/api/mbt/orders/{order['order_id']}")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "order_not_cancelable"


async def test_day_orders_expire_at_the_close_and_release_their_hold(mesh, trading):
    async with rest_as(mesh, "frank") as frank:
        order = (
            await submit(
                frank,
                symbol="AMZN",
                side="buy",
                qty="10",
                order_type="limit",
                limit_price="100.00",
                time_in_force="day",
            )
        ).json()["data"]
        assert order["expires_at"] == "2012-06-21T20:00:00Z"
        await trading.step_to(CLOSE + timedelta(seconds=1))

        async def expired():
            body = (await frank.get(f"/api/mbt/orders/{order['order_id']}")).json()["data"]
            assert body["status"] == "expired"
            assert body["expired_at"] == "2012-06-21T20:00:00Z"
            assert D((await frank.get("/api/mbt/account")).json()["data"]["reserved"]) == 0

        await eventually(expired)

        async def audited():
            assert "expire" in [e.record.action for e in await trading.audit(entity_id=order["order_id"])]

        await eventually(audited)


async def test_trading_over_native_grpc(mesh, trading):
    me = as_user("grace", "pro")  # real-time marks (a Free user's are 15 minutes late)
    quote = recording.standing("GOOG", ns(START))
    reply = await trading.orders().SubmitOrder(
        orders_pb2.SubmitOrderRequest(
            client_order_id="g-1", symbol="GOOG", side=1, qty="3", order_type=1, time_in_force=1
        ),
        metadata=me,
    )
    assert reply.order.status == orders_pb2.ORDER_STATUS_ACCEPTED

    async def done():
        order = (
            await trading.orders().GetOrder(orders_pb2.GetOrderRequest(order_id=reply.order.order_id), metadata=me)
        ).order
        assert order.status == orders_pb2.ORDER_STATUS_FILLED
        return order

    order = await eventually(done)
    assert order.fills[0].price == str(quote.ask)

    async def settled():
        account = (await trading.accounts().GetAccount(accounts_pb2.GetAccountRequest(), metadata=me)).account
        assert D(account.cash) == D("100000") - 3 * quote.ask

    await eventually(settled)
    await trading.step(300)
    mark = recording.standing("GOOG", ns(START + timedelta(seconds=300)))
    unrealized = 3 * (mark.bid - quote.ask)  # a long is marked at the bid, against what it cost
    pnl = (await trading.accounts().GetPnl(accounts_pb2.GetPnlRequest(), metadata=me)).pnl
    assert (pnl.realized_pl, pnl.unrealized_pl, pnl.total_pl) == ("0.00", f"{unrealized:.2f}", f"{unrealized:.2f}")
    assert [(line.symbol, line.unrealized_pl) for line in pnl.lines] == [("GOOG", f"{unrealized:.2f}")]


def _rfc3339(at_ns: int) -> str:
    return timestamp_from_ns(at_ns).ToJsonString()


async def test_a_free_users_positions_are_marked_at_the_quote_their_tier_may_see(mesh, trading):
    """Free sees quotes 15 minutes late, so its marks are 15 minutes late too (a real-time
    mark would show the real-time price through the position); Pro's are real time. Over
    native gRPC and through the gateway alike."""
    users = {"fay": "free", "pat": "pro"}
    for user, tier in users.items():
        reply = await trading.orders().SubmitOrder(
            orders_pb2.SubmitOrderRequest(
                client_order_id=f"{user}-1", symbol="AMZN", side=1, qty="2", order_type=1, time_in_force=1
            ),
            metadata=as_user(user, tier),
        )
        assert reply.order.status == orders_pb2.ORDER_STATUS_ACCEPTED

        async def bought(user=user, tier=tier):
            positions = (
                await trading.accounts().ListPositions(
                    accounts_pb2.ListPositionsRequest(), metadata=as_user(user, tier)
                )
            ).positions
            assert [(p.symbol, p.qty) for p in positions] == [("AMZN", "2")]

        await eventually(bought)
    await trading.step(20 * 60)
    now = await trading.now()
    delayed, live = recording.standing("AMZN", ns(now - timedelta(minutes=15))), recording.standing("AMZN", ns(now))
    assert delayed.bid != live.bid and delayed.bid < delayed.ask and live.bid < live.ask  # the test can tell them apart
    expected = {"fay": delayed.bid, "pat": live.bid}
    for user, tier in users.items():
        native = (
            await trading.accounts().GetPosition(
                accounts_pb2.GetPositionRequest(symbol="AMZN"), metadata=as_user(user, tier)
            )
        ).position
        async with gateway_client(mesh.app) as client:
            rest = (await client.get("/api/mbt/positions/AMZN", headers=rest_headers(user, tier))).json()["data"]
            account = (await client.get("/api/mbt/account", headers=rest_headers(user, tier))).json()["data"]
        assert D(native.current_price) == D(rest["current_price"]) == expected[user], user
        assert D(account["long_market_value"]) == 2 * expected[user], user
