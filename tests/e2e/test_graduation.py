"""The graduation gate over REST and gRPC, on both backends: one-day cycles, one needed
(``MBT_GRADUATION_CYCLES=1``, ``MBT_GRADUATION_CYCLE_DAYS=1``). A user whose day realized a
profit graduates once that day is over; one who did not trade does not, until an operator
opens the gate with ``mbt graduation override`` — audited, the first reason kept."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from mbt.accounts.v1 import accounts_pb2
from services.accounts import graduation_cli
from tests.support import recording
from tests.support.identity import as_user
from tests.support.trading import START, Trading, eventually, ns, rest_as, start_trading_mesh


@pytest.fixture
async def graduating(databases, tmp_path):
    mesh = await start_trading_mesh(databases, tmp_path, MBT_GRADUATION_CYCLES="1", MBT_GRADUATION_CYCLE_DAYS="1")
    trading = Trading(mesh)
    yield trading
    await trading.close()
    await mesh.stop()


async def order(client, **fields) -> str:
    placed = await client.post("/api/mbt/orders", json={"symbol": "AMZN", "qty": "10", **fields})
    assert placed.status_code == 200, placed.text
    order_id = placed.json()["data"]["order_id"]

    async def filled():
        assert (await client.get(f"/api/mbt/orders/{order_id}")).json()["data"]["status"] == "filled"

    await eventually(filled)
    return order_id


async def gate(client) -> dict:
    answer = await client.get("/api/mbt/graduation")
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


async def test_a_profitable_cycle_graduates_and_an_override_opens_the_gate_for_one_who_did_not(graduating, capsys):
    trading = graduating
    async with rest_as(trading.mesh, "alice") as alice, rest_as(trading.mesh, "bob") as bob:
        first = await gate(alice)
        assert (first["eligible"], first["basis"], first["cycles"], first["required_cycles"], first["cycle_days"]) == (
            False,
            None,  # no basis: not eligible
            [],
            1,
            1,
        )
        assert first["source"] == "ledger_realized_pl"
        assert (await bob.get("/api/mbt/account")).status_code == 200

        # Alice buys 10 AMZN at the ask and sells them a cent higher later that day.
        bought_at = recording.standing("AMZN", ns(START)).ask
        await order(alice, client_order_id="g-1", side="buy", order_type="market", time_in_force="day")
        target = bought_at + Decimal("0.01")
        placed = await alice.post(
            "/api/mbt/orders",
            json={
                "client_order_id": "g-2",
                "symbol": "AMZN",
                "side": "sell",
                "qty": "10",
                "order_type": "limit",
                "limit_price": str(target),
                "time_in_force": "day",
            },
        )
        assert placed.status_code == 200, placed.text
        assert (await gate(alice))["eligible"] is False  # the day is not over: no complete cycle
        await trading.step_to(datetime(2012, 6, 22, 14, 0, tzinfo=UTC))

        graduated = await gate(alice)
        assert (graduated["eligible"], graduated["basis"], graduated["consecutive_profitable_cycles"]) == (
            True,
            "profitable_cycles",
            1,
        )
        [cycle] = graduated["cycles"]
        assert (cycle["from_date"], cycle["to_date"], cycle["profitable"]) == ("2012-06-21", "2012-06-21", True)
        assert Decimal(cycle["realized_pl"]) >= Decimal("0.10")  # 10 shares, a cent or more each
        native = await trading.accounts().GetGraduation(accounts_pb2.GetGraduationRequest(), metadata=as_user("alice"))
        assert native.graduation.eligible and native.graduation.basis == "profitable_cycles"

        # Bob did not trade: his day was not profitable.
        missed = await gate(bob)
        assert (missed["eligible"], missed["consecutive_profitable_cycles"]) == (False, 0)
        assert [(c["realized_pl"], c["profitable"]) for c in missed["cycles"]] == [("0.00", False)]

        # An operator opens bob's gate; again with another reason keeps the first.
        for reason in ("finished the options course", "another reason"):
            args = argparse.Namespace(user_id="bob", reason=reason, operator="dave")
            assert await _run_cli(args, trading) == 0
        assert '"basis": "ops_override"' in capsys.readouterr().out
        opened = await gate(bob)
        assert (opened["eligible"], opened["basis"], opened["override_reason"]) == (
            True,
            "ops_override",
            "finished the options course",
        )
        assert opened["override_at"] is not None

        async def audited():
            rows = [e for e in await trading.audit(user_id="bob") if e.record.action == "graduation_override"]
            assert len(rows) == 1, rows
            return rows[0]

        entry = await eventually(audited)
        assert dict(entry.record.after) == {"reason": "finished the options course", "operator": "dave"}

        # Refusals change nothing.
        args = argparse.Namespace(user_id="carol", reason=" ", operator="dave")
        assert await _run_cli(args, trading) == 2
        async with rest_as(trading.mesh, "carol") as carol:
            assert (await gate(carol))["eligible"] is False


async def _run_cli(args, trading: Trading) -> int:
    return await asyncio.to_thread(graduation_cli.main, args, trading.mesh.settings)
