"""Index options cash-settle end to end on the recorded Cboe dataset (``cboe-options-2021``,
the 2021-04-26 day replayed onto the following sessions): a VIXW call and put bought over
REST at their recorded asks, the clock stepped past the 2021-04-28 expiry, and the
ExpireOptions run settles them on ^VIX's AM value — the first recorded index level of that
session — the call in the money for cash, the put expired worthless; once, and to the cent.
Before, ^VIX (whose quotes are its level, never a usable NBBO) had no bars, so the run found
no settlement value and left both open for ever. An order on the index itself is refused."""

from __future__ import annotations

import csv
import gzip
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from mbt.accounts.v1 import accounts_pb2
from services.common.config import Settings
from services.common.wire.conv import to_date
from services.marketdata.recording import BUNDLED_OPTION_QUOTES
from tests.support.identity import as_service
from tests.support.mesh import mesh_environ, start_mesh
from tests.support.option_views import cash, expirations, holdings
from tests.support.trading import Trading, eventually, order_in, rest_as

D = Decimal
CALL, PUT = "VIXW210428C00017000", "VIXW210428P00017000"
EXPIRY = date(2021, 4, 28)
# The recording's first snapshot, where the replay's clock starts (10:00 New York).
FIRST_SNAPSHOT = "2021-04-26T14:00:00Z"
# Past the expiry day's close and the 90-minute do-not-exercise cutoff after it.
AFTER_CUTOFF = datetime(2021, 4, 28, 21, 35, tzinfo=UTC)


def recorded(symbol: str, field: str) -> Decimal:
    """The bundled file's value at the first snapshot, read with nothing but csv."""
    with gzip.open(BUNDLED_OPTION_QUOTES, "rt", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if (r["symbol"], r["timestamp"]) == (symbol, FIRST_SNAPSHOT))
    return D(row[field])


@pytest.fixture
async def cboe_mesh(databases, tmp_path):
    environ = mesh_environ(databases, tmp_path, MBT_REPLAY_MODE="stepped", MBT_REPLAY_DATASET="cboe-options-2021")
    mesh = await start_mesh(Settings.from_env(environ))
    yield mesh
    await mesh.stop()


async def test_vix_options_cash_settle_on_the_am_index_value_once(cboe_mesh):
    trading = Trading(cboe_mesh)
    try:
        async with rest_as(cboe_mesh, "vic") as vic:
            start = await cash(vic)
            index_order = {"symbol": "^VIX", "side": "buy", "qty": "1", "order_type": "market", "time_in_force": "day"}
            refused = await vic.post("/api/mbt/orders", json=index_order)
            assert refused.status_code == 400, refused.text  # was a 500: orders could not read "index"
            assert refused.json()["error"]["code"] == "invalid_argument"
            assert "^VIX is an index: it is never traded" in refused.json()["error"]["message"]
            for symbol in (CALL, PUT):
                body = {"symbol": symbol, "side": "buy", "qty": "1", "order_type": "market", "time_in_force": "day"}
                response = await vic.post("/api/mbt/orders", json=body)
                assert response.status_code == 200, response.text
                [fill] = (await order_in(vic, response.json()["data"]["order_id"], "filled"))["fills"]
                assert D(fill["price"]) == recorded(symbol, "ask")
            paid = (recorded(CALL, "ask") + recorded(PUT, "ask")) * 100
            assert await eventually(lambda: _cash_is(vic, start - paid)) is None

            while (now := await trading.now()) < AFTER_CUTOFF:  # a day per step, within its deadline
                await trading.step_to(min(AFTER_CUTOFF, now + timedelta(days=1)))

            async def settle():
                run = await trading.accounts().ExpireOptions(
                    accounts_pb2.ExpireOptionsRequest(session_date=to_date(EXPIRY)), metadata=as_service("jobs")
                )
                assert not run.unpriced, run.unpriced
                return run

            run = await eventually(settle)
            am_value = recorded("^VIX", "bid")  # an index quote: bid = ask = the level
            assert {(s.symbol, s.outcome, D(s.settlement_price)) for s in run.settlements} == {
                (CALL, accounts_pb2.OPTION_OUTCOME_CASH_SETTLED, am_value),
                (PUT, accounts_pb2.OPTION_OUTCOME_EXPIRED_WORTHLESS, am_value),
            }
            proceeds = (am_value - 17) * 100
            rows = {r["symbol"]: r for r in await expirations(vic, 2)}
            assert (rows[CALL]["subtype"], D(rows[CALL]["net_amount"])) == ("cash_settled", proceeds)
            assert (rows[PUT]["subtype"], D(rows[PUT]["net_amount"])) == ("expired_worthless", 0)
            assert await eventually(lambda: _cash_is(vic, start - paid + proceeds)) is None
            assert await holdings(vic) == {}

            again = await trading.accounts().ExpireOptions(
                accounts_pb2.ExpireOptionsRequest(session_date=to_date(EXPIRY)), metadata=as_service("jobs")
            )
            assert list(again.settlements) == []
            assert (await cash(vic), len(await expirations(vic, 2))) == (start - paid + proceeds, 2)
    finally:
        await trading.close()


async def _cash_is(client, expected: Decimal) -> None:
    assert await cash(client) == expected
