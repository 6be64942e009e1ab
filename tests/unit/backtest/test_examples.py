"""The shipped examples run on the bundled data, their ledger reconciles, and their result
files are byte-identical across runs and hash seeds."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from services.common.config import Settings
from services.matcher.backtest.ledger import replay_positions
from services.matcher.backtest.model import BacktestSpec
from services.matcher.backtest.runs import build_strategy, execute, recorded

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = Settings.from_env({})
DAYS = (date(2012, 6, 21), date(2012, 6, 25))
EXAMPLES = {"grid": {}, "momentum": {}}


def run(name: str, days: tuple[date, date] = DAYS, **params: str):
    spec = BacktestSpec(first_day=days[0], last_day=days[1], strategy=name, params=params)
    strategy = build_strategy(spec)
    return execute(spec, strategy, recorded(spec, strategy, SETTINGS), SETTINGS)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_trades_and_its_ledger_reconciles(name):
    outcome = run(name)
    result, final = outcome.result, outcome.result.final
    assert result.fills, "the example never traded on the bundled data"
    # cash is the opening amount plus every movement, and each entry's running balance agrees
    assert final.cash == result.config.starting_cash + sum(e.cash_delta for e in result.ledger[1:])
    running = Decimal(0)
    for entry in result.ledger:
        running += entry.cash_delta
        assert entry.cash_after == running
    # positions recomputed from the fills alone equal the account's
    replayed = replay_positions(result.fills)
    assert {s: (p.qty, p.avg_entry_price, p.realized_pl) for s, p in replayed.items()} == {
        s: (p.qty, p.avg_entry_price, p.realized_pl) for s, p in final.positions.items()
    }
    # nothing is held once no order works, and every fill belongs to a filled order
    working = [o for o in result.orders if o.status == "accepted"]
    assert (final.held == 0) == (not working)
    filled = {o.order_id for o in result.orders if o.status == "filled"}
    assert {f.order_id for f in result.fills} == filled
    assert outcome.statistics.end_equity == result.equity[-1].equity


def test_the_grid_example_runs_the_same_on_both_paths():
    spec = BacktestSpec(first_day=DAYS[0], last_day=DAYS[0], strategy="grid", params={"slots": "20"})
    strategy = build_strategy(spec)
    feed = recorded(spec, strategy, SETTINGS)
    jumping = execute(spec, strategy, feed, SETTINGS)
    tick_spec = BacktestSpec(first_day=DAYS[0], last_day=DAYS[0], strategy="grid", params={"slots": "20"}, mode="tick")
    every_tick = execute(tick_spec, build_strategy(tick_spec), feed, SETTINGS)
    assert jumping.result.fills == every_tick.result.fills
    assert {k: v for k, v in jumping.files.items() if k != "report.html"} == {
        k: v for k, v in every_tick.files.items() if k != "report.html"
    }


HASH_SCRIPT = """
import hashlib, json, sys
from datetime import date
from services.common.config import Settings
from services.matcher.backtest.model import BacktestSpec
from services.matcher.backtest.runs import build_strategy, execute, recorded
settings = Settings.from_env({})
spec = BacktestSpec(first_day=date(2012, 6, 21), last_day=date(2012, 6, 22), strategy=sys.argv[1])
strategy = build_strategy(spec)
outcome = execute(spec, strategy, recorded(spec, strategy, settings), settings)
print(json.dumps({name: hashlib.sha256(data).hexdigest() for name, data in outcome.files.items()}))
"""


def _hashes(name: str, seed: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", HASH_SCRIPT, name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_result_files_are_byte_identical_across_runs_and_hash_seeds(name):
    first = _hashes(name, "1")
    assert set(first) >= {
        "orders.parquet",
        "fills.csv",
        "ledger.parquet",
        "equity.csv",
        "statistics.csv",
        "report.html",
    }
    assert _hashes(name, "2") == first
    assert _hashes(name, "1") == first
    in_process = run(name, (date(2012, 6, 21), date(2012, 6, 22)))  # and in this process, after other runs
    assert {n: hashlib.sha256(d).hexdigest() for n, d in in_process.files.items()} == first
