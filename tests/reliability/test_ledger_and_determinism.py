"""The ledger balances (cash = starting cash + the signed sum of fills), positions
recompute from fills, and replaying the same recording with the same orders twice gives
identical fills — also when the matcher was down while the market moved."""

from datetime import datetime, timedelta
from decimal import Decimal

from services.common.rpc.server import start
from tests.support.mesh import build_service
from tests.support.trading import START, Trading, eventually, rest_as, start_trading_mesh

D = Decimal

SCRIPT = [  # (seconds after the start, order)
    (0, {"symbol": "AMZN", "side": "buy", "qty": "10", "order_type": "market", "time_in_force": "day"}),
    (0, {"symbol": "GOOG", "side": "buy", "qty": "3", "order_type": "market", "time_in_force": "day"}),
    (30, {"symbol": "AMZN", "side": "sell", "qty": "4", "order_type": "market", "time_in_force": "day"}),
    (
        60,
        {
            "symbol": "AMZN",
            "side": "buy",
            "qty": "5",
            "order_type": "limit",
            "limit_price": "222.50",
            "time_in_force": "gtc",
        },
    ),
    (
        90,
        {
            "symbol": "GOOG",
            "side": "sell",
            "qty": "3",
            "order_type": "stop",
            "stop_price": "579.00",
            "time_in_force": "gtc",
        },
    ),
    (
        120,
        {
            "symbol": "AMZN",
            "side": "sell",
            "qty": "6",
            "order_type": "limit",
            "limit_price": "221.00",
            "time_in_force": "day",
        },
    ),
    # These two rest for minutes before the market reaches them.
    (
        150,
        {
            "symbol": "AMZN",
            "side": "buy",
            "qty": "5",
            "order_type": "limit",
            "limit_price": "223.20",
            "time_in_force": "gtc",
        },
    ),
    (
        150,
        {
            "symbol": "GOOG",
            "side": "buy",
            "qty": "2",
            "order_type": "stop_limit",
            "stop_price": "576.30",
            "limit_price": "576.60",
            "time_in_force": "gtc",
        },
    ),
]


async def play(databases, data_dir, *, matcher_outage: bool = False, expected: list | None = None) -> list[tuple]:
    """Run the script on a fresh mesh; the fills as (client_order_id, symbol, side, qty, price, quote_at, rule).

    With ``matcher_outage`` the matcher is stopped once every order is in, the market runs
    on without it, and a new matcher is started; the run then waits for ``expected``."""
    mesh = await start_trading_mesh(databases, data_dir)
    trading = Trading(mesh)
    try:
        async with rest_as(mesh, "olga") as olga:
            for index, (offset, order) in enumerate(SCRIPT):
                if offset:
                    await trading.step_to(START + timedelta(seconds=offset))
                response = await olga.post("/api/mbt/orders", json={**order, "client_order_id": f"s{index}"})
                assert response.status_code == 200, response.text
                await _settled(olga)
            if matcher_outage:
                await mesh.services["matcher"].stop(0)
            await trading.step_to(START + timedelta(minutes=30))
            if matcher_outage:
                port = mesh.settings.service("matcher").port
                mesh.services["matcher"] = await start(build_service("matcher", mesh.settings), port=port)

                async def caught_up():
                    assert await _fills(olga) == expected

                await eventually(caught_up, timeout=120, interval=0.5)
            await trading.matcher_caught_up()
            await _settled(olga)
            fills = await _fills(olga)
            await _check_ledger(olga, fills)
            return fills
    finally:
        await trading.close()
        await mesh.stop()


async def _fills(client) -> list[tuple]:
    orders = (await client.get("/api/mbt/orders", params={"page_size": 100})).json()["data"]
    fills = []
    for order in orders:
        detail = (await client.get(f"/api/mbt/orders/{order['order_id']}")).json()["data"]
        fills += [
            (detail["client_order_id"], f["symbol"], f["side"], f["qty"], f["price"], f["quote_at"], f["rule"])
            for f in detail["fills"]
        ]
    return sorted(fills)


async def _settled(client) -> None:
    """Wait until every order is decided or resting and every fill reached the account."""

    async def check():
        orders = (await client.get("/api/mbt/orders", params={"page_size": 100})).json()["data"]
        assert all(o["status"] != "new" for o in orders)
        # A market order is decided on the quote standing at its acceptance: it has filled.
        assert all(o["status"] != "accepted" for o in orders if o["order_type"] == "market")
        filled = [o for o in orders if o["status"] == "filled"]
        activities = (await client.get("/api/mbt/activities", params={"type": "fill", "page_size": 100})).json()
        assert len(activities["data"]) == len(filled)
        account = (await client.get("/api/mbt/account")).json()["data"]
        positions = (await client.get("/api/mbt/positions")).json()["data"]
        expected = sum((D(o["filled_qty"]) * (1 if o["side"] == "buy" else -1) for o in filled), D(0))
        assert sum((D(p["qty"]) for p in positions), D(0)) == expected
        return account

    await eventually(check)


async def _check_ledger(client, fills) -> None:
    account = (await client.get("/api/mbt/account")).json()["data"]
    signed = sum(
        (-D(qty) * D(price) if side == "buy" else D(qty) * D(price) for _, _, side, qty, price, _, _ in fills), D(0)
    )
    assert D(account["cash"]) == D(account["starting_cash"]) + signed
    activities = (await client.get("/api/mbt/activities", params={"page_size": 100})).json()["data"]
    assert D(account["cash"]) == sum((D(a["net_amount"]) for a in activities), D(0))
    positions = {p["symbol"]: D(p["qty"]) for p in (await client.get("/api/mbt/positions")).json()["data"]}
    recomputed: dict[str, Decimal] = {}
    for _, symbol, side, qty, _, _, _ in fills:
        recomputed[symbol] = recomputed.get(symbol, D(0)) + (D(qty) if side == "buy" else -D(qty))
    assert positions == {s: q for s, q in recomputed.items() if q != 0}


async def test_replaying_the_same_ticks_with_the_same_orders_gives_identical_fills(databases, tmp_path):
    first = await play(databases, tmp_path / "first")
    second = await play(databases, tmp_path / "second")
    assert first == second
    assert len(first) >= 3


async def test_a_matcher_down_while_the_market_moved_decides_on_restart_what_it_missed(databases, tmp_path):
    """The archive keeps the ticks nobody was subscribed to; the restarted matcher replays
    them, so its fills are those of a matcher that never stopped."""
    uninterrupted = await play(databases, tmp_path / "uninterrupted")
    outage_began = START + timedelta(seconds=SCRIPT[-1][0])
    missed = [f for f in uninterrupted if datetime.fromisoformat(f[5].replace("Z", "+00:00")) > outage_began]
    assert len(missed) == 2, "the script must have fills that fall inside the outage"
    restarted = await play(databases, tmp_path / "restarted", matcher_outage=True, expected=uninterrupted)
    assert restarted == uninterrupted
