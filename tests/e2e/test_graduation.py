"""The graduation gate over REST and gRPC, on both backends: one-day cycles, one needed
(``MBT_GRADUATION_CYCLES=1``, ``MBT_GRADUATION_CYCLE_DAYS=1``), judged by the change in
equity between EOD snapshots. Once the day is over and its close is marked (the internal
``MarkEndOfDay``, called as the platform like the ``mbt.eod_mark_all`` job), a user whose
equity rose graduates; one who realized a profit but holds shares that fell below their cost
at the close does not; one who did not trade does not, until an operator opens the gate with
``mbt graduation override`` — audited, the first reason kept. Every figure is computed here
from the fills and the recording's closing quote."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from mbt.accounts.v1 import accounts_pb2
from services.accounts import graduation_cli
from services.common.wire.conv import to_date
from tests.support import recording
from tests.support.identity import as_service, as_user
from tests.support.trading import (
    CLOSE,
    START,
    Trading,
    account_when,
    eventually,
    ns,
    rest_as,
    start_trading_mesh,
)


@pytest.fixture
async def graduating(databases, tmp_path):
    mesh = await start_trading_mesh(databases, tmp_path, MBT_GRADUATION_CYCLES="1", MBT_GRADUATION_CYCLE_DAYS="1")
    trading = Trading(mesh)
    yield trading
    await trading.close()
    await mesh.stop()


async def place(client, **fields) -> str:
    placed = await client.post("/api/mbt/orders", json={"symbol": "AMZN", "qty": "10", **fields})
    assert placed.status_code == 200, placed.text
    return placed.json()["data"]["order_id"]


async def filled_price(client, order_id: str) -> Decimal:
    async def filled():
        order = (await client.get(f"/api/mbt/orders/{order_id}")).json()["data"]
        assert order["status"] == "filled", order
        return Decimal(order["filled_avg_price"])

    return await eventually(filled)


async def buy(client, client_order_id: str) -> Decimal:
    """10 AMZN at market; the fill price."""
    order_id = await place(
        client, client_order_id=client_order_id, side="buy", order_type="market", time_in_force="day"
    )
    return await filled_price(client, order_id)


async def sell_above(client, client_order_id: str, price: Decimal) -> str:
    """A day limit order selling 10 AMZN at ``price``."""
    fields = {"side": "sell", "order_type": "limit", "limit_price": str(price), "time_in_force": "day"}
    return await place(client, client_order_id=client_order_id, **fields)


async def starting_cash(client) -> Decimal:
    return Decimal((await client.get("/api/mbt/account")).json()["data"]["cash"])


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
        assert first["source"] == "eod_snapshots"
        assert (await bob.get("/api/mbt/account")).status_code == 200

        # Alice buys 10 AMZN at the ask and sells them a cent higher later that day; Carl
        # does the same and buys 10 more, which he still holds at the close, AMZN lower then.
        async with rest_as(trading.mesh, "carl") as carl:
            start = {"alice": await starting_cash(alice), "carl": await starting_cash(carl)}
            target = recording.standing("AMZN", ns(START)).ask + Decimal("0.01")
            bought = {"alice": await buy(alice, "g-1"), "carl": await buy(carl, "c-1")}
            sells = {"alice": await sell_above(alice, "g-2", target), "carl": await sell_above(carl, "c-2", target)}
            held_at = await buy(carl, "c-3")
            assert (await gate(alice))["eligible"] is False  # the day is not over: no complete cycle
            await trading.step_to(datetime(2012, 6, 22, 14, 0, tzinfo=UTC))
            sold = {
                user: await filled_price(client, sells[user]) for user, client in (("alice", alice), ("carl", carl))
            }
            cash = {user: start[user] + 10 * (sold[user] - bought[user]) for user in start}
            cash["carl"] -= 10 * held_at
            await account_when(alice, cash=f"{cash['alice']:.2f}")
            await account_when(carl, cash=f"{cash['carl']:.2f}")

            # The day is over but its close is not marked: no snapshot, no complete cycle.
            assert ((await gate(alice))["eligible"], (await gate(alice))["cycles"]) == (False, [])
            marked = await trading.accounts().MarkEndOfDay(
                accounts_pb2.MarkEndOfDayRequest(session_date=to_date(CLOSE.date())), metadata=as_service("jobs")
            )
            assert marked.created == 3  # alice, bob, carl

            graduated = await gate(alice)
            assert (graduated["eligible"], graduated["basis"], graduated["consecutive_profitable_cycles"]) == (
                True,
                "profitable_cycles",
                1,
            )
            [cycle] = graduated["cycles"]
            assert (cycle["from_date"], cycle["to_date"], cycle["profitable"]) == ("2012-06-21", "2012-06-21", True)
            # Flat at the close: her equity is her cash, up 10 shares × what she sold above cost.
            assert [Decimal(cycle[k]) for k in ("start_equity", "end_equity", "profit_loss")] == [
                start["alice"],
                cash["alice"],
                10 * (sold["alice"] - bought["alice"]),
            ]
            assert Decimal(cycle["profit_loss"]) >= Decimal("0.10")  # 10 shares, a cent or more each
            native = await trading.accounts().GetGraduation(
                accounts_pb2.GetGraduationRequest(), metadata=as_user("alice")
            )
            assert native.graduation.eligible and native.graduation.basis == "profitable_cycles"
            assert native.graduation.source == "eod_snapshots"

            # Carl realized a profit, but the 10 shares he holds are marked at the closing bid,
            # below their cost: his equity fell and he does not graduate.
            assert sold["carl"] > bought["carl"]
            close_bid = recording.standing("AMZN", ns(CLOSE)).bid
            held = await gate(carl)
            assert (held["eligible"], held["consecutive_profitable_cycles"]) == (False, 0)
            [cycle] = held["cycles"]
            end_equity = cash["carl"] + 10 * close_bid
            assert [Decimal(cycle[k]) for k in ("start_equity", "end_equity", "profit_loss")] == [
                start["carl"],
                end_equity,
                end_equity - start["carl"],
            ]
            assert end_equity < start["carl"] and cycle["profitable"] is False

        # Bob did not trade: his day was not profitable.
        missed = await gate(bob)
        assert (missed["eligible"], missed["consecutive_profitable_cycles"]) == (False, 0)
        assert [(c["profit_loss"], c["profitable"]) for c in missed["cycles"]] == [("0.00", False)]

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
