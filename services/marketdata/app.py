"""build(settings): wires the market-data service, which owns the market clock.

Provider (replay or alpaca) -> hub (fan-out, one upstream subscription per symbol) ->
StreamQuotes subscribers, with every handed-over tick archived in batches. The replay
anchors the clock at its start, or continues the line a previous run saved, and moves
it, saving each new line before followers hear of it; the alpaca provider runs on the
wall clock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

from services.common.clock import AnchoredClock, WallClock
from services.common.config import ConfigError, Settings
from services.common.instruments import EQUITY, parse_symbol
from services.common.kit import ServiceKit
from services.common.rpc.server import Registration, ServiceRuntime
from services.common.rpc.user_data import UserDataServicer
from services.common.wire.conv import datetime_from_ns
from services.marketdata import recording
from services.marketdata.archive import TickArchiver
from services.marketdata.barfeed import BarFeed
from services.marketdata.clockfeed import STEPPED, ClockLine, ClockPublisher, resume
from services.marketdata.domain.calendar import xnys
from services.marketdata.domain.calibration import Calibration, fit
from services.marketdata.hub import QuoteHub
from services.marketdata.optionmodel import OptionQuoteModel, reference_prices
from services.marketdata.providers.replay import ReplayProvider
from services.marketdata.service import MarketDataServicer
from services.marketdata.store import OUTBOX, SERVICE, USER_TABLES, MarketDataStore
from services.marketdata.timeline import ReplayTimeline
from services.marketdata.usecases import MarketData

log = logging.getLogger(__name__)

CHECKPOINT = "replay"


def _file(value: str, bundled: Path | None) -> Path | None:
    if value.strip().lower() == "none":
        return None
    return Path(value) if value.strip() else bundled


def _credential(value, file_name: str, variable: str) -> str:
    if value:
        return value.reveal()
    if not file_name:
        raise ConfigError(f"the alpaca provider needs {variable} or {variable}_FILE")
    try:
        return Path(file_name).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{variable}_FILE: cannot read {file_name}: {exc.strerror}") from None


def _option_model(timeline: ReplayTimeline, chain, rate: Decimal) -> OptionQuoteModel | None:
    """The quote model for the recording's equities that have no recorded option quotes
    (neither in the recording nor the chain snapshot), calibrated on the bundled SPY chain."""
    specs = [parse_symbol(symbol) for symbol in timeline.recording.symbols]
    recorded = {spec.underlying for spec in specs if spec.is_option} | ({chain.underlying} if chain else set())
    underlyings = [spec.symbol for spec in specs if spec.asset_class == EQUITY and spec.symbol not in recorded]
    references = reference_prices(timeline, underlyings)
    if not references:
        return None
    return OptionQuoteModel(timeline, timeline.calendar, bundled_calibration(), references=references, rate=rate)


def bundled_calibration() -> Calibration:
    """The model's smile and spreads, fitted at start from the bundled SPY chain."""
    return Calibration(fit(recording.load_chain_points(recording.BUNDLED_OPTION_CHAIN)))


def _replay(
    settings: Settings, store: MarketDataStore, clock: AnchoredClock
) -> tuple[ReplayProvider, ClockPublisher, Callable[[], Awaitable[None]]]:
    calendar = xnys()
    bundled_quotes, bundled_trades = recording.DATASETS[settings.replay_dataset]
    quotes = _file(settings.replay_quotes_file, bundled_quotes)
    if quotes is None:
        raise ConfigError("MBT_REPLAY_QUOTES_FILE cannot be none: the replay needs recorded ticks")
    trades_file = _file(settings.replay_trades_file, bundled_trades)
    trades = recording.load_trades(trades_file) if trades_file else None
    timeline = ReplayTimeline(recording.load_recording(quotes), calendar, loop=settings.replay_loop, trades=trades)
    start = settings.replay_start or datetime_from_ns(timeline.default_start_ns())
    stepped = settings.replay_mode == "stepped"
    chain_file = _file(settings.replay_option_chain_file, recording.BUNDLED_OPTION_CHAIN)
    chain = recording.load_option_chain(chain_file) if chain_file else None
    dividends_file = _file(settings.replay_dividends_file, recording.BUNDLED_DIVIDENDS)
    dividends = []
    if dividends_file:
        splits = recording.BUNDLED_SPLITS if dividends_file == recording.BUNDLED_DIVIDENDS else None
        dividends = recording.load_dividends(dividends_file, splits)

    async def restore() -> None:
        """Continue the clock's saved line (or start a new one) before anyone asks the time."""
        saved = await store.load_clock(CHECKPOINT)
        line = resume(saved, start, Decimal(0) if stepped else settings.replay_speed, clock.wall_now())
        if line != saved:
            await store.save_clock(CHECKPOINT, line)
        if saved is not None:
            log.info(
                "replay clock continues where it was", extra={"fields": {"at": line.at(clock.wall_now()).isoformat()}}
            )
        clock.anchor(line.simulated_at, line.speed, line.wall_at)
        provider.resume()
        await store.save_dividends(dividends, "replay", clock.now())

    async def save(new: ClockLine) -> None:
        await store.save_clock(CHECKPOINT, new)

    publisher = ClockPublisher(clock, "stepped" if stepped else "replay", save)
    provider = ReplayProvider(
        timeline,
        calendar,
        publisher,
        stepped=stepped,
        speed=settings.replay_speed,
        skip_closed=settings.replay_skip_closed,
        stall_seconds=settings.step_stall_seconds,
        chain=chain,
        reference_symbols={d.symbol for d in dividends},
        model=_option_model(timeline, chain, settings.option_risk_free_rate),
    )
    return provider, publisher, restore


def _alpaca(settings: Settings, credentials: tuple[str, str], clock: AnchoredClock):
    # Imported here: alpaca-py takes over a second to import and a replay never needs it.
    from services.marketdata.providers.alpaca import AlpacaProvider

    if not clock.synced:
        clock.anchor(WallClock().now(), Decimal(1))
    key, secret = credentials
    provider = AlpacaProvider(
        key=key,
        secret=secret,
        feed=settings.alpaca_feed,
        options_feed=settings.alpaca_options_feed,
        data_url=settings.alpaca_data_url,
        stream_url=settings.alpaca_stream_url,
        calendar=xnys(),
    )
    return provider, ClockPublisher(clock, provider.clock_mode)


def build(settings: Settings, *, clock: AnchoredClock | None = None) -> ServiceRuntime:
    alpaca = settings.marketdata_provider == "alpaca"
    credentials = (
        (
            _credential(settings.alpaca_key, settings.alpaca_key_file, "ALPACA_MARKET_DATA_KEY"),
            _credential(settings.alpaca_secret, settings.alpaca_secret_file, "ALPACA_MARKET_DATA_SECRET"),
        )
        if alpaca
        else None
    )
    clock = clock or AnchoredClock(None)
    kit = ServiceKit.create(SERVICE, settings, tables=OUTBOX, clock=clock)
    store = MarketDataStore(kit.database)
    startup = []
    if credentials is not None:  # the alpaca provider
        provider, publisher = _alpaca(settings, credentials, clock)
    else:
        provider, publisher, restore = _replay(settings, store, clock)
        startup.append(restore)
    archiver = TickArchiver(
        store,
        clock,
        flush_seconds=settings.tick_archive_flush_ms / 1000,
        retention_days=settings.tick_archive_retention_days,
    )
    hub = QuoteHub(
        capacity=settings.quote_stream_buffer,
        subscribe_upstream=provider.subscribe,
        unsubscribe_upstream=provider.unsubscribe,
        archive=archiver.append,
        unsubscribe_after_seconds=settings.quote_unsubscribe_after_seconds,
    )
    provider.attach(hub)
    bar_feed = BarFeed(provider, xnys(), clock)
    market = MarketData(
        provider=provider,
        hub=hub,
        bar_feed=bar_feed,
        archiver=archiver,
        store=store,
        calendar=xnys(),
        publisher=publisher,
        clock=clock,
        risk_free_rate=settings.option_risk_free_rate,
    )
    # A stepped replay advances the bar feed as it steps; any other clock moves by itself.
    follow_clock = [] if provider.clock_mode == STEPPED else [bar_feed.run]
    runtime = kit.runtime(
        [
            Registration.of(MarketDataServicer(market, stream_batch=settings.quote_stream_batch)),
            Registration.of(UserDataServicer(USER_TABLES, kit.database, kit.clock)),
        ],
        background=[archiver.run, *provider.background(), *follow_clock],
    )
    runtime.startup[:0] = startup
    runtime.closers[:0] = [provider.close, archiver.close]
    return runtime
