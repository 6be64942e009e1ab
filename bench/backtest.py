"""Backtest throughput: MBT's backtest engine and NautilusTrader's BacktestEngine on the
same scenario, side by side, and MBT on the bundled real day.

The scenario (issue 13, the peers' ``naive_matcher.py`` generator): 1,000,000 L1 quotes
of a seeded random walk (mid in whole cents from $100.00, +-1 cent with probability 1/4
each, spread 2 or 4 cents, 1 ms apart), K GTC limit orders of 100 shares (even slots buy
1-100 cents below, odd slots sell above), each fill re-placing its slot at the filling
quote's mid -/+ the slot's offset. MBT runs the ``grid`` example on a margin account of
$1e9 with the whole ledger on (holds, fills to cash and positions, realized P&L, order
lifecycle); its quotes are placed at 09:31 New York on 2023-11-14 so they are inside a
regular session (MBT fills nothing outside one).

The peers' scripts are loaded from ``MBT_BENCH_PEERS_DIR`` (default ../shared/peers) when
present, never copied into the project; NautilusTrader runs in its own virtualenv
(``MBT_BENCH_NAUTILUS_PYTHON``, default build/bench-venv/bin/python, made by ``make
bench-venv`` from the ``bench`` extra), as a subprocess, and its figure is skipped when
either is missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

from bench.report import Figure, machine, median_of
from services.matcher.backtest.engine import Backtest, BacktestConfig
from services.matcher.backtest.examples import Grid
from services.matcher.backtest.feed import Feed
from services.matcher.backtest.sources import sessions

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(os.environ.get("MBT_BENCH_PEERS_DIR", ROOT.parent.parent / "shared" / "peers"))
NAUTILUS_PYTHON = Path(os.environ.get("MBT_BENCH_NAUTILUS_PYTHON", ROOT / "build" / "bench-venv" / "bin" / "python"))
TICKS = int(os.environ.get("MBT_BENCH_BACKTEST_TICKS", "1000000"))
RESTING = (10, 1_000)
RUNS = 5
NAUTILUS_RUNS = int(os.environ.get("MBT_BENCH_NAUTILUS_RUNS", "3"))
FIRST_QUOTE_NS = 1699972260 * 1_000_000_000  # 2023-11-14 14:31 UTC, a minute after the XNYS open
STEP_NS = 1_000_000
AIMS = {10: ">= 10x NautilusTrader", 1_000: ">= 100x NautilusTrader"}


def run() -> list[Figure]:
    figures = []
    peers = _peers()
    if peers is None:
        print(f"  (no peers at {PEERS}: the synthetic scenario and NautilusTrader are skipped)")
    else:
        bids, asks = peers.gen_ticks(TICKS)
        sessions()  # the XNYS calendar loads once per process, outside the timings
        index_seconds = median_of(3, lambda: _timed(lambda: synthetic_feed(bids, asks)))
        feed = synthetic_feed(bids, asks)
        del bids, asks  # 2M Python ints the collector would walk during the runs; the feed holds numpy arrays
        for k in RESTING:
            figures += _scenario(peers, feed, k, index_seconds)
    figures += _bundled()
    return figures


def _peers():
    path = PEERS / "naive_matcher.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("peers_naive_matcher", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic_feed(bids: list[int], asks: list[int]) -> Feed:
    n = len(bids)
    times = FIRST_QUOTE_NS + np.arange(n, dtype=np.int64) * STEP_NS
    size = np.full(n, 1_000_000, dtype=np.int64)
    return Feed.from_columns(
        ["SIM"],
        np.zeros(n, dtype=np.int32),
        times,
        np.asarray(bids, dtype=np.int64),
        np.asarray(asks, dtype=np.int64),
        size,
        size,
        np.arange(1, n + 1, dtype=np.int64),
        2,
        sessions(),
        f"{n:,} random-walk quotes",
    )


def grid(peers, k: int) -> Grid:
    """The scenario's K slots: offsets from the peers' seeded table (slot, quote index)."""
    return Grid(
        {"symbol": "SIM", "slots": str(k), "qty": "100", "center": "100.00"},
        offset=lambda slot, sequence: peers.replacement_offset(slot, max(0, sequence - 1)),
    )


def mbt_run(peers, feed: Feed, k: int):
    config = BacktestConfig(
        start_ns=FIRST_QUOTE_NS - 1,
        end_ns=FIRST_QUOTE_NS + len(feed) * STEP_NS,
        account_type="margin",
        starting_cash=Decimal(10**9),
    )
    return Backtest(feed, grid(peers, k), config).run()


def _scenario(peers, feed: Feed, k: int, index_seconds: float) -> list[Figure]:
    result = mbt_run(peers, feed, k)
    naive_fills, _ = peers.run_b(*_quotes(feed), k)
    seconds = median_of(RUNS, lambda: _timed(lambda: mbt_run(peers, feed, k)))
    rate = len(feed) / seconds
    config = (
        f"{len(feed):,} random-walk quotes, K={k:,} resting GTC limits of 100 sh re-placed on fill, "
        f"{len(result.fills):,} fills (the peers' heap baseline: {naive_fills:,}), {result.decisions:,} "
        f"decide() calls, full ledger, margin account; the run (Backtest.run, {seconds:.2f} s); building "
        f"the feed's search index once takes {index_seconds:.2f} s more, like Nautilus's add_data "
        f"(with it: {len(feed) / (seconds + index_seconds):,.0f} ticks/s); {machine()}"
    )
    figures = [Figure(f"MBT backtest, K={k:,}", rate, "ticks/s", RUNS, config)]
    nautilus = _nautilus(k)
    if nautilus is not None:
        nautilus_rate, line = nautilus
        figures.append(Figure(f"NautilusTrader BacktestEngine, K={k:,}", nautilus_rate, "ticks/s", NAUTILUS_RUNS, line))
        figures.append(
            Figure(
                f"MBT / NautilusTrader, K={k:,}",
                rate / nautilus_rate,
                "x",
                RUNS,
                "ratio of the two medians above",
                AIMS[k],
            )
        )
    return figures


def _quotes(feed: Feed) -> tuple[list[int], list[int]]:
    columns = feed.columns["SIM"]
    return columns.bid.tolist(), columns.ask.tolist()


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _nautilus(k: int) -> tuple[float, str] | None:
    script = PEERS / "nautilus_quote_backtest.py"
    if not script.is_file() or not NAUTILUS_PYTHON.is_file():
        print(f"  (NautilusTrader skipped: needs {script} and {NAUTILUS_PYTHON}; `make bench-venv` makes it)")
        return None
    rates, last = [], ""
    for _ in range(NAUTILUS_RUNS):
        done = subprocess.run(
            [str(NAUTILUS_PYTHON), str(script), "--ticks", str(TICKS), "--orders", str(k)],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        match = re.search(r"ticks_per_s=([\d,]+)", done.stdout)
        if done.returncode != 0 or match is None:
            print(f"  (NautilusTrader failed: {done.stderr.strip()[-300:]})")
            return None
        rates.append(float(match.group(1).replace(",", "")))
        last = done.stdout.strip().splitlines()[-1]
    return statistics.median(rates), last


BUNDLED_SCRIPT = """
import resource, sys, time
from datetime import date
from decimal import Decimal
from services.common.config import Settings
from services.matcher.backtest.model import BacktestSpec
from services.matcher.backtest.runs import build_strategy, execute, recorded
settings = Settings.from_env({})
spec = BacktestSpec(first_day=date(2012, 6, 21), last_day=date(2012, 6, 21), strategy="grid",
                    params={"slots": sys.argv[1]}, account_type="margin", starting_cash=Decimal(10**9))
strategy = build_strategy(spec)
feed = recorded(spec, strategy, settings)
started = time.perf_counter()
outcome = execute(spec, strategy, feed, settings)
print(outcome.result.ticks, time.perf_counter() - started, len(outcome.result.fills),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _bundled() -> list[Figure]:
    figures = []
    for slots in ("10", "1000"):
        rates, peak, fills, ticks = [], 0, "0", "0"
        for _ in range(3):
            done = subprocess.run(
                [sys.executable, "-c", BUNDLED_SCRIPT, slots],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            ticks, seconds, fills, rss = done.stdout.split()
            rates.append(int(ticks) / float(seconds))
            peak = max(peak, int(rss))
        config = (
            f"the bundled AMZN+GOOG day 2012-06-21 ({int(ticks):,} quotes), grid example {slots} slots on AMZN, "
            f"{fills} fills, result files and HTML report included; peak RSS of the process "
            f"{peak / 1024:,.0f} MiB (loading the recording included); {machine()}"
        )
        figures.append(
            Figure(f"MBT backtest, bundled day, grid {slots}", statistics.median(rates), "ticks/s", 3, config)
        )
    return figures
