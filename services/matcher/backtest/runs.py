"""One backtest from its parameters to its result files: what the CLI, the matcher's
BacktestService and (later) the ``mbt.run_backtest`` job all call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.common.config import Settings
from services.common.errors import invalid_argument
from services.matcher.backtest.engine import Backtest, BacktestConfig, BacktestResult
from services.matcher.backtest.examples import strategy_named
from services.matcher.backtest.feed import Feed
from services.matcher.backtest.ledger import DEFAULT_STARTING_CASH
from services.matcher.backtest.model import MARKETDATA, BacktestSpec
from services.matcher.backtest.report import render
from services.matcher.backtest.results import backtest_statistics, files
from services.matcher.backtest.script import ScriptStrategy, parse_script
from services.matcher.backtest.sources import day_bounds, history_feed, recorded_feed
from services.matcher.backtest.stats import Statistics
from services.matcher.backtest.strategy import Strategy
from services.matcher.clients import MarketDataClient


@dataclass
class Outcome:
    result: BacktestResult
    statistics: Statistics
    files: dict[str, bytes]


def build_strategy(spec: BacktestSpec) -> Strategy:
    if spec.script is not None:
        return ScriptStrategy(parse_script(spec.script))
    return strategy_named(spec.strategy, dict(spec.params))


def symbols_of(spec: BacktestSpec, strategy: Strategy) -> list[str]:
    return sorted({*spec.symbols, *strategy.symbols, *strategy.quotes, *(o.underlying for o in strategy.options)})


def recorded(spec: BacktestSpec, strategy: Strategy, settings: Settings) -> Feed:
    start_ns, end_ns = day_bounds(spec.first_day, spec.last_day)
    return recorded_feed(
        spec.data,
        symbols_of(spec, strategy),
        start_ns,
        end_ns,
        loop=settings.replay_loop,
        options=strategy.options,
        rate=settings.option_risk_free_rate,
    )


async def feed_for(
    spec: BacktestSpec, strategy: Strategy, settings: Settings, marketdata: MarketDataClient | None = None
) -> Feed:
    """The quotes of the run: recorded (in process) or the market-data service's history."""
    if spec.data == MARKETDATA:
        if marketdata is None:
            raise invalid_argument("no market-data service to read history from", "data")
        if strategy.options:
            raise invalid_argument(
                "option quotes come from the recorded feed's model (data bundled or a recorded file), "
                "not from market-data history yet",
                "data",
            )
        start_ns, end_ns = day_bounds(spec.first_day, spec.last_day)
        return await history_feed(marketdata, symbols_of(spec, strategy), start_ns, end_ns)
    return recorded(spec, strategy, settings)


def execute(
    spec: BacktestSpec,
    strategy: Strategy,
    feed: Feed,
    settings: Settings,
    *,
    user_id: str = "backtest",
    progress: Callable[[int, int], None] | None = None,
) -> Outcome:
    start_ns, end_ns = day_bounds(spec.first_day, spec.last_day)
    config = BacktestConfig(
        start_ns=start_ns,
        end_ns=end_ns,
        account_type=spec.account_type or strategy.account_type or "cash",
        starting_cash=spec.starting_cash or DEFAULT_STARTING_CASH,
        collar_pct=settings.market_order_collar_pct,
        max_quote_age_ns=int(settings.max_quote_age_seconds * 1_000_000_000),
        mode=spec.mode,
        user_id=user_id,
        seed=spec.seed,
    )
    result = Backtest(feed, strategy, config, progress=progress).run()
    stats = backtest_statistics(result)
    return Outcome(result, stats, files(result, render(result, stats, feed), stats))
