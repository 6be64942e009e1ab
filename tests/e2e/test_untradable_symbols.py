"""An order that could never fill is refused at submit, not accepted to expire silently:
AAPL is a known symbol with no quotes in the bundled replay (GetSymbol says tradable false)."""

from decimal import Decimal

import pytest

from tests.support.trading import rest_as, start_trading_mesh


@pytest.fixture
async def mesh(databases, tmp_path):
    mesh = await start_trading_mesh(databases, tmp_path)
    yield mesh
    await mesh.stop()


@pytest.mark.parametrize(
    "order",
    [
        {"order_type": "limit", "limit_price": "150.00", "time_in_force": "gtc"},
        {"order_type": "market", "time_in_force": "day"},
    ],
)
async def test_an_order_on_a_symbol_without_quotes_is_refused_and_holds_nothing(mesh, order):
    async with rest_as(mesh, "kim") as kim:
        symbol = (await kim.get("/api/mbt/symbols/AAPL")).json()["data"]
        assert (symbol["symbol"], symbol["tradable"]) == ("AAPL", False)
        response = await kim.post("/api/mbt/orders", json={"symbol": "AAPL", "side": "buy", "qty": "1", **order})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "symbol_not_tradable"
        assert "AAPL" in error["message"] and "no quotes" in error["message"]
        assert (await kim.get("/api/mbt/orders")).json()["data"] == []
        assert Decimal((await kim.get("/api/mbt/account")).json()["data"]["reserved"]) == 0
