"""Multi-leg orders replaced and their fills explained, end to end through REST and native
gRPC, on a stepped replay of the bundled AMZN day whose option quotes are the labelled model
(README "Orders" / "Multi-leg", "Matcher" / explain). The clock is not stepped: every leg
keeps the quote read at the start, so every price below is read from market data."""

from decimal import Decimal

import pytest

from mbt.marketdata.v1 import marketdata_pb2
from mbt.matcher.v1 import matcher_pb2
from mbt.orders.v1 import orders_pb2
from tests.support.identity import as_service
from tests.support.option_views import assert_explained, mid_of, natural_of, quotes
from tests.support.trading import account_when, eventually, order_in, rest_as, user_metadata

D = Decimal
SHORT_PUT = "AMZN120720P00210000"
LONG_PUT = "AMZN120720P00200000"
CREDIT_SPREAD = [
    {"symbol": SHORT_PUT, "side": "sell", "ratio": 1},
    {"symbol": LONG_PUT, "side": "buy", "ratio": 1},
]
CONDOR = [
    {"symbol": "AMZN120720P00200000", "side": "buy", "ratio": 1},
    {"symbol": "AMZN120720P00210000", "side": "sell", "ratio": 1},
    {"symbol": "AMZN120720C00230000", "side": "sell", "ratio": 1},
    {"symbol": "AMZN120720C00240000", "side": "buy", "ratio": 1},
]
WIDTH = D(1000)  # both structures: $10 between strikes (the condor's wider wing) x 100
CASH = D(100000)


async def submit(client, legs: list[dict], qty: str, limit: Decimal, preference: str) -> dict:
    response = await client.post(
        "/api/mbt/orders",
        json={"order_class": "mleg", "legs": legs, "qty": qty, "order_type": "limit", "limit_price": str(limit)}
        | {"time_in_force": "gtc", "fill_preference": preference},
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def held(client, reserved: Decimal, cash: Decimal = CASH) -> dict:
    return await account_when(client, cash=f"{cash:.2f}", reserved=f"{reserved:.2f}")


async def decided(trading) -> None:
    """The matcher has sent every decision it took."""

    async def check():
        book = await trading.matcher().GetBook(matcher_pb2.GetBookRequest(), metadata=as_service("tests"))
        assert book.decisions_in_flight == 0

    await eventually(check)


async def test_a_resting_credit_spread_is_replaced_in_price_and_size_and_its_hold_follows(mesh, trading):
    async with rest_as(mesh, "rita") as rita:
        quoted = await quotes(rita, CREDIT_SPREAD)
        natural = natural_of(CREDIT_SPREAD, quoted)
        assert natural < 0  # a credit
        # Asking a dollar more credit than the natural, conservative: it rests. The credit is
        # not counted before it is received: the width is held.
        order = await submit(rita, CREDIT_SPREAD, "2", natural - 1, "conservative")
        order_id = order["order_id"]
        assert (order["status"], order["version"]) == ("accepted", 1)
        await held(rita, 2 * WIDTH)

        # A better credit, then a worse one (still not reached): each a new version, held
        # at its own terms (R; no debit).
        for version, limit in ((2, natural - D("1.50")), (3, natural - D("0.40"))):
            replaced = await rita.patch(f"/api/mbt/orders/{order_id}", json={"limit_price": str(limit)})
            assert replaced.status_code == 200, replaced.text
            body = replaced.json()["data"]
            assert (body["version"], D(body["limit_price"]), body["status"]) == (version, limit, "accepted")
            assert [leg["symbol"] for leg in body["legs"]] == [SHORT_PUT, LONG_PUT]
            await decided(trading)
            await held(rita, 2 * WIDTH)

        # Three spreads over native gRPC: the hold grows to three widths.
        reply = await trading.orders().ReplaceOrder(
            orders_pb2.ReplaceOrderRequest(order_id=order_id, qty="3"), metadata=user_metadata("rita")
        )
        assert (reply.order.version, reply.order.qty, reply.order.status) == (
            4,
            "3",
            orders_pb2.ORDER_STATUS_ACCEPTED,
        )
        await held(rita, 3 * WIDTH)

        # Legs sent as they are change nothing but what else is sent; other legs are refused.
        same_legs = await rita.patch(f"/api/mbt/orders/{order_id}", json={"legs": CREDIT_SPREAD, "qty": "2"})
        assert same_legs.status_code == 200, same_legs.text
        assert (same_legs.json()["data"]["version"], same_legs.json()["data"]["qty"]) == (5, "2")
        await held(rita, 2 * WIDTH)
        other_legs = [CREDIT_SPREAD[0], {"symbol": "AMZN120720P00190000", "side": "buy", "ratio": 1}]
        refused = await rita.patch(f"/api/mbt/orders/{order_id}", json={"legs": other_legs, "limit_price": "-1.00"})
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_argument", error
        assert "legs of a multi-leg order cannot be replaced" in error["message"]

        # A debit limit on a credit spread, the classic sign error: refused, nothing changes.
        wrong = await rita.patch(f"/api/mbt/orders/{order_id}", json={"limit_price": str(-natural + 1)})
        assert wrong.status_code == 400, wrong.text
        assert wrong.json()["error"]["code"] == "limit_price_sign"
        assert "send a negative limit_price" in wrong.json()["error"]["message"]
        unchanged = (await rita.get(f"/api/mbt/orders/{order_id}")).json()["data"]
        assert (unchanged["version"], unchanged["qty"], D(unchanged["limit_price"])) == (5, "2", natural - D("0.40"))
        await held(rita, 2 * WIDTH)

        # Zero (no sign): accepted, and now marketable: it fills at the natural, a credit.
        zero = await rita.patch(f"/api/mbt/orders/{order_id}", json={"limit_price": "0"})
        assert zero.status_code == 200, zero.text
        assert (zero.json()["data"]["version"], D(zero.json()["data"]["limit_price"])) == (6, D(0))
        done = await order_in(rita, order_id, "filled")
        assert D(done["filled_avg_price"]) == natural
        [fill] = done["fills"]
        assert fill["rule"] == "mleg_limit_at_natural"
        # The credit is cash; the two widths stay held by the positions.
        await held(rita, 2 * WIDTH, CASH - natural * 100 * 2)
        explained = (await rita.get(f"/api/mbt/fills/{fill['fill_id']}/explain")).json()["data"]
        assert explained["reproduced"] is True, explained


async def test_a_filled_spread_cannot_be_replaced(mesh, trading):
    async with rest_as(mesh, "mark") as mark:
        natural = natural_of(CREDIT_SPREAD, await quotes(mark, CREDIT_SPREAD))
        order = await submit(mark, CREDIT_SPREAD, "1", natural, "conservative")
        done = await order_in(mark, order["order_id"], "filled")
        late = await mark.patch(f"/api/mbt/orders/{done['order_id']}", json={"limit_price": "-0.10"})
        assert (late.status_code, late.json()["error"]["code"]) == (400, "order_not_replaceable")


@pytest.mark.parametrize(
    ("preference", "rule"), [("conservative", "mleg_limit_at_natural"), ("mid", "mleg_limit_at_mid")]
)
async def test_a_credit_spread_fill_is_explained_leg_by_leg_and_reproduced(mesh, trading, preference, rule):
    async with rest_as(mesh, "erin") as erin:
        quoted = await quotes(erin, CREDIT_SPREAD)
        natural, mid = natural_of(CREDIT_SPREAD, quoted), mid_of(CREDIT_SPREAD, quoted)
        order = await submit(erin, CREDIT_SPREAD, "1", natural, preference)
        done = await order_in(erin, order["order_id"], "filled")
        [fill] = done["fills"]
        assert fill["rule"] == rule
        response = await erin.get(f"/api/mbt/fills/{fill['fill_id']}/explain")
        assert response.status_code == 200, response.text
        explained = response.json()["data"]
        assert_explained(explained, fill, CREDIT_SPREAD, quoted, preference)
        assert (D(explained["natural_price"]), D(explained["mid_price"])) == (natural, mid)
        assert f"{preference} limit spread" in explained["explanation"]

        # The same over native gRPC; someone else's fill does not exist for another user.
        reply = await trading.matcher().ExplainFill(
            matcher_pb2.ExplainFillRequest(fill_id=fill["fill_id"]), metadata=user_metadata("erin")
        )
        assert reply.explanation.reproduced and len(reply.explanation.legs) == 2
        assert all(leg.source == marketdata_pb2.QUOTE_SOURCE_MODEL for leg in reply.explanation.legs)
        assert reply.explanation.legs[0].model.volatility
    async with rest_as(mesh, "mallory") as mallory:
        other = await mallory.get(f"/api/mbt/fills/{fill['fill_id']}/explain")
        assert other.status_code == 404, other.text


async def test_an_iron_condor_fill_is_explained_with_its_four_legs(mesh, trading):
    async with rest_as(mesh, "ivan") as ivan:
        quoted = await quotes(ivan, CONDOR)
        natural = natural_of(CONDOR, quoted)
        assert natural < 0
        order = await submit(ivan, CONDOR, "2", natural, "conservative")
        done = await order_in(ivan, order["order_id"], "filled")
        assert D(done["filled_avg_price"]) == natural
        [fill] = done["fills"]
        explained = (await ivan.get(f"/api/mbt/fills/{fill['fill_id']}/explain")).json()["data"]
        assert_explained(explained, fill, CONDOR, quoted, "conservative")
        assert explained["rule"] == "mleg_limit_at_natural"
        assert D(explained["fill_price"]) == D(explained["natural_price"]) == natural
        assert [leg["qty"] for leg in explained["legs"]] == ["2"] * 4
