"""Single-leg option orders end to end, through REST and native gRPC, on a stepped replay of
the bundled AMZN day: the contracts are on the option model's listed grid and every price
is read from market data's own quotes (README "Market data" / "Options")."""

from datetime import UTC, datetime
from decimal import Decimal

import grpc
import pytest

from mbt.common.v1 import trading_pb2
from mbt.matcher.v1 import matcher_pb2
from mbt.orders.v1 import orders_pb2
from tests.support.identity import as_service
from tests.support.trading import account_when, eventually, order_in, rest_as, user_metadata

D = Decimal
CALL = "AMZN120720C00230000"
PADDED_CALL = "AMZN  120720C00230000"
OTHER_CALL = "AMZN120720C00240000"
PUT = "AMZN120720P00210000"
STARTING_CASH = D("100000")


async def quote(client, symbol: str) -> tuple[Decimal, Decimal]:
    body = (await client.get(f"/api/mbt/quotes/{symbol}")).json()["data"]
    return D(body["bid_price"]), D(body["ask_price"])


async def account(client) -> dict:
    return (await client.get("/api/mbt/account")).json()["data"]


async def settled(client, cash: Decimal, reserved: Decimal) -> dict:
    return await account_when(client, cash=f"{cash:.2f}", reserved=f"{reserved:.2f}")


async def test_a_call_bought_over_grpc_and_sold_over_rest_moves_cash_and_pl_by_100_per_contract(mesh, trading):
    async with rest_as(mesh, "olive") as olive:
        bid, ask = await quote(olive, CALL)
        assert D(0) < bid < ask
        reply = await trading.orders().SubmitOrder(
            orders_pb2.SubmitOrderRequest(
                client_order_id="buy-call",
                symbol=PADDED_CALL,
                side=trading_pb2.ORDER_SIDE_BUY,
                qty="2",
                order_type=trading_pb2.ORDER_TYPE_MARKET,
                time_in_force=trading_pb2.TIME_IN_FORCE_DAY,
            ),
            metadata=user_metadata("olive"),
        )
        order = reply.order
        assert (order.symbol, order.asset_class, order.multiplier) == (CALL, trading_pb2.ASSET_CLASS_US_OPTION, "100")
        assert order.position_intent == trading_pb2.POSITION_INTENT_BUY_TO_OPEN
        bought = await order_in(olive, order.order_id, "filled")
        assert (D(bought["filled_avg_price"]), bought["position_intent"]) == (ask, "buy_to_open")
        [fill] = bought["fills"]
        assert (fill["multiplier"], fill["rule"]) == ("100", "market_buy_at_ask")
        explained = (await olive.get(f"/api/mbt/fills/{fill['fill_id']}/explain")).json()["data"]
        assert explained["reproduced"] is True, explained
        # The deciding quote came from the option quote model: its inputs are shown.
        assert (explained["source"], D(explained["ask_price"])) == ("model", ask), explained
        assert explained["model"]["underlying_symbol"] == "AMZN"
        assert D(explained["model"]["underlying_price"]) > 0 and D(explained["model"]["volatility"]) > 0
        paid = 2 * ask * 100
        await settled(olive, STARTING_CASH - paid, D(0))
        position = (await olive.get(f"/api/mbt/positions/{CALL}")).json()["data"]
        assert (position["qty"], position["multiplier"], position["asset_class"], position["side"]) == (
            "2",
            "100",
            "us_option",
            "long",
        )
        assert D(position["market_value"]) == 2 * bid * 100
        assert D(position["unrealized_pl"]) == (bid - ask) * 2 * 100

        # No intent sent: selling what is held closes it.
        sold = await olive.post(
            "/api/mbt/orders",
            json={"client_order_id": "sell-call", "symbol": CALL, "side": "sell", "qty": "2", "order_type": "market"}
            | {"time_in_force": "day"},
        )
        assert sold.status_code == 200, sold.text
        assert sold.json()["data"]["position_intent"] == "sell_to_close"
        again = await olive.post(
            "/api/mbt/orders",
            json={"client_order_id": "sell-call", "symbol": CALL, "side": "sell", "qty": "2", "order_type": "market"}
            | {"time_in_force": "day"},
        )
        assert again.json()["meta"]["idempotent_replay"] is True, again.text
        assert again.json()["data"]["order_id"] == sold.json()["data"]["order_id"]
        done = await order_in(olive, sold.json()["data"]["order_id"], "filled")
        assert D(done["filled_avg_price"]) == bid
        await settled(olive, STARTING_CASH - paid + 2 * bid * 100, D(0))

        async def closed():
            positions = (await olive.get("/api/mbt/positions")).json()["data"]
            assert positions == []

        await eventually(closed)
        pnl = (await olive.get("/api/mbt/pnl")).json()["data"]
        assert D(pnl["realized_pl"]) == (bid - ask) * 2 * 100


async def test_a_covered_call_locks_its_shares_and_a_naked_call_is_refused(mesh, trading):
    async with rest_as(mesh, "carl") as carl:
        _, ask = await quote(carl, "AMZN")
        shares = await carl.post(
            "/api/mbt/orders",
            json={"symbol": "AMZN", "side": "buy", "qty": "100", "order_type": "market", "time_in_force": "day"},
        )
        assert shares.status_code == 200, shares.text
        await order_in(carl, shares.json()["data"]["order_id"], "filled")
        cash = STARTING_CASH - 100 * ask
        await settled(carl, cash, D(0))

        call_bid, _ = await quote(carl, CALL)
        written = await carl.post(
            "/api/mbt/orders",
            json={"symbol": CALL, "side": "sell", "qty": "1", "order_type": "limit", "limit_price": str(call_bid)}
            | {"time_in_force": "gtc", "position_intent": "sell_to_open"},
        )
        assert written.status_code == 200, written.text
        assert written.json()["data"]["position_intent"] == "sell_to_open"
        await order_in(carl, written.json()["data"]["order_id"], "filled")
        # The premium is cash; the call is covered by the shares, so no cash is held for it.
        cash += call_bid * 100
        await settled(carl, cash, D(0))
        position = (await carl.get(f"/api/mbt/positions/{CALL}")).json()["data"]
        assert (position["qty"], position["side"]) == ("-1", "short")

        # The 100 shares cover the call: they cannot be sold while it is open.
        locked = await carl.post(
            "/api/mbt/orders",
            json={"symbol": "AMZN", "side": "sell", "qty": "1", "order_type": "market", "time_in_force": "day"},
        )
        assert locked.json()["error"]["code"] == "insufficient_buying_power", locked.text
        assert "100 AMZN shares cover short calls" in locked.json()["error"]["message"]
        # A second call has no shares to cover it: naked, refused in a cash account.
        naked = await carl.post(
            "/api/mbt/orders",
            json={"symbol": OTHER_CALL, "side": "sell", "qty": "1", "order_type": "limit", "limit_price": "0.50"}
            | {"time_in_force": "day"},
        )
        assert naked.json()["error"]["code"] == "uncovered_option_not_allowed", naked.text
        await settled(carl, cash, D(0))


async def sell_puts(trading, user: str, qty: str, limit: Decimal) -> orders_pb2.Order:
    reply = await trading.orders().SubmitOrder(
        orders_pb2.SubmitOrderRequest(
            symbol=PUT,
            asset_class=trading_pb2.ASSET_CLASS_US_OPTION,
            side=trading_pb2.ORDER_SIDE_SELL,
            qty=qty,
            order_type=trading_pb2.ORDER_TYPE_LIMIT,
            limit_price=str(limit),
            time_in_force=trading_pb2.TIME_IN_FORCE_GTC,
        ),
        metadata=user_metadata(user),
    )
    return reply.order


async def test_a_cash_secured_put_holds_its_strike_working_and_once_filled(mesh, trading):
    async with rest_as(mesh, "pat") as pat:
        put_bid, put_ask = await quote(pat, PUT)
        # Resting above the ask: not marketable, it works and holds.
        limit = put_ask + 1
        order = await sell_puts(trading, "pat", "3", limit)
        assert order.status == orders_pb2.ORDER_STATUS_ACCEPTED
        assert order.position_intent == trading_pb2.POSITION_INTENT_SELL_TO_OPEN
        # $210 strike x 100 shares x 3 contracts; the expected credit is not counted before it is received.
        held = await settled(pat, STARTING_CASH, D(210) * 100 * 3)
        assert D(held["buying_power"]) == STARTING_CASH - 63000
        # A replace re-prices the working put: off the option grid it is refused, on it accepted.
        off_grid = await pat.patch(f"/api/mbt/orders/{order.order_id}", json={"limit_price": str(limit + D("0.001"))})
        assert off_grid.json()["error"]["code"] == "invalid_argument", off_grid.text
        replaced = await pat.patch(f"/api/mbt/orders/{order.order_id}", json={"qty": "2"})
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["data"]["position_intent"] == "sell_to_open"
        await settled(pat, STARTING_CASH, D(210) * 100 * 2)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await sell_puts(trading, "pat", "1.5", limit)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "whole number of contracts" in refused.value.details()
        await settled(pat, STARTING_CASH, D(210) * 100 * 2)
        canceled = await pat.delete(f"/api/mbt/orders/{order.order_id}")
        assert canceled.status_code == 200, canceled.text
        await settled(pat, STARTING_CASH, D(0))

        # Sold at the bid it fills: the premium lands in cash and the strike stays held, so
        # buying power is down by strike x 100 less the credit.
        filled = await sell_puts(trading, "pat", "1", put_bid)
        await order_in(pat, filled.order_id, "filled")
        after = await settled(pat, STARTING_CASH + put_bid * 100, D(21000))
        assert D(after["buying_power"]) == STARTING_CASH - (21000 - put_bid * 100)
        position = (await pat.get(f"/api/mbt/positions/{PUT}")).json()["data"]
        assert (position["qty"], position["side"], position["asset_class"]) == ("-1", "short", "us_option")


@pytest.mark.parametrize(
    ("order", "reason", "field"),
    [
        ({"symbol": CALL, "qty": "1.5"}, "invalid_argument", "qty"),
        ({"symbol": CALL, "order_type": "limit", "limit_price": "3.01"}, "invalid_argument", "limit_price"),
        ({"symbol": CALL, "time_in_force": "ioc"}, "invalid_argument", "time_in_force"),
        ({"symbol": "AMZN120615C00220000"}, "contract_expired", None),
        ({"symbol": "AMZN120720C00231000"}, "not_found", None),
        ({"symbol": CALL, "position_intent": "sell_to_close"}, "invalid_argument", "position_intent"),
        ({"symbol": CALL, "side": "sell", "position_intent": "sell_to_close"}, "invalid_argument", "position_intent"),
        ({"symbol": "AMZN", "position_intent": "buy_to_open"}, "invalid_argument", "position_intent"),
    ],
)
async def test_bad_option_orders_are_refused_and_change_nothing(mesh, trading, order, reason, field):
    async with rest_as(mesh, "bea") as bea:
        before = await account(bea)
        body = {"side": "buy", "qty": "1", "order_type": "market", "time_in_force": "day"} | order
        response = await bea.post("/api/mbt/orders", json=body)
        assert response.status_code >= 400, response.text
        error = response.json()["error"]
        assert error["code"] == reason, error
        if field is not None:
            assert error.get("field") == field or field in error["message"], error
        after = await account(bea)
        assert (after["cash"], after["reserved"], after["buying_power"]) == (
            before["cash"],
            before["reserved"],
            before["buying_power"],
        )
        assert (await bea.get("/api/mbt/positions")).json()["data"] == []


LOWER_PUT = "AMZN120720P00200000"


async def test_a_bull_put_credit_spread_fills_as_one_order_and_holds_its_width(mesh, trading):
    async with rest_as(mesh, "sam") as sam:
        short_bid, _ = await quote(sam, PUT)
        _, long_ask = await quote(sam, LOWER_PUT)
        natural = long_ask - short_bid
        assert natural < 0  # a credit
        legs = [
            {"symbol": PUT, "side": "sell", "ratio": 1},
            {"symbol": LOWER_PUT, "side": "buy", "ratio": 1, "position_intent": "buy_to_open"},
        ]
        # Sent as a debit, the classic sign error, it is refused and nothing is held.
        wrong = await sam.post(
            "/api/mbt/orders",
            json={"order_class": "mleg", "legs": legs, "qty": "2", "order_type": "limit", "limit_price": "5.00"}
            | {"time_in_force": "day"},
        )
        assert wrong.json()["error"]["code"] == "limit_price_sign", wrong.text
        await settled(sam, STARTING_CASH, D(0))

        reply = await trading.orders().SubmitOrder(
            orders_pb2.SubmitOrderRequest(
                order_class=trading_pb2.ORDER_CLASS_MLEG,
                legs=[
                    trading_pb2.OrderLeg(symbol=PUT, side=trading_pb2.ORDER_SIDE_SELL, ratio=1),
                    trading_pb2.OrderLeg(
                        symbol=LOWER_PUT,
                        side=trading_pb2.ORDER_SIDE_BUY,
                        ratio=1,
                        position_intent=trading_pb2.POSITION_INTENT_BUY_TO_OPEN,
                    ),
                ],
                qty="2",
                order_type=trading_pb2.ORDER_TYPE_LIMIT,
                limit_price=str(natural),
                time_in_force=trading_pb2.TIME_IN_FORCE_DAY,
                fill_preference=trading_pb2.FILL_PREFERENCE_CONSERVATIVE,
            ),
            metadata=user_metadata("sam"),
        )
        order = reply.order
        assert order.order_class == trading_pb2.ORDER_CLASS_MLEG
        assert [leg.position_intent for leg in order.legs] == [
            trading_pb2.POSITION_INTENT_SELL_TO_OPEN,
            trading_pb2.POSITION_INTENT_BUY_TO_OPEN,
        ]
        done = await order_in(sam, order.order_id, "filled")
        assert D(done["filled_avg_price"]) == natural
        [fill] = done["fills"]
        assert [(leg["symbol"], D(leg["price"])) for leg in fill["legs"]] == [(PUT, short_bid), (LOWER_PUT, long_ask)]
        # The credit is cash; the $10 width x 100 x 2 spreads stays held: buying power is down
        # by the width less the credit, never up.
        credit = -natural * 100 * 2
        after = await settled(sam, STARTING_CASH + credit, D(2000))
        assert D(after["buying_power"]) == STARTING_CASH + credit - 2000
        positions = {p["symbol"]: p["qty"] for p in (await sam.get("/api/mbt/positions")).json()["data"]}
        assert positions == {PUT: "-2", LOWER_PUT: "2"}


async def test_an_iron_condor_rests_holding_its_wider_wing_until_canceled(mesh, trading):
    condor = [
        {"symbol": "AMZN120720P00190000", "side": "buy", "ratio": 1},
        {"symbol": LOWER_PUT, "side": "sell", "ratio": 1},
        {"symbol": "AMZN120720C00240000", "side": "sell", "ratio": 1},
        {"symbol": "AMZN120720C00250000", "side": "buy", "ratio": 1},
    ]
    async with rest_as(mesh, "ivy") as ivy:
        quotes = [await quote(ivy, leg["symbol"]) for leg in condor]
        natural = sum(ask if leg["side"] == "buy" else -bid for leg, (bid, ask) in zip(condor, quotes, strict=True))
        assert natural < 0
        # Asking a dollar more credit than the natural: it works, and waits.
        response = await ivy.post(
            "/api/mbt/orders",
            json={"legs": condor, "qty": "3", "order_type": "limit", "limit_price": str(natural - 1)}
            | {"time_in_force": "gtc"},
        )
        assert response.status_code == 200, response.text
        order = response.json()["data"]
        assert (order["order_class"], order["status"], order["fill_preference"]) == ("mleg", "accepted", "aggressive")
        assert [leg["position_intent"] for leg in order["legs"]] == [
            "buy_to_open",
            "sell_to_open",
            "sell_to_open",
            "buy_to_open",
        ]
        # Only one side can lose at expiry: the wider wing ($10) x 100 x 3 condors is held.
        await settled(ivy, STARTING_CASH, D(3000))
        await trading.step(120)

        async def still_working():
            book = await trading.matcher().GetBook(matcher_pb2.GetBookRequest(), metadata=as_service("tests"))
            assert book.decisions_in_flight == 0 and book.working_orders == 1

        await eventually(still_working)
        assert (await ivy.get(f"/api/mbt/orders/{order['order_id']}")).json()["data"]["status"] == "accepted"
        canceled = await ivy.delete(f"/api/mbt/orders/{order['order_id']}")
        assert canceled.status_code == 200, canceled.text
        await settled(ivy, STARTING_CASH, D(0))
        assert (await ivy.get("/api/mbt/positions")).json()["data"] == []


async def test_closing_legs_are_inferred_from_the_positions_held(mesh, trading):
    async with rest_as(mesh, "cole") as cole:
        spread = [{"symbol": PUT, "side": "sell", "ratio": 1}, {"symbol": LOWER_PUT, "side": "buy", "ratio": 1}]
        opened = await cole.post(
            "/api/mbt/orders",
            json={"legs": spread, "qty": "1", "order_type": "market", "time_in_force": "day"}
            | {"fill_preference": "conservative"},
        )
        assert opened.status_code == 200, opened.text
        await order_in(cole, opened.json()["data"]["order_id"], "filled")
        closing = [{"symbol": PUT, "side": "buy", "ratio": 1}, {"symbol": LOWER_PUT, "side": "sell", "ratio": 1}]
        closed = await cole.post(
            "/api/mbt/orders",
            json={"legs": closing, "qty": "1", "order_type": "market", "time_in_force": "day"}
            | {"fill_preference": "conservative"},
        )
        assert closed.status_code == 200, closed.text
        assert [leg["position_intent"] for leg in closed.json()["data"]["legs"]] == ["buy_to_close", "sell_to_close"]
        await order_in(cole, closed.json()["data"]["order_id"], "filled")

        async def flat():
            assert (await cole.get("/api/mbt/positions")).json()["data"] == []
            assert (await account(cole))["reserved"] == "0.00"

        await eventually(flat)
        # Closing more than is held is refused per leg, naming it.
        too_many = await cole.post(
            "/api/mbt/orders",
            json={"legs": closing, "qty": "1", "order_type": "market", "time_in_force": "day"}
            | {"legs": [closing[0] | {"position_intent": "buy_to_close"}, closing[1]]},
        )
        assert too_many.json()["error"]["code"] == "invalid_argument", too_many.text
        assert "legs[0].position_intent" in too_many.text


async def test_working_orders_on_a_contract_expire_at_its_last_close_and_release_their_holds(mesh, trading):
    """Issue 11: a gtc order on a contract cannot outlive it. At Friday 2012-06-22's close the
    puts expiring that day stop trading: the working orders on them, single-leg and a
    spread, expire (``contract_expired``) and their holds are released; the same put order
    on a July contract keeps working."""
    friday_put, july_put = "AMZN120622P00180000", "AMZN120720P00180000"
    friday_spread = [
        {"symbol": "AMZN120622P00185000", "side": "buy", "ratio": 1},
        {"symbol": "AMZN120622P00190000", "side": "sell", "ratio": 1},
    ]
    async with rest_as(mesh, "gale") as gale:
        _, friday_ask = await quote(gale, friday_put)
        resting = await gale.post(
            "/api/mbt/orders",
            json={"client_order_id": "friday-put", "symbol": friday_put, "side": "sell", "qty": "1"}
            | {"order_type": "limit", "limit_price": str(friday_ask + 1), "time_in_force": "gtc"},
        )
        assert resting.status_code == 200, resting.text
        friday_order = resting.json()["data"]
        assert (friday_order["status"], friday_order["position_intent"]) == ("accepted", "sell_to_open")
        _, july_ask = await quote(gale, july_put)
        july_order = (
            await trading.orders().SubmitOrder(
                orders_pb2.SubmitOrderRequest(
                    symbol=july_put,
                    side=trading_pb2.ORDER_SIDE_SELL,
                    qty="1",
                    order_type=trading_pb2.ORDER_TYPE_LIMIT,
                    limit_price=str(july_ask + 1),
                    time_in_force=trading_pb2.TIME_IN_FORCE_GTC,
                ),
                metadata=user_metadata("gale"),
            )
        ).order
        assert july_order.status == orders_pb2.ORDER_STATUS_ACCEPTED
        quotes = [await quote(gale, leg["symbol"]) for leg in friday_spread]
        natural = sum(
            ask if leg["side"] == "buy" else -bid for leg, (bid, ask) in zip(friday_spread, quotes, strict=True)
        )
        spread = await gale.post(
            "/api/mbt/orders",
            json={"legs": friday_spread, "qty": "1", "order_type": "limit", "limit_price": str(natural - 1)}
            | {"time_in_force": "gtc"},
        )
        assert (spread.status_code, spread.json()["data"]["status"]) == (200, "accepted"), spread.text
        # Each put secures its $180 strike x 100 while it works, the $5-wide spread $500.
        held = await settled(gale, STARTING_CASH, D(36500))
        assert D(held["buying_power"]) == STARTING_CASH - 36500

        await trading.step_to(datetime(2012, 6, 22, 20, 5, tzinfo=UTC))

        expired = await order_in(gale, friday_order["order_id"], "expired")
        assert expired["expired_at"].startswith("2012-06-22T20:00:00"), expired
        native = (
            await trading.orders().GetOrder(
                orders_pb2.GetOrderRequest(order_id=friday_order["order_id"]), metadata=user_metadata("gale")
            )
        ).order
        assert (native.status, native.cancel_reason) == (orders_pb2.ORDER_STATUS_EXPIRED, "contract_expired")
        spread_expired = await order_in(gale, spread.json()["data"]["order_id"], "expired")
        assert spread_expired["expired_at"].startswith("2012-06-22T20:00:00"), spread_expired
        after = await settled(gale, STARTING_CASH, D(18000))
        assert D(after["buying_power"]) == STARTING_CASH - 18000
        still = (
            await trading.orders().GetOrder(
                orders_pb2.GetOrderRequest(order_id=july_order.order_id), metadata=user_metadata("gale")
            )
        ).order
        assert still.status == orders_pb2.ORDER_STATUS_ACCEPTED

        async def audited():
            actions = sorted(e.record.action for e in await trading.audit(entity_id=friday_order["order_id"]))
            assert actions == ["expire", "submit"], actions

        await eventually(audited)


async def test_options_in_a_margin_account_are_not_marginable_while_stock_keeps_reg_t(mesh, trading):
    """A long call's premium is paid in full and a cash-secured put holds its strike x 100 in
    a margin account as in a cash account (options are not marginable); the option buying
    power is the margin excess, the stock buying power twice it; stock still takes 50%."""
    async with rest_as(mesh, "marge") as marge:
        switched = await marge.patch("/api/mbt/settings", json={"account_type": "margin"})
        assert switched.status_code == 200, switched.text
        _, call_ask = await quote(marge, CALL)
        bought = await marge.post(
            "/api/mbt/orders",
            json={"symbol": CALL, "side": "buy", "qty": "2", "order_type": "market", "time_in_force": "day"},
        )
        assert bought.status_code == 200, bought.text
        await order_in(marge, bought.json()["data"]["order_id"], "filled")
        cash = STARTING_CASH - 2 * call_ask * 100
        after_call = await settled(marge, cash, D(0))
        # Reg T at 50% would have lent against half the calls' value: nothing is lent.
        assert after_call["account_type"] == "margin" and D(after_call["long_market_value"]) > 0
        assert (D(after_call["options_buying_power"]), D(after_call["buying_power"])) == (cash, 2 * cash)

        put_bid, _ = await quote(marge, PUT)
        written = await sell_puts(trading, "marge", "1", put_bid)
        await order_in(marge, written.order_id, "filled")
        cash += put_bid * 100
        after_put = await settled(marge, cash, D(21000))  # the $210 strike x 100, as in a cash account
        assert (D(after_put["options_buying_power"]), D(after_put["buying_power"])) == (
            cash - 21000,
            2 * (cash - 21000),
        )
        too_many = await marge.post(
            "/api/mbt/orders",
            json={"symbol": PUT, "side": "sell", "qty": "4", "order_type": "limit", "limit_price": str(put_bid)}
            | {"time_in_force": "day"},
        )
        assert too_many.json()["error"]["code"] == "insufficient_buying_power", too_many.text
        assert f"option buying power is ${cash - 21000:,.2f}" in too_many.json()["error"]["message"]

        # Stock keeps Reg T: a working buy of 10 shares at $100 holds $500.
        resting = await marge.post(
            "/api/mbt/orders",
            json={"symbol": "AMZN", "side": "buy", "qty": "10", "order_type": "limit", "limit_price": "100.00"}
            | {"time_in_force": "gtc"},
        )
        assert resting.status_code == 200, resting.text
        held = await settled(marge, cash, D(21500))
        assert D(held["options_buying_power"]) == cash - 21500
        canceled = await marge.delete(f"/api/mbt/orders/{resting.json()['data']['order_id']}")
        assert canceled.status_code == 200, canceled.text
        await settled(marge, cash, D(21000))


async def test_a_spread_fill_is_one_activity_per_leg_and_later_fills_still_arrive(mesh, trading):
    """A multi-leg fill has no one symbol or side: activities records each leg (its symbol,
    side, spread qty × ratio, its own price) and one notification for the spread; the events
    behind it in the activities inbox still arrive."""
    spread = [{"symbol": PUT, "side": "sell", "ratio": 1}, {"symbol": LOWER_PUT, "side": "buy", "ratio": 1}]
    async with rest_as(mesh, "lena") as lena:
        opened = await lena.post(
            "/api/mbt/orders",
            json={"legs": spread, "qty": "2", "order_type": "market", "time_in_force": "day"}
            | {"fill_preference": "conservative"},
        )
        assert opened.status_code == 200, opened.text
        done = await order_in(lena, opened.json()["data"]["order_id"], "filled")
        [fill] = done["fills"]
        legs = {leg["symbol"]: D(leg["price"]) for leg in fill["legs"]}
        call = await lena.post(
            "/api/mbt/orders",
            json={"symbol": CALL, "side": "buy", "qty": "1", "order_type": "market", "time_in_force": "day"},
        )
        assert call.status_code == 200, call.text
        bought = await order_in(lena, call.json()["data"]["order_id"], "filled")

        async def recorded():
            rows = (await lena.get("/api/mbt/activities", params={"type": "fill"})).json()["data"]
            assert len(rows) == 3, rows
            return rows

        rows = await eventually(recorded)
        by_symbol = {row["symbol"]: row for row in rows}
        assert {s: (r["side"], r["qty"], D(r["price"])) for s, r in by_symbol.items()} == {
            PUT: ("sell", "2", legs[PUT]),
            LOWER_PUT: ("buy", "2", legs[LOWER_PUT]),
            CALL: ("buy", "1", D(bought["filled_avg_price"])),
        }
        assert D(by_symbol[PUT]["net_amount"]) == legs[PUT] * 2 * 100
        assert D(by_symbol[LOWER_PUT]["net_amount"]) == -legs[LOWER_PUT] * 2 * 100
        assert by_symbol[PUT]["fill_id"] == by_symbol[LOWER_PUT]["fill_id"] == fill["fill_id"]
        assert by_symbol[PUT]["activity_id"] != by_symbol[LOWER_PUT]["activity_id"]

        async def adds_up():
            # The ledger and activities apply the fills independently: wait for both.
            account = (await lena.get("/api/mbt/account")).json()["data"]
            rows = (await lena.get("/api/mbt/activities")).json()["data"]
            assert sum((D(row["net_amount"]) for row in rows), D(0)) == D(account["cash"]), (account, rows)

        await eventually(adds_up)
