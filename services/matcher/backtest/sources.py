"""Where a backtest's quotes come from: the bundled recording or any recorded tick file
(CSV/Parquet, the replay layout), played on the XNYS sessions exactly as the replay plays
it, or the market-data service's quote history (ListQuoteHistory: Alpaca's historical
quotes with the alpaca provider).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from services.common.errors import invalid_argument
from services.common.instruments import SymbolSpec, parse_symbol
from services.marketdata.app import bundled_calibration
from services.marketdata.domain.calendar import new_york_date, new_york_midnight_ns, xnys
from services.marketdata.domain.ticks import Tick as FeedTick
from services.marketdata.optionmodel import OptionQuoteModel, reference_prices
from services.marketdata.recording import BUNDLED_QUOTES, RecordingError, load_recording
from services.marketdata.timeline import ReplayTimeline
from services.matcher.backtest.feed import Feed, FeedError, Sessions
from services.matcher.backtest.model import BUNDLED
from services.matcher.backtest.strategy import OptionQuotes
from services.matcher.clients import MarketDataClient

DEFAULT_RISK_FREE_RATE = Decimal("0.001")  # MBT_OPTION_RISK_FREE_RATE's default


@functools.cache
def sessions() -> Sessions:
    """The XNYS sessions, built once per process."""
    return Sessions(xnys())


def window_start_ns(start_ns: int) -> int:
    """Quotes are read from the midnight (New York) of the first day, so the quote standing
    at the start is known."""
    return new_york_midnight_ns(new_york_date(start_ns))


def recorded_feed(
    data: str,
    symbols: Sequence[str],
    start_ns: int,
    end_ns: int,
    *,
    loop: bool = True,
    options: Sequence[OptionQuotes] = (),
    rate: Decimal = DEFAULT_RISK_FREE_RATE,
) -> Feed:
    """A recording played as the replay plays it: day 0 on its own date(s), then, with
    ``loop``, again on every following XNYS session (same sequences as the replay). With
    ``options``, the contracts they ask for carry the replay's model quotes
    (``optionmodel.OptionQuoteModel``, the live replay's code): each changed quote right
    after the underlying tick it was priced from, same sequence and time, until the
    contract's last trading close. ``rate`` is the model's risk-free rate."""
    path = BUNDLED_QUOTES if data in ("", BUNDLED) else Path(data)
    if not path.is_file():
        raise invalid_argument(f"no recorded quotes at {data!r}", "data")
    try:
        recording = load_recording(path)
    except RecordingError as exc:
        raise invalid_argument(str(exc), "data") from None
    timeline = ReplayTimeline(recording, xnys(), loop=loop)
    wanted = [s for s in symbols if s in recording.indices_by_symbol] if symbols else None
    if wanted is not None and not wanted:
        raise invalid_argument(f"{path.name} has no quotes for {', '.join(symbols)}", "symbols")
    first_ns = window_start_ns(start_ns)
    contracts: list[SymbolSpec] = []
    if options:
        ticks = _with_option_quotes(timeline, wanted, options, rate, first_ns, end_ns)
        contracts = [spec for _, spec in _followed(_option_model(timeline, options, rate), options, first_ns, end_ns)]
    else:
        ticks = list(timeline.between(first_ns - 1, end_ns, wanted))
    try:
        feed = Feed.from_ticks(ticks, sessions(), f"{path.name} ({len(ticks):,} ticks)")
    except FeedError as exc:
        raise invalid_argument(str(exc), "data") from None
    feed.options = {spec.symbol: spec for spec in contracts if spec.symbol in feed.columns}
    return feed


def _option_model(timeline: ReplayTimeline, options: Iterable[OptionQuotes], rate: Decimal) -> OptionQuoteModel:
    """The replay's option quote model for the recording's underlyings, calibrated on the
    bundled SPY chain (as the market-data service builds it)."""
    underlyings = sorted({o.underlying.strip().upper() for o in options})
    references = reference_prices(timeline, underlyings)
    missing = [u for u in underlyings if u not in references]
    if missing:
        raise invalid_argument(
            f"the recording has no usable quotes of {', '.join(missing)} to price options on", "data"
        )
    return OptionQuoteModel(timeline, timeline.calendar, bundled_calibration(), references=references, rate=rate)


def _with_option_quotes(
    timeline: ReplayTimeline,
    wanted: list[str] | None,
    options: Sequence[OptionQuotes],
    rate: Decimal,
    first_ns: int,
    end_ns: int,
) -> list[FeedTick]:
    """The window's ticks with the model quotes of the contracts ``options`` ask for: each
    contract followed (``OptionQuoteModel.track``) from the midnight its request starts it
    at, its quotes those the live stream carries from then on (``expand``)."""
    model = _option_model(timeline, options, rate)
    followed = _followed(model, options, first_ns, end_ns)
    underlyings = sorted({*(wanted or timeline.recording.indices_by_symbol), *model.underlyings})
    keep = set(wanted or underlyings)
    starts = sorted({start for start, _ in followed} | {first_ns})
    ticks: list[FeedTick] = []
    for index, start in enumerate(starts):
        model.track([spec for begins, spec in followed if begins == start], start)
        until = starts[index + 1] - 1 if index + 1 < len(starts) else end_ns
        ticks.extend(model.expand(timeline.between(start - 1, until, underlyings), keep))
    return ticks


def _followed(
    model: OptionQuoteModel, options: Iterable[OptionQuotes], first_ns: int, end_ns: int
) -> list[tuple[int, SymbolSpec]]:
    """(when it is followed from, the contract) for each listed contract the requests cover:
    from the midnight ``days_before`` its expiry, or the window's start."""
    last_day = new_york_date(end_ns)
    chosen: dict[str, tuple[int, SymbolSpec]] = {}
    for wanted in options:
        if wanted.contract:
            spec = parse_symbol(wanted.contract)
            if model.listed(spec, first_ns):
                chosen[spec.symbol] = (first_ns, spec)
            continue
        underlying = wanted.underlying.strip().upper()
        reference = model.references[underlying]
        low, high = reference * (1 + wanted.strikes_from), reference * (1 + wanted.strikes_to)
        for spec in model.contracts(underlying, first_ns, None):
            if (
                spec.expiration is not None
                and spec.expiration <= last_day + timedelta(days=wanted.days_after)
                and (not wanted.option_type or spec.option_type == wanted.option_type.lower())
                and low <= (spec.strike or Decimal(0)) <= high
            ):
                begins = max(first_ns, new_york_midnight_ns(spec.expiration - timedelta(days=wanted.days_before)))
                chosen[spec.symbol] = (begins, spec)
    return [chosen[symbol] for symbol in sorted(chosen)]


async def history_feed(marketdata: MarketDataClient, symbols: Sequence[str], start_ns: int, end_ns: int) -> Feed:
    """Quotes from the market-data service's history, merged in time order."""
    if not symbols:
        raise invalid_argument("a backtest on market-data history names its symbols", "symbols")
    merged: list[tuple[int, int, FeedTick]] = []
    for rank, symbol in enumerate(sorted(symbols)):
        merged.extend(
            [
                (tick.quote_at_ns, rank, tick)
                async for tick in marketdata.quote_history(symbol, window_start_ns(start_ns), end_ns)
            ]
        )
    merged.sort(key=lambda item: (item[0], item[1], item[2].sequence))
    ticks = [tick for _, _, tick in merged]
    try:
        return Feed.from_ticks(ticks, sessions(), f"market-data history ({len(ticks):,} ticks)")
    except FeedError as exc:
        raise invalid_argument(str(exc), "data") from None


def day_bounds(first: date, last: date) -> tuple[int, int]:
    """[midnight New York of ``first``, midnight New York after ``last``) in epoch ns."""
    if last < first:
        raise invalid_argument("to must not be before from", "to")
    return new_york_midnight_ns(first), new_york_midnight_ns(last + timedelta(days=1)) - 1
