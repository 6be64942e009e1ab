"""Stop and stop-limit orders on an option contract end to end, through REST on a stepped
replay of the bundled AMZN day: prices on the option grid, the orders rest, trigger on the
contract's own (model) quotes and fill by the same ``decide`` as equities (README "How fills
are decided"). The income trader's stop-loss: a short put bought back when its ask rises
through the stop. Every expected price is read from market data's own quote history."""

from decimal import Decimal

from services.marketdata.recording import parse_time_ns
from tests.support.trading import account_when, eventually, order_in, rest_as

D = Decimal
# Near the money a month out: as AMZN falls from $224.26 in the first minutes after 10:00
# New York, this put's model ask rises from about $1.21 past $1.35.
PUT = "AMZN120720P00220000"
STARTING_CASH = D("100000")


async def quote_history(client, symbol: str, after: str) -> list[dict]:
    """Every quote of ``symbol`` market data served after ``after`` (RFC 3339) until now, in
    feed order."""
    quotes: list[dict] = []
    params = {"from": after, "page_size": 1000}
    while True:
        body = (await client.get(f"/api/mbt/quotes/{symbol}/history", params=params)).json()
        quotes += body["data"]
        token = body["meta"].get("next_page_token")
        if not token:
            return [q for q in quotes if parse_time_ns(q["quote_at"]) > parse_time_ns(after)]
        params = {"page_token": token, "from": after, "page_size": 1000}


async def submit(client, **order) -> dict:
    response = await client.post("/api/mbt/orders", json={"time_in_force": "gtc"} | order)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def audit_actions(trading, order_id: str) -> list[str]:
    return sorted(e.record.action for e in await trading.audit(entity_id=order_id))


async def test_a_stop_loss_buys_back_a_short_put_when_its_ask_rises_through_the_stop(mesh, trading):
    async with rest_as(mesh, "stu") as stu:
        quote = (await stu.get(f"/api/mbt/quotes/{PUT}")).json()["data"]
        bid, ask = D(quote["bid_price"]), D(quote["ask_price"])
        assert D(0) < bid < ask < 3  # the penny grid
        sold = await submit(stu, symbol=PUT, side="sell", qty="2", order_type="limit", limit_price=str(bid))
        assert sold["position_intent"] == "sell_to_open"
        await order_in(stu, sold["order_id"], "filled")
        cash = STARTING_CASH + 2 * bid * 100
        await account_when(stu, cash=f"{cash:.2f}", reserved="44000.00")  # 2 x the $220 strike x 100

        # Off the option grid, a stop is refused naming the field, and nothing is held.
        off_grid = await stu.post(
            "/api/mbt/orders",
            json={"symbol": PUT, "side": "buy", "qty": "1", "order_type": "stop", "stop_price": str(ask + D("0.005"))}
            | {"time_in_force": "gtc"},
        )
        error = off_grid.json()["error"]
        assert error["code"] == "invalid_argument" and "stop_price" in error["message"], error

        # The stop-loss: ten cents above the ask. A stop-limit beside it whose limit is ten
        # cents below the ask: it triggers with the stop, then waits for its limit.
        stop, limit = ask + D("0.10"), ask - D("0.10")
        stop_order = await submit(stu, symbol=PUT, side="buy", qty="1", order_type="stop", stop_price=str(stop))
        stop_limit = await submit(
            stu,
            symbol=PUT,
            side="buy",
            qty="1",
            order_type="stop_limit",
            stop_price=str(stop),
            limit_price=str(limit),
        )
        for order in (stop_order, stop_limit):
            assert (order["status"], order["position_intent"], order["triggered_at"]) == (
                "accepted",
                "buy_to_close",
                None,
            )
        # Buying back only lowers the requirement: each holds its worst debit (the stop's
        # collar, the stop-limit's limit) beside the strikes.
        collar = D(stop_order["collar_price"])
        assert collar == (stop * D("1.05")).quantize(D("0.01"))  # 5% beyond the stop
        await account_when(stu, reserved=f"{44000 + collar * 100 + limit * 100:.2f}")

        accepted = stop_order["accepted_at"]
        await trading.step(120)
        history = await quote_history(stu, PUT, accepted)
        trigger = next(q for q in history if D(q["ask_price"]) >= stop)
        after_trigger = history[history.index(trigger) :]
        assert all(D(q["ask_price"]) > limit for q in after_trigger), "the ask stays above the stop-limit's limit"

        done = await order_in(stu, stop_order["order_id"], "filled")
        [fill] = done["fills"]
        assert fill["rule"] == "stop_buy_triggered_market_at_ask"
        assert (fill["quote_at"], fill["quote_sequence"], D(fill["price"])) == (
            trigger["quote_at"],
            trigger["sequence"],
            D(trigger["ask_price"]),
        )
        price = D(fill["price"])
        assert D(fill["bid_price"]) <= price <= D(fill["ask_price"]) and price <= collar  # within the NBBO
        assert (fill["multiplier"], done["triggered_at"]) == ("100", fill["filled_at"])
        explained = (await stu.get(f"/api/mbt/fills/{fill['fill_id']}/explain")).json()["data"]
        assert explained["reproduced"] is True, explained

        # The ledger: the premium paid x 100, one contract left short and its strike held.
        cash -= price * 100
        await account_when(stu, cash=f"{cash:.2f}", reserved=f"{22000 + limit * 100:.2f}")
        position = (await stu.get(f"/api/mbt/positions/{PUT}")).json()["data"]
        assert (position["qty"], position["side"]) == ("-1", "short")

        # The stop-limit triggered on the same tick and rests at its limit.
        async def triggered():
            body = (await stu.get(f"/api/mbt/orders/{stop_limit['order_id']}")).json()["data"]
            assert body["triggered_at"] is not None, body
            return body

        resting = await eventually(triggered)
        # Order times are kept to the microsecond, quote times to the nanosecond.
        triggered_us = parse_time_ns(resting["triggered_at"]) // 1000
        assert (resting["status"], triggered_us) == ("accepted", parse_time_ns(trigger["quote_at"]) // 1000)
        canceled = await stu.delete(f"/api/mbt/orders/{stop_limit['order_id']}")
        assert canceled.status_code == 200, canceled.text
        await account_when(stu, cash=f"{cash:.2f}", reserved="22000.00")

        async def audited():
            assert await audit_actions(trading, stop_limit["order_id"]) == ["cancel", "submit", "trigger"]
            assert await audit_actions(trading, stop_order["order_id"]) == ["fill", "submit"]

        await eventually(audited)


async def test_a_stop_limit_sell_to_close_triggers_on_the_bid_and_fills_at_its_limit_or_better(mesh, trading):
    """A long put's stop-limit protects a gain: it triggers when the bid falls to the stop
    and then sells at the bid no lower than its limit."""
    async with rest_as(mesh, "lin") as lin:
        quote = (await lin.get(f"/api/mbt/quotes/{PUT}")).json()["data"]
        bought = await submit(lin, symbol=PUT, side="buy", qty="1", order_type="market", time_in_force="day")
        await order_in(lin, bought["order_id"], "filled")
        # Above the bid, a sell stop triggers at once, on the quote standing at acceptance.
        bid = D(quote["bid_price"])
        order = await submit(
            lin,
            symbol=PUT,
            side="sell",
            qty="1",
            order_type="stop_limit",
            stop_price=str(bid + D("0.05")),
            limit_price=str(bid - D("0.05")),
            time_in_force="day",
        )
        assert order["position_intent"] == "sell_to_close"
        done = await order_in(lin, order["order_id"], "filled")
        [fill] = done["fills"]
        assert fill["rule"] == "stop_limit_sell_triggered_limit_at_bid", fill
        assert (D(fill["price"]), fill["quote_at"], done["triggered_at"]) == (
            bid,
            quote["quote_at"],
            fill["filled_at"],
        )

        # The order reads filled once orders concluded it; accounts applies the fill from its
        # event, so the position closes a moment later.
        async def closed():
            assert (await lin.get("/api/mbt/positions")).json()["data"] == []

        await eventually(closed)
