"""``mbt backtest STRATEGY --data … --from … --to …``: a backtest in this process, with a
progress bar (ticks processed, ETA) and a summary table; the result files go to --out."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mbt.marketdata.v1 import marketdata_pb2_grpc
from services.common.config import Settings
from services.common.errors import DomainError
from services.common.rpc.channels import open_channel
from services.common.security.auth import ServiceCredentials
from services.common.security.tokens import TokenIssuer, TokenKeys
from services.matcher.backtest.engine import MODES, StrategyError
from services.matcher.backtest.examples import REGISTRY
from services.matcher.backtest.feed import FeedError
from services.matcher.backtest.model import BUNDLED, MARKETDATA, BacktestSpec
from services.matcher.backtest.runs import build_strategy, execute, feed_for
from services.matcher.clients import MarketDataClient


def add_parser(commands) -> None:
    run = commands.add_parser(
        "backtest",
        help="run a backtest in this process",
        description=f"STRATEGY is a registered strategy ({', '.join(sorted(REGISTRY))}) or a JSON order "
        "script file (*.json).",
    )
    run.add_argument("strategy", help="registered name or path to a .json order script")
    run.add_argument(
        "--data",
        default=BUNDLED,
        help=f"'{BUNDLED}' (the LOBSTER AMZN/GOOG day, replayed on every session), a recorded "
        f"tick file (CSV/Parquet, the replay layout), or '{MARKETDATA}' (ListQuoteHistory of "
        "the market-data service at MBT_MARKETDATA_TARGET)",
    )
    run.add_argument("--from", dest="first_day", type=_day, required=True, help="first New York day, YYYY-MM-DD")
    run.add_argument("--to", dest="last_day", type=_day, required=True, help="last New York day, YYYY-MM-DD")
    run.add_argument(
        "--param",
        action="append",
        default=[],
        type=_param,
        metavar="NAME=VALUE",
        help="strategy parameter (repeatable)",
    )
    run.add_argument("--symbols", default="", help="extra symbols to load, comma-separated")
    run.add_argument(
        "--account-type", choices=("cash", "margin"), default="", help="default: what the strategy needs, else cash"
    )
    run.add_argument("--starting-cash", type=_decimal, default=None, help="default: $100,000")
    run.add_argument("--path", choices=MODES, default="jump", help="event-jump (default) or every tick")
    run.add_argument("--seed", default="0", help="seeds the order ids")
    run.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for the result files (default: <MBT_DATA_DIR>/backtests/<strategy>-<from>-<to>)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")


def _day(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date like 2012-06-21") from None


def _param(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected NAME=VALUE")
    return name.strip(), value.strip()


def _decimal(raw: str) -> Decimal:
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise argparse.ArgumentTypeError("expected a decimal amount like 50000") from None


def spec_from_args(args: argparse.Namespace) -> BacktestSpec:
    script = None
    strategy = args.strategy
    if strategy.endswith(".json"):
        script = json.loads(Path(strategy).read_text())
        strategy = ""
    return BacktestSpec(
        first_day=args.first_day,
        last_day=args.last_day,
        strategy=strategy,
        params=dict(args.param),
        script=script,
        data=args.data,
        symbols=tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip()),
        account_type=args.account_type,
        starting_cash=args.starting_cash,
        mode=args.path,
        seed=args.seed,
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    console = Console(stderr=True)
    try:
        spec = spec_from_args(args)
        spec.validate()
        strategy = build_strategy(spec)
        with console.status("loading quotes"):
            feed = asyncio.run(_feed(spec, strategy, settings))
        with Progress(
            TextColumn("[bold]backtest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ticks"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=args.no_progress,
        ) as bar:
            task = bar.add_task("ticks", total=None)
            outcome = execute(
                spec,
                strategy,
                feed,
                settings,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except (DomainError, FeedError, StrategyError, OSError, ValueError) as exc:
        message = f"{exc.reason.lower()}: {exc.message}" if isinstance(exc, DomainError) else str(exc)
        print(f"mbt backtest: {message}", file=sys.stderr)
        return 1
    out = args.out or settings.data_dir / "backtests" / f"{strategy.name}-{spec.first_day}-{spec.last_day}"
    out.mkdir(parents=True, exist_ok=True)
    for name, content in outcome.files.items():
        (out / name).write_bytes(content)
    table = Table(title=f"{outcome.result.strategy}: {spec.first_day} to {spec.last_day} ({outcome.result.feed})")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for name, value in outcome.statistics.rows():
        table.add_row(name, value)
    table.add_row("orders", f"{len(outcome.result.orders):,}")
    table.add_row("ticks", f"{outcome.result.ticks:,}")
    Console().print(table)
    Console().print(f"report: {out / 'report.html'}  (files: {', '.join(outcome.files)})")
    return 0


async def _feed(spec: BacktestSpec, strategy, settings: Settings):
    if spec.data != MARKETDATA:
        return await feed_for(spec, strategy, settings)
    credentials = ServiceCredentials(TokenIssuer(TokenKeys.from_settings(settings)), "cli")
    channel = open_channel(settings.service("marketdata").target, credentials)
    try:
        marketdata = MarketDataClient(marketdata_pb2_grpc.MarketDataServiceStub(channel), settings.rpc_timeout_seconds)
        return await feed_for(spec, strategy, settings, marketdata)
    finally:
        await channel.close()
