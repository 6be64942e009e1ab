"""The README's order rules, through the whole mesh on a stepped replay: time in force
(ioc, fok), the quote a market order needs, holds priced at the collar, one audit row per
change, and explanations after a replace. Expected values come from the recording."""

import gzip
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from services.common.wire.conv import datetime_from_ns, timestamp_from_ns
from tests.support import recording
from tests.support.trading import (
    CLOSE,
    START,
    Trading,
    account_when,
    eventually,
    ns,
    order_in,
    rest_as,
    start_trading_mesh,
)

D = Decimal
AMZN_AT_START = recording.standing("AMZN", ns(START))


def limit_buy(symbol: str, qty, limit, tif: str) -> dict:
    return {
        "symbol": symbol,
        "side": "buy",
        "qty": str(qty),
        "order_type": "limit",
        "limit_price": str(limit),
        "time_in_force": tif,
    }


async def placed(client, body: dict) -> dict:
    response = await client.post("/api/mbt/orders", json=body)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def refused(response, status: int, code: str) -> dict:
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    return response.json()["error"]


async def audit_actions(trading: Trading, order_id: str) -> list[str]:
    return sorted(entry.record.action for entry in await trading.audit(entity_id=order_id))


# -- time in force ------------------------------------------------------------------------


async def test_ioc_and_fok_need_the_market_open(mesh, trading):
    await trading.step_to(CLOSE + timedelta(seconds=1))
    async with rest_as(mesh, "ida") as ida:
        for tif in ("ioc", "fok"):
            response = await ida.post("/api/mbt/orders", json=limit_buy("AMZN", 1, "230.00", tif))
            refused(response, 400, "market_closed")
        day = await placed(ida, limit_buy("AMZN", 1, "230.00", "day"))  # a day order waits for the next session
        assert (day["status"], day["expires_at"]) == ("accepted", "2012-06-22T20:00:00Z")
        assert [o["time_in_force"] for o in (await ida.get("/api/mbt/orders")).json()["data"]] == ["day"]


async def test_an_ioc_is_decided_on_its_first_quote_and_a_miss_is_canceled_with_its_hold_released(mesh, trading):
    quote = recording.deciding("AMZN", ns(START))
    async with rest_as(mesh, "ian") as ian:
        missed = await placed(ian, limit_buy("AMZN", 10, quote.bid, "ioc"))  # below the ask: not marketable
        hit = await placed(ian, limit_buy("AMZN", 10, quote.ask + 1, "ioc"))
        canceled = await order_in(ian, missed["order_id"], "canceled")
        assert (canceled["cancel_reason"], canceled["fills"], canceled["filled_qty"]) == ("ioc_not_marketable", [], "0")
        filled = await order_in(ian, hit["order_id"], "filled")
        [fill] = filled["fills"]
        assert (fill["price"], fill["rule"], fill["quote_sequence"]) == (
            f"{quote.ask}",
            "limit_buy_at_ask",
            quote.sequence,
        )
        cost = 10 * quote.ask
        await account_when(ian, reserved="0.00", cash=f"{D(100000) - cost:.2f}")

        async def audited():
            assert await audit_actions(trading, missed["order_id"]) == ["cancel", "submit"]

        await eventually(audited)


async def test_a_fok_fills_only_when_the_displayed_size_covers_it(mesh, trading):
    quote = recording.deciding("AMZN", ns(START))
    size = int(quote.ask_size)
    assert (2 * size + 1) * quote.ask < 100_000, "both orders fit the starting cash"
    async with rest_as(mesh, "fay") as fay:
        too_big = await placed(fay, limit_buy("AMZN", size + 1, quote.ask, "fok"))
        covered = await placed(fay, limit_buy("AMZN", size, quote.ask, "fok"))
        canceled = await order_in(fay, too_big["order_id"], "canceled")
        assert (canceled["cancel_reason"], canceled["fills"]) == ("fok_size_not_displayed", [])
        filled = await order_in(fay, covered["order_id"], "filled")
        assert (filled["filled_qty"], filled["filled_avg_price"]) == (str(size), f"{quote.ask}")
        await account_when(fay, reserved="0.00", cash=f"{D(100000) - size * quote.ask:.2f}")


# -- the quote a market order needs ----------------------------------------------------------


def _tick(at, symbol: str, bid: str, ask: str) -> str:
    return f"{ns(START) + int(at * 10**9)},{symbol},{bid},100,{ask},100"


# At the start (14:00Z): FRSH's quote is half a second old, STAL's ten minutes, LOKD's is
# locked (bid = ask) and CRSD's crossed (bid > ask).
QUOTES = (
    "\n".join(
        [
            "ts_ns,symbol,bid_px,bid_sz,ask_px,ask_sz",
            _tick(-1200, "FRSH", "49.90", "50.10"),
            _tick(-1200, "LOKD", "19.90", "20.10"),
            _tick(-1200, "CRSD", "29.90", "30.10"),
            _tick(-600, "STAL", "9.90", "10.10"),
            _tick(-1, "LOKD", "20.00", "20.00"),
            _tick(-1, "CRSD", "30.05", "29.95"),
            _tick(-0.5, "FRSH", "49.95", "50.05"),
        ]
    )
    + "\n"
)


async def test_a_market_order_needs_a_usable_fresh_quote(databases, tmp_path):
    path = tmp_path / "quotes.csv.gz"
    path.write_bytes(gzip.compress(QUOTES.encode()))
    mesh = await start_trading_mesh(databases, tmp_path, MBT_REPLAY_QUOTES_FILE=str(path))
    try:
        async with rest_as(mesh, "mo") as mo:
            market_buy = {"side": "buy", "qty": "10", "order_type": "market", "time_in_force": "day"}
            stale = refused(await mo.post("/api/mbt/orders", json={**market_buy, "symbol": "STAL"}), 400, "stale_quote")
            assert "600s old" in stale["message"]
            for symbol in ("LOKD", "CRSD"):
                refused(await mo.post("/api/mbt/orders", json={**market_buy, "symbol": symbol}), 400, "unusable_quote")
            fresh = await placed(mo, {**market_buy, "symbol": "FRSH"})
            assert (fresh["status"], fresh["collar_price"]) == ("accepted", "52.55")  # 50.05 + 5 %
            limit = await placed(mo, limit_buy("STAL", 10, "10.00", "day"))  # a limit order carries its own price
            assert limit["status"] == "accepted"
            listed = (await mo.get("/api/mbt/orders")).json()["data"]
            assert sorted(o["symbol"] for o in listed) == ["FRSH", "STAL"]  # the refused ones left nothing
    finally:
        await mesh.stop()


# -- holds ------------------------------------------------------------------------------------


async def test_market_and_stop_orders_hold_buying_power_at_their_collar(mesh, trading):
    assert max(q.ask for q in recording.quotes("AMZN")) < D("240.00"), "the stop below is never reached"
    async with rest_as(mesh, "cole") as cole:
        stop = await placed(
            cole,
            {
                "symbol": "AMZN",
                "side": "buy",
                "qty": "10",
                "order_type": "stop",
                "stop_price": "240.00",
                "time_in_force": "gtc",
            },
        )
        assert stop["collar_price"] == "252.00"  # 240.00 + 5 %
        await account_when(cole, reserved="2520.00", buying_power="97480.00")

        after_close = CLOSE + timedelta(minutes=1)
        await trading.step_to(after_close)
        last = recording.standing("AMZN", ns(after_close))
        collar = (last.ask * D("1.05")).quantize(D("0.01"), ROUND_HALF_UP)
        market = await placed(
            cole, {"symbol": "AMZN", "side": "buy", "qty": "10", "order_type": "market", "time_in_force": "day"}
        )
        assert (market["status"], market["collar_price"], market["expires_at"]) == (
            "accepted",
            f"{collar}",
            "2012-06-22T20:00:00Z",
        )
        held = D("2520.00") + 10 * collar
        await account_when(cole, reserved=f"{held:.2f}", buying_power=f"{D(100000) - held:.2f}", cash="100000.00")


# -- the audit trail and explanations -----------------------------------------------------------


async def test_every_trigger_replace_and_cancel_writes_one_audit_row(mesh, trading):
    async with rest_as(mesh, "aud") as aud:
        # The stop is below the ask, so it triggers at once; the limit is far below it, so it rests.
        order = await placed(
            aud,
            {
                "symbol": "AMZN",
                "side": "buy",
                "qty": "1",
                "order_type": "stop_limit",
                "stop_price": "100.00",
                "limit_price": "100.00",
                "time_in_force": "gtc",
            },
        )

        async def triggered():
            body = (await aud.get(f"/api/mbt/orders/{order['order_id']}")).json()["data"]
            assert body["triggered_at"] is not None, body
            return body

        await eventually(triggered)
        replaced = await aud.patch(f"/api/mbt/orders/{order['order_id']}", json={"limit_price": "101.00"})
        assert replaced.status_code == 200, replaced.text
        body = replaced.json()["data"]
        assert (body["version"], body["limit_price"], body["stop_price"], body["status"]) == (
            2,
            "101.00",
            "100.00",
            "accepted",
        )
        moved_stop = await aud.patch(f"/api/mbt/orders/{order['order_id']}", json={"stop_price": "99.00"})
        refused(moved_stop, 400, "order_not_replaceable")  # a stop that triggered keeps its stop
        canceled = await aud.delete(f"/api/mbt/orders/{order['order_id']}")
        assert canceled.json()["data"]["status"] == "canceled"
        await aud.delete(f"/api/mbt/orders/{order['order_id']}")  # idempotent: no second row

        async def audited():
            assert await audit_actions(trading, order["order_id"]) == ["cancel", "replace", "submit", "trigger"]

        await eventually(audited)


async def test_a_fill_after_a_replace_is_explained_from_the_replace(mesh, trading):
    replaced_at = START + timedelta(minutes=10)
    horizon = [q for q in recording.quotes("AMZN") if ns(replaced_at) < q.at_ns <= ns(replaced_at) + 600 * 10**9]
    limit = min(q.ask for q in horizon)
    # Reached after the replace; also reached before it, where a replay from the original
    # acceptance would wrongly find its fill.
    assert recording.standing("AMZN", ns(replaced_at)).ask > limit
    assert any(q.ask <= limit for q in recording.quotes("AMZN") if ns(START) < q.at_ns <= ns(replaced_at))
    expected = recording.first_after("AMZN", ns(replaced_at), lambda q: q.ask <= limit)
    considered = 1 + sum(1 for q in recording.quotes("AMZN") if ns(replaced_at) < q.at_ns <= expected.at_ns)

    async with rest_as(mesh, "rex") as rex:
        order = await placed(rex, limit_buy("AMZN", 2, "1.00", "gtc"))
        await trading.step_to(replaced_at)
        replaced = await rex.patch(f"/api/mbt/orders/{order['order_id']}", json={"limit_price": str(limit)})
        assert replaced.status_code == 200, replaced.text
        await trading.step_to(datetime_from_ns(expected.at_ns) + timedelta(seconds=1))
        [fill] = (await order_in(rex, order["order_id"], "filled"))["fills"]
        assert (fill["price"], fill["quote_sequence"]) == (f"{expected.ask}", expected.sequence)

        explained = (await rex.get(f"/api/mbt/fills/{fill['fill_id']}/explain")).json()["data"]
        assert (
            explained["reproduced"],
            explained["rule"],
            explained["fill_price"],
            explained["ask_price"],
            explained["quote_at"],
            explained["quote_sequence"],
            explained["ticks_considered"],
        ) == (
            True,
            "limit_buy_at_ask",
            f"{expected.ask}",
            f"{expected.ask}",
            timestamp_from_ns(expected.at_ns).ToJsonString(),
            expected.sequence,
            considered,
        )
