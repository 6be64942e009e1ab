"""The README's account rules through the whole mesh: starting cash by investor profile,
margin by UpdateUser (and when it is refused), positions valued at what closing would get,
P&L windows, and every amount printed by its one rule. Every expected figure is computed
here from the recording (qty x bid - cost), never read from another answer of accounts."""

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import count

import grpc
import pytest

from mbt.accounts.v1 import accounts_pb2
from services.common.ids import derived_id
from services.common.wire.conv import timestamp_from_ns
from tests.e2e.test_option_expiration import seed_fill
from tests.support import recording
from tests.support.errors import error_info
from tests.support.identity import as_service
from tests.support.trading import START, account_when, eventually, ns, order_in, rest_as

D = Decimal


def cents(value: Decimal) -> str:
    return f"{value.quantize(D('0.01'), ROUND_HALF_UP)}"


def priced_at(at_ns: int) -> str:
    """A quote's time as a position's ``priced_at`` shows it (microseconds)."""
    return timestamp_from_ns(at_ns - at_ns % 1000).ToJsonString()


async def update_user(trading, user_id: str, **fields) -> accounts_pb2.User:
    """What an operator does with a service token (`mbt token service`). Right after the mesh
    starts, accounts answers UNAVAILABLE until its clock has synchronised: that is waited out."""

    async def attempt():
        try:
            reply = await trading.accounts().UpdateUser(
                accounts_pb2.UpdateUserRequest(user_id=user_id, **fields), metadata=as_service("console")
            )
        except grpc.aio.AioRpcError as exc:
            assert exc.code() != grpc.StatusCode.UNAVAILABLE, exc.details()
            raise
        return reply.user

    return await eventually(attempt)


async def market(client, symbol: str, side: str, qty: int) -> dict:
    response = await client.post(
        "/api/mbt/orders",
        json={"symbol": symbol, "side": side, "qty": str(qty), "order_type": "market", "time_in_force": "day"},
    )
    assert response.status_code == 200, response.text
    return await order_in(client, response.json()["data"]["order_id"], "filled")


async def trade_twice(client, trading, symbol: str, first: tuple[str, int], second: tuple[str, int], minutes: int):
    """A market order (side, qty) at the start and another ``minutes`` later: the recorded
    quotes they were decided on, and the second order filled."""
    first_quote = recording.deciding(symbol, ns(START))
    await market(client, symbol, *first)
    later = START + timedelta(minutes=minutes)
    await trading.step_to(later)
    second_quote = recording.deciding(symbol, ns(later))
    return first_quote, second_quote, await market(client, symbol, *second)


@pytest.mark.parametrize(
    "profile, starting_cash",
    [(accounts_pb2.INVESTOR_PROFILE_TRIAL, "10000.00"), (accounts_pb2.INVESTOR_PROFILE_INCOME_BUILDER, "50000.00")],
)
async def test_the_investor_profile_sets_the_starting_cash(mesh, trading, profile, starting_cash):
    await update_user(trading, "nova", investor_profile=profile)
    async with rest_as(mesh, "nova") as nova:
        account = (await nova.get("/api/mbt/account")).json()["data"]
        assert (
            account["starting_cash"],
            account["cash"],
            account["equity"],
            account["buying_power"],
            account["reserved"],
        ) == (starting_cash, starting_cash, starting_cash, starting_cash, "0.00")

        async def opened():
            rows = (await nova.get("/api/mbt/activities", params={"type": "account_opened"})).json()["data"]
            assert [row["net_amount"] for row in rows] == [starting_cash]

        await eventually(opened)


async def test_an_operator_switches_an_account_to_margin_only_while_it_is_flat(mesh, trading):
    async with rest_as(mesh, "mona") as mona:
        assert (await mona.get("/api/mbt/account")).json()["data"]["account_type"] == "cash"
        await update_user(trading, "mona", account_type=accounts_pb2.ACCOUNT_TYPE_MARGIN)
        # Reg T: buying power is twice the excess of equity over the requirement.
        await account_when(mona, account_type="margin", buying_power="200000.00")

        resting = await mona.post(
            "/api/mbt/orders",
            json={
                "symbol": "AMZN",
                "side": "buy",
                "qty": "10",
                "order_type": "limit",
                "limit_price": "100.00",
                "time_in_force": "gtc",
            },
        )
        assert resting.status_code == 200, resting.text
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await update_user(trading, "mona", account_type=accounts_pb2.ACCOUNT_TYPE_CASH)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(refused.value) == ("INVALID_ARGUMENT", {"field": "account_type"})
        await account_when(mona, account_type="margin", reserved="500.00")  # half of 10 x $100.00

        await mona.delete(f"/api/mbt/orders/{resting.json()['data']['order_id']}")
        await account_when(mona, reserved="0.00")
        await update_user(trading, "mona", account_type=accounts_pb2.ACCOUNT_TYPE_CASH)
        await account_when(mona, account_type="cash", buying_power="100000.00")


async def test_positions_are_valued_at_what_closing_would_get(mesh, trading):
    """A long at the bid, a short at the ask, from the quote standing when asked."""
    async with rest_as(mesh, "vic") as vic:
        await vic.get("/api/mbt/account")
        await update_user(trading, "vic", account_type=accounts_pb2.ACCOUNT_TYPE_MARGIN)
        bought = recording.deciding("GOOG", ns(START))
        sold = recording.deciding("AMZN", ns(START))
        await market(vic, "GOOG", "buy", 3)
        await market(vic, "AMZN", "sell", 5)  # short: a margin account may
        later = START + timedelta(minutes=5)
        await trading.step_to(later)
        goog, amzn = recording.standing("GOOG", ns(later)), recording.standing("AMZN", ns(later))

        cash = D(100000) - 3 * bought.ask + 5 * sold.bid
        long_value, short_value = 3 * goog.bid, -5 * amzn.ask
        equity = cash + long_value + short_value
        requirement = D("0.5") * (long_value - short_value)
        account = await account_when(vic, cash=cents(cash))
        assert (
            account["account_type"],
            account["long_market_value"],
            account["short_market_value"],
            account["equity"],
            account["buying_power"],
            account["reserved"],
        ) == ("margin", cents(long_value), cents(short_value), cents(equity), cents(2 * (equity - requirement)), "0.00")

        positions = {p["symbol"]: p for p in (await vic.get("/api/mbt/positions")).json()["data"]}
        fields = (
            "side",
            "qty",
            "avg_entry_price",
            "current_price",
            "market_value",
            "cost_basis",
            "unrealized_pl",
            "unrealized_plpc",
            "priced_at",
        )
        long_gain, short_gain = 3 * (goog.bid - bought.ask), 5 * (sold.bid - amzn.ask)
        assert {s: tuple(p[f] for f in fields) for s, p in positions.items()} == {
            "GOOG": (
                "long",
                "3",
                f"{bought.ask}",
                f"{goog.bid}",
                cents(long_value),
                cents(3 * bought.ask),
                cents(long_gain),
                f"{(long_gain / (3 * bought.ask)).quantize(D('0.000001'), ROUND_HALF_UP)}",
                priced_at(goog.at_ns),
            ),
            "AMZN": (
                "short",
                "-5",
                f"{sold.bid}",
                f"{amzn.ask}",
                cents(short_value),
                cents(5 * sold.bid),
                cents(short_gain),
                f"{(short_gain / (5 * sold.bid)).quantize(D('0.000001'), ROUND_HALF_UP)}",
                priced_at(amzn.at_ns),
            ),
        }


async def test_pnl_windows_realize_inside_them_and_mark_at_their_end(mesh, trading):
    async with rest_as(mesh, "pia") as pia:
        bought, sold, sale = await trade_twice(pia, trading, "AMZN", ("buy", 10), ("sell", 4), minutes=10)
        assert [fill["price"] for fill in sale["fills"]] == [f"{sold.bid}"]
        sold_at = START + timedelta(minutes=10)
        now = START + timedelta(minutes=20)
        await trading.step_to(now)
        await account_when(pia, cash=cents(D(100000) - 10 * bought.ask + 4 * sold.bid))

        async def pnl(**params) -> dict:
            response = await pia.get("/api/mbt/pnl", params=params)
            assert response.status_code == 200, response.text
            return response.json()

        def expected(start, end, realized: Decimal, unrealized: Decimal) -> dict:
            total = realized + unrealized
            return {
                "from_time": start,
                "to_time": end,
                "realized_pl": cents(realized),
                "unrealized_pl": cents(unrealized),
                "total_pl": cents(total),
                "lines": [{"symbol": "AMZN", "realized_pl": cents(realized), "unrealized_pl": cents(unrealized)}],
            }

        realized = 4 * (sold.bid - bought.ask)
        at_now = 6 * (recording.standing("AMZN", ns(now)).bid - bought.ask)
        everything = await pnl()  # from the account's opening to now
        assert everything["data"] == expected("2012-06-21T14:00:00Z", "2012-06-21T14:20:00Z", realized, at_now)
        assert everything["meta"]["to_time_clamped"] is False

        before_sale = sold_at - timedelta(seconds=1)
        held_then = 10 * (recording.standing("AMZN", ns(before_sale)).bid - bought.ask)  # marked then, not now
        window = await pnl(**{"from": "2012-06-21T14:00:00Z", "to": "2012-06-21T14:09:59Z"})
        assert window["data"] == expected("2012-06-21T14:00:00Z", "2012-06-21T14:09:59Z", D(0), held_then)
        after_sale = await pnl(**{"from": "2012-06-21T14:10:01Z"})
        assert after_sale["data"] == expected("2012-06-21T14:10:01Z", "2012-06-21T14:20:00Z", D(0), at_now)

        future = await pnl(to="2012-06-23T00:00:00Z")  # nothing is known past now: cut at now, and said so
        assert (future["data"], future["meta"]["to_time_clamped"]) == (everything["data"], True)
        backwards = await pia.get("/api/mbt/pnl", params={"from": "2012-06-21T14:10:00Z", "to": "2012-06-21T14:05:00Z"})
        assert (backwards.status_code, backwards.json()["error"]["code"]) == (400, "invalid_argument")


async def test_pnl_replays_entries_of_one_moment_in_the_order_the_ledger_applied_them(mesh, trading):
    """Entries stamped alike (an expiration's effects, fills of one tick) average the cost in
    the order they were applied: P&L agrees with the position to the cent. The fills' ids are
    picked so that their ledger ids sort against that order."""
    ids = next(
        (buy, sell, rebuy)
        for n in count()
        for buy, sell, rebuy in [(f"fill_buy{n}", f"fill_sell{n}", f"fill_rebuy{n}")]
        if derived_id("led", rebuy) < derived_id("led", sell) and derived_id("led", buy) < derived_id("led", rebuy)
    )
    for (side, price), fill_id in zip([("buy", "10.00"), ("sell", "12.00"), ("buy", "20.00")], ids, strict=True):
        await seed_fill(trading, "quinn", "AMZN", side, "100", price, fill_id=fill_id)
    async with rest_as(mesh, "quinn") as quinn:
        await account_when(quinn, cash=cents(D(100000) - 1000 + 1200 - 2000))
        [position] = (await quinn.get("/api/mbt/positions")).json()["data"]
        assert (position["qty"], position["avg_entry_price"]) == ("100", "20.00")
        pnl = (await quinn.get("/api/mbt/pnl")).json()["data"]
        assert pnl["lines"] == [{"symbol": "AMZN", "realized_pl": "200.00", "unrealized_pl": position["unrealized_pl"]}]


async def test_every_surface_prints_money_to_the_cent_prices_on_their_grid_and_whole_quantities(mesh, trading):
    """Two buys at different prices make an average entry off the price grid, and so a cost
    basis and P&L with more than two decimals inside the ledger."""
    async with rest_as(mesh, "cy") as cy:
        first, second, _ = await trade_twice(cy, trading, "AMZN", ("buy", 3), ("buy", 4), minutes=7)
        assert second.ask != first.ask
        later = START + timedelta(minutes=7)
        cost = 3 * first.ask + 4 * second.ask
        mark = recording.standing("AMZN", ns(later))
        account = await account_when(cy, cash=cents(D(100000) - cost))
        assert (account["reserved"], account["long_market_value"], account["equity"]) == (
            "0.00",
            cents(7 * mark.bid),
            cents(D(100000) - cost + 7 * mark.bid),
        )
        position = (await cy.get("/api/mbt/positions/AMZN")).json()["data"]
        assert (
            position["qty"],
            position["avg_entry_price"],
            position["cost_basis"],
            position["unrealized_pl"],
            position["realized_pl"],
        ) == ("7", cents(cost / 7), cents(cost), cents(7 * mark.bid - cost), "0.00")
        pnl = (await cy.get("/api/mbt/pnl")).json()["data"]
        assert (pnl["realized_pl"], pnl["unrealized_pl"]) == ("0.00", cents(7 * mark.bid - cost))

        async def activities():
            rows = (await cy.get("/api/mbt/activities", params={"type": "fill"})).json()["data"]
            assert sorted((r["qty"], r["price"], r["net_amount"]) for r in rows) == sorted(
                [("3", f"{first.ask}", cents(-3 * first.ask)), ("4", f"{second.ask}", cents(-4 * second.ask))]
            )

        await eventually(activities)
        quote = (await cy.get("/api/mbt/quotes/AMZN")).json()["data"]
        assert (quote["bid_price"], quote["bid_size"], quote["ask_price"]) == (
            f"{mark.bid}",
            f"{mark.bid_size}",
            f"{mark.ask}",
        )
