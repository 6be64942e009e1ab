"""Backtests through REST and native gRPC on the whole mesh: queued, run by the
``mbt.run_backtest`` job (a real jobs worker process) in the matcher with progress, reported; each user sees only their own; a failing strategy
is a failed backtest with its error (never a 500); the user's paper account is untouched."""

from __future__ import annotations

import base64

import grpc
import pytest

from mbt.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from services.common.config import Settings
from services.matcher.backtest import examples
from services.matcher.backtest.strategy import Strategy
from tests.support.identity import as_user, sign_in
from tests.support.jobs import JobsProcesses
from tests.support.mesh import gateway_client, start_mesh
from tests.support.trading import eventually, trading_environ

DAY = {"from_date": "2012-06-21", "to_date": "2012-06-21"}


class Exploding(Strategy):
    name = "exploding"
    symbols = ("AMZN",)

    def on_start(self, ctx):
        ctx.schedule(ctx.next_session()[0] + 3600 * 10**9, self.explode)

    def explode(self, ctx):
        raise RuntimeError("the strategy divided by zero")


@pytest.fixture
async def mesh(databases, tmp_path, monkeypatch):
    monkeypatch.setitem(examples.REGISTRY, "exploding", Exploding)  # the matcher, in this process, runs strategies
    environ = trading_environ(databases, tmp_path)
    mesh = await start_mesh(Settings.from_env(environ))
    worker = JobsProcesses(environ, tmp_path / "logs")
    await worker.start("worker")
    yield mesh
    await worker.stop()
    await mesh.stop()


async def finished(client, backtest_id: str) -> dict:
    async def check():
        response = await client.get(f"/api/mbt/backtests/{backtest_id}")
        assert response.status_code == 200, response.text
        backtest = response.json()["data"]
        assert backtest["status"] in ("succeeded", "failed"), backtest
        return backtest

    return await eventually(check, timeout=120)


async def test_a_backtest_runs_through_rest_and_only_its_owner_sees_it(mesh):
    async with gateway_client(mesh.app) as alice, gateway_client(mesh.app) as bob:
        await sign_in(alice, "alice")
        await sign_in(bob, "bob")
        account_before = (await alice.get("/api/mbt/account")).json()["data"]
        created = await alice.post("/api/mbt/backtests", json={"strategy": "grid", "parameters": {"slots": "6"}, **DAY})
        assert created.status_code == 200, created.text
        backtest = created.json()["data"]
        assert backtest["status"] == "queued" and backtest["backtest_id"].startswith("bt_")
        done = await finished(alice, backtest["backtest_id"])
        assert done["status"] == "succeeded", done["error"]
        assert done["progress_percent"] == 100 and done["fills"] > 0 and done["ticks"] > 0
        stats = {s["name"]: s["value"] for s in done["statistics"]}
        assert stats["fees"] == "$0.00" and stats["fills"] == str(done["fills"])
        names = [f["name"] for f in done["files"]]
        assert {"report.html", "fills.parquet", "fills.csv", "ledger.parquet", "equity.csv"} <= set(names)

        report = await alice.get(f"/api/mbt/backtests/{backtest['backtest_id']}/report")
        assert report.status_code == 200
        assert report.json()["data"]["html"].startswith("<!DOCTYPE html>")
        assert "data:image/png;base64," in report.json()["data"]["html"]
        fills = await alice.get(f"/api/mbt/backtests/{backtest['backtest_id']}/files/fills.csv")
        assert fills.status_code == 200 and fills.json()["data"]["content_type"] == "text/csv"

        listed = (await alice.get("/api/mbt/backtests")).json()["data"]
        assert [b["backtest_id"] for b in listed["backtests"]] == [backtest["backtest_id"]]
        assert (await bob.get("/api/mbt/backtests")).json()["data"]["backtests"] == []
        for path in ("", "/report", "/files/fills.csv"):
            other = await bob.get(f"/api/mbt/backtests/{backtest['backtest_id']}{path}")
            assert other.status_code == 404 and other.json()["error"]["code"] == "not_found", other.text

        # the backtest never touched alice's paper account
        account_after = (await alice.get("/api/mbt/account")).json()["data"]
        assert account_after["cash"] == account_before["cash"] and account_after["reserved"] == "0.00"
        assert (await alice.get("/api/mbt/orders")).json()["data"] == []

    async with grpc.aio.insecure_channel(mesh.target("matcher")) as channel:
        stub = matcher_pb2_grpc.BacktestServiceStub(channel)
        mine = await stub.GetBacktest(
            matcher_pb2.GetBacktestRequest(backtest_id=backtest["backtest_id"]), metadata=as_user("alice")
        )
        assert mine.backtest.status == matcher_pb2.BACKTEST_STATUS_SUCCEEDED
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetBacktestReport(
                matcher_pb2.GetBacktestReportRequest(backtest_id=backtest["backtest_id"]), metadata=as_user("bob")
            )
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_covered_call_example_runs_by_name_and_its_call_is_assigned(mesh):
    async with gateway_client(mesh.app) as alice:
        await sign_in(alice, "alice")
        created = await alice.post(
            "/api/mbt/backtests",
            json={
                "strategy": "covered_call",
                "parameters": {"otm_pct": "-3"},
                "from_date": "2012-06-21",
                "to_date": "2012-06-22",
            },
        )
        assert created.status_code == 200, created.text
        backtest_id = created.json()["data"]["backtest_id"]
        done = await finished(alice, backtest_id)
        assert done["status"] == "succeeded", done["error"]
        fills = await alice.get(f"/api/mbt/backtests/{backtest_id}/files/fills.csv")
        ledger = await alice.get(f"/api/mbt/backtests/{backtest_id}/files/ledger.csv")
        fills_csv = base64.b64decode(fills.json()["data"]["content"]).decode()
        ledger_csv = base64.b64decode(ledger.json()["data"]["content"]).decode()
        # 100 AMZN bought, the Friday call sold for its premium, assigned at the close
        assert "AMZN120622C00220000" in fills_csv and done["fills"] == 2
        assigned = [line for line in ledger_csv.splitlines() if ",assigned," in line]
        assert len(assigned) == 2 and any("AMZN,sell,100" in line for line in assigned), ledger_csv


async def test_a_failing_strategy_or_script_is_a_failed_backtest_with_its_error(mesh):
    async with gateway_client(mesh.app) as alice:
        await sign_in(alice, "alice")
        exploding = (await alice.post("/api/mbt/backtests", json={"strategy": "exploding", **DAY})).json()["data"]
        script = {
            "steps": [
                {
                    "at": "2012-06-21T12:00:00Z",  # 08:00 New York: an ioc order needs the market open
                    "submit": {
                        "client_order_id": "early",
                        "symbol": "AMZN",
                        "side": "buy",
                        "qty": "1",
                        "order_type": "limit",
                        "limit_price": "200.00",
                        "time_in_force": "ioc",
                    },
                }
            ]
        }
        scripted = (await alice.post("/api/mbt/backtests", json={"script": script, **DAY})).json()["data"]
        failed = await finished(alice, exploding["backtest_id"])
        assert failed["status"] == "failed"
        assert "RuntimeError" in failed["error"] and "the strategy divided by zero" in failed["error"]
        refused = await finished(alice, scripted["backtest_id"])
        assert refused["status"] == "failed" and "step 0 (submit) refused: market_closed" in refused["error"]
        report = await alice.get(f"/api/mbt/backtests/{exploding['backtest_id']}/report")
        assert report.status_code == 400 and report.json()["error"]["code"] == "failed_precondition"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"strategy": "no_such_strategy", **DAY}, "strategy"),
        ({"strategy": "grid", "data": "/etc/passwd", **DAY}, "data"),
        ({"strategy": "grid", "from_date": "2012-06-22", "to_date": "2012-06-21"}, "to_date"),
        (
            {
                "script": {
                    "steps": [
                        {
                            "at": "2012-06-21T14:00:00Z",
                            "submit": {
                                "symbol": "AMZN",
                                "side": "buy",
                                "qty": "1.5",
                                "order_type": "market",
                                "time_in_force": "day",
                            },
                        }
                    ]
                },
                **DAY,
            },
            "qty",
        ),
    ],
)
async def test_bad_backtest_requests_are_refused_before_anything_runs(mesh, body, field):
    async with gateway_client(mesh.app) as alice:
        await sign_in(alice, "alice")
        response = await alice.post("/api/mbt/backtests", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_argument"
        assert field in response.json()["error"]["message"] or field in response.text
        assert (await alice.get("/api/mbt/backtests")).json()["data"]["backtests"] == []
