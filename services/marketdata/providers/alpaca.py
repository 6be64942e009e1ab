"""The Alpaca provider: live quotes over Alpaca's websocket streams, everything else
through its REST market-data API, all with alpaca-py's own clients.

One server-side key (never a user's) and, per stream endpoint, at most one connection:
the stock stream (``/v2/<feed>``) and the option stream (``/v1beta1/<feed>``) each
carry every symbol any subscriber wants, and alpaca-py reconnects them with backoff when
they drop (resubscribing everything). The streams run inside the service's event loop
with ``_run_forever()``, the way alpaca-py's maintainers advise for asyncio programs
(alpacahq/alpaca-py#476); their ``run()`` would start a loop of its own.

Prices arrive as JSON or msgpack numbers; each is turned into a Decimal through its
shortest round-trip text (``str(float)``), which is the decimal the feed sent.

Alpaca has no option quote history: ``history`` returns None for options and the
service answers from its own tick archive. Quotes Alpaca sent while a stream was
reconnecting are not recovered.

Bars are Alpaca's (``/v2/stocks/bars``), cut to the regular session and, where Alpaca's
buckets differ from MBT's (domain.bars: aligned to the session open), rolled up from finer
ones: Alpaca aligns hourly bars to the clock and daily bars to midnight, so 1Hour and 1Day
bars are built from Alpaca's 30Min bars, which start on the half hour like the open.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, CorporateActionsType, DataFeed, OptionsFeed
from alpaca.data.historical import OptionHistoricalDataClient, StockHistoricalDataClient
from alpaca.data.historical.corporate_actions import CorporateActionsClient
from alpaca.data.live import OptionDataStream, StockDataStream
from alpaca.data.models import Quote
from alpaca.data.requests import (
    CorporateActionsRequest,
    OptionChainRequest,
    OptionLatestQuoteRequest,
    StockBarsRequest,
    StockLatestQuoteRequest,
    StockQuotesRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from requests import RequestException

from services.common.background import spawn
from services.common.errors import DomainError
from services.common.instruments import SymbolSpec, parse_symbol
from services.common.wire.conv import datetime_from_ns
from services.marketdata.clockfeed import WALL
from services.marketdata.domain.bars import DAY_NS, MINUTE_NS, Bar, Basis, Timeframe, roll_up
from services.marketdata.domain.calendar import MarketCalendar, new_york_date
from services.marketdata.domain.reference import ChainContract, Dividend, OptionChain
from services.marketdata.domain.ticks import LiveSequencer, Source, Tick
from services.marketdata.hub import QuoteHub
from services.marketdata.recording import parse_time_ns

log = logging.getLogger(__name__)

# A delayed quote is looked for this far back (covers a long weekend).
DELAYED_LOOKBACK = timedelta(days=5)
# Dividends are paid after their ex-date; ask for actions processed up to this much later.
PAYMENT_LAG = timedelta(days=90)
# The Alpaca bars each timeframe is built from (see the module docstring).
FINER_BARS = {
    Timeframe.MINUTE: Timeframe.MINUTE,
    Timeframe.FIVE_MINUTES: Timeframe.FIVE_MINUTES,
    Timeframe.FIFTEEN_MINUTES: Timeframe.FIFTEEN_MINUTES,
    Timeframe.THIRTY_MINUTES: Timeframe.THIRTY_MINUTES,
    Timeframe.HOUR: Timeframe.THIRTY_MINUTES,
    Timeframe.DAY: Timeframe.THIRTY_MINUTES,
}


def _decimal(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _required_decimal(value: object, field: str) -> Decimal:
    """A number Alpaca always sends (a bar's prices and volume, a dividend's rate)."""
    if value is None:
        raise ValueError(f"Alpaca sent no {field}")
    return Decimal(str(value))


def _time_ns(value) -> int:
    """Stream frames carry a msgpack Timestamp, REST answers an RFC 3339 string."""
    return value.to_unix_nano() if hasattr(value, "to_unix_nano") else parse_time_ns(value)


def _tick(symbol: str, raw: dict, sequence: int | None = None) -> Tick:
    at = _time_ns(raw["t"])
    return Tick.quote(
        symbol,
        at,
        at if sequence is None else sequence,
        _decimal(raw.get("bp")),
        _decimal(raw.get("bs")),
        _decimal(raw.get("ap")),
        _decimal(raw.get("as")),
        Source.ALPACA,
    )


def _sequenced(symbol: str, quotes: list[dict]) -> list[Tick]:
    """REST quotes numbered like the stream numbers them: time in ns, bumped on ties."""
    ticks, last = [], 0
    for raw in quotes:
        tick = _tick(symbol, raw)
        if tick.sequence <= last:
            tick.sequence = last + 1
        last = tick.sequence
        ticks.append(tick)
    return ticks


def _bar(symbol: str, timeframe: Timeframe, raw: dict) -> Bar:
    start = _time_ns(raw["t"])
    step = timeframe.step_ns
    if step is None:
        raise ValueError(f"{timeframe.value} bars are rolled up from intraday ones, never fetched")
    return Bar(
        symbol,
        timeframe,
        start,
        start + step,
        _required_decimal(raw["o"], "bar open"),
        _required_decimal(raw["h"], "bar high"),
        _required_decimal(raw["l"], "bar low"),
        _required_decimal(raw["c"], "bar close"),
        _required_decimal(raw.get("v", 0), "bar volume"),
        int(raw.get("n", 0)),
        _decimal(raw.get("vw")),
        Basis.TRADES,
    )


def _unavailable(exc: Exception) -> DomainError:
    status = getattr(exc, "status_code", None)
    detail = f"HTTP {status}" if status else type(exc).__name__
    return DomainError("UNAVAILABLE", f"Alpaca market data did not answer ({detail}); retry shortly")


class AlpacaProvider:
    source = Source.ALPACA
    clock_mode = WALL

    def __init__(
        self,
        *,
        key: str,
        secret: str,
        feed: str,
        options_feed: str,
        data_url: str,
        stream_url: str,
        calendar: MarketCalendar,
    ) -> None:
        self.calendar = calendar
        self.feed = DataFeed(feed)
        self.options_feed = OptionsFeed(options_feed)
        base = data_url.rstrip("/")
        self._stocks = StockHistoricalDataClient(key, secret, raw_data=True, url_override=base)
        self._options = OptionHistoricalDataClient(key, secret, raw_data=True, url_override=base)
        self._actions = CorporateActionsClient(key, secret, raw_data=True, url_override=base)
        streams = stream_url.rstrip("/")
        self._stock_stream = StockDataStream(
            key, secret, raw_data=True, feed=self.feed, url_override=f"{streams}/v2/{self.feed.value}"
        )
        self._option_stream = OptionDataStream(
            key,
            secret,
            raw_data=True,
            feed=self.options_feed,
            url_override=f"{streams}/v1beta1/{self.options_feed.value}",
        )
        self._tasks: dict[int, asyncio.Task] = {}
        # The event loop holds tasks weakly: these references keep resubscriptions alive.
        self._resubscriptions: set[asyncio.Future[None]] = set()
        self._sequencer = LiveSequencer()
        self._latest: dict[str, Tick] = {}
        self._known: dict[str, bool] = {}
        self._hub: QuoteHub | None = None
        self.upstream_subscriptions: Counter[str] = Counter()

    def attach(self, hub: QuoteHub) -> None:
        self._hub = hub

    async def _rest(self, call, *args):
        try:
            return await asyncio.to_thread(call, *args)
        except (APIError, RequestException) as exc:
            raise _unavailable(exc) from None

    # -- live quotes -----------------------------------------------------------------

    async def _on_quote(self, message: Quote | dict) -> None:
        if isinstance(message, Quote):
            raise TypeError("the streams are opened with raw_data=True: a quote arrives as a dict")
        symbol = message.get("S")
        if not symbol or "t" not in message:
            return
        at = _time_ns(message["t"])
        tick = _tick(symbol, message, self._sequencer.next(symbol, at))
        self._latest[symbol] = tick
        if self._hub is not None:
            self._hub.publish([tick])

    def _stream_for(self, spec_symbols: list[str]) -> list[tuple[StockDataStream | OptionDataStream, list[str]]]:
        stocks = [s for s in spec_symbols if not parse_symbol(s).is_option]
        options = [s for s in spec_symbols if parse_symbol(s).is_option]
        return [
            (stream, group) for stream, group in ((self._stock_stream, stocks), (self._option_stream, options)) if group
        ]

    async def subscribe(self, symbols: list[str]) -> None:
        self.upstream_subscriptions.update(symbols)
        for stream, group in self._stream_for(symbols):
            task = self._tasks.get(id(stream))
            if task is None or task.done():
                # Not connected: subscribing only registers the handler; the connection
                # sends every registered symbol once it is authenticated.
                stream.subscribe_quotes(self._on_quote, *group)
                self._tasks[id(stream)] = asyncio.create_task(
                    stream._run_forever(), name=f"alpaca-{type(stream).__name__}"
                )
                continue
            connected = stream._running
            # alpaca-py waits for the subscribe frame to be sent on the stream's loop
            # (this one), so the call runs in a worker thread.
            await asyncio.to_thread(stream.subscribe_quotes, self._on_quote, *group)
            if not connected:
                spawn(self._resubscribe_when_connected(stream, group), self._resubscriptions)

    async def _resubscribe_when_connected(self, stream, symbols: list[str]) -> None:
        """A symbol registered while the stream was (re)connecting may have missed that
        connection's subscribe frame; send it again once connected (subscribing twice is
        harmless)."""
        task = self._tasks.get(id(stream))
        while task is not None and not task.done() and not stream._running:
            await asyncio.sleep(0.05)
        wanted = [s for s in symbols if s in stream._handlers["quotes"]]
        if wanted and stream._running:
            await asyncio.to_thread(stream.subscribe_quotes, self._on_quote, *wanted)

    async def unsubscribe(self, symbols: list[str]) -> None:
        for symbol in symbols:
            self._latest.pop(symbol, None)
        for stream, group in self._stream_for(symbols):
            await asyncio.to_thread(stream.unsubscribe_quotes, *group)
            if not stream._handlers["quotes"]:
                await self._stop_stream(stream)

    async def _stop_stream(self, stream) -> None:
        task = self._tasks.pop(id(stream), None)
        if task is None:
            return
        await stream.stop_ws()
        await stream.close()
        try:
            await asyncio.wait_for(task, 10)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()

    # -- answers ---------------------------------------------------------------------

    async def _latest_rest(self, spec: SymbolSpec) -> Tick | None:
        request: OptionLatestQuoteRequest | StockLatestQuoteRequest
        if spec.is_option:
            request = OptionLatestQuoteRequest(symbol_or_symbols=[spec.symbol], feed=self.options_feed)
            quotes = await self._rest(self._options.get_option_latest_quote, request)
        else:
            request = StockLatestQuoteRequest(symbol_or_symbols=[spec.symbol], feed=self.feed)
            quotes = await self._rest(self._stocks.get_stock_latest_quote, request)
        raw = (quotes or {}).get(spec.symbol)
        return None if not raw or "t" not in raw else _tick(spec.symbol, raw)

    async def latest(self, spec: SymbolSpec) -> Tick | None:
        return self._latest.get(spec.symbol) or await self._latest_rest(spec)

    async def latest_before(self, spec: SymbolSpec, at_ns: int) -> Tick | None:
        if spec.is_option:
            tick = await self.latest(spec)
            return tick if tick is not None and tick.quote_at_ns <= at_ns else None
        at = datetime_from_ns(at_ns)
        request = StockQuotesRequest(
            symbol_or_symbols=spec.symbol, start=at - DELAYED_LOOKBACK, end=at, limit=1, sort=Sort.DESC, feed=self.feed
        )
        quotes = (await self._rest(self._stocks.get_stock_quotes, request) or {}).get(spec.symbol) or []
        return _tick(spec.symbol, quotes[0]) if quotes else None

    async def history(
        self, spec: SymbolSpec, from_ns: int, to_ns: int, after_sequence: int, limit: int
    ) -> list[Tick] | None:
        if spec.is_option:
            return None
        start = max(from_ns, after_sequence)
        request = StockQuotesRequest(
            symbol_or_symbols=spec.symbol,
            start=datetime_from_ns(start),
            end=datetime_from_ns(to_ns),
            limit=limit + 100,
            feed=self.feed,
        )
        quotes = (await self._rest(self._stocks.get_stock_quotes, request) or {}).get(spec.symbol) or []
        return [t for t in _sequenced(spec.symbol, quotes) if t.sequence > after_sequence][:limit]

    async def bars(
        self, spec: SymbolSpec, timeframe: Timeframe, from_ns: int, to_ns: int, closed_by_ns: int, limit: int
    ) -> list[Bar]:
        finer = FINER_BARS[timeframe]
        step = finer.step_ns
        if step is None:
            raise ValueError(f"{finer.value} bars are not intraday: nothing rolls up from them")
        # Rows for `limit` bars, plus a day of extended-hours ones that may come first.
        batch = (limit + 1) * (timeframe.longest_ns // step) + DAY_NS // step
        # Finer bars starting before this are all a closed bar starting by `to` can hold.
        fetch_end = min(closed_by_ns, to_ns + timeframe.longest_ns) - 1
        found: list[Bar] = []
        cursor = from_ns
        while len(found) < limit and cursor <= min(to_ns, fetch_end):
            request = StockBarsRequest(
                symbol_or_symbols=spec.symbol,
                timeframe=TimeFrame(step // MINUTE_NS, TimeFrameUnit.Minute),
                start=datetime_from_ns(cursor),
                end=datetime_from_ns(fetch_end),
                limit=batch,
                adjustment=Adjustment.RAW,
                feed=self.feed,
            )
            rows = (await self._rest(self._stocks.get_stock_bars, request) or {}).get(spec.symbol) or []
            fine = [_bar(spec.symbol, finer, raw) for raw in rows]
            sessions = self.calendar.sessions_between(new_york_date(cursor), new_york_date(fetch_end))
            rolled = roll_up(fine, timeframe, sessions)
            exhausted = len(rows) < batch
            # No finer bar left unfetched starts before the frontier: a bar ending after it may be incomplete.
            frontier = fetch_end + 1 if exhausted else fine[-1].start_ns + step
            complete = [bar for bar in rolled if bar.end_ns <= frontier]
            found += [bar for bar in complete if cursor <= bar.start_ns <= to_ns and bar.end_ns <= closed_by_ns]
            if exhausted:
                break
            cursor = rolled[len(complete)].start_ns if len(complete) < len(rolled) else frontier
        return found[:limit]

    async def describe(self, spec: SymbolSpec) -> tuple[bool, bool]:
        if spec.symbol not in self._known and spec.symbol not in self._latest:
            if await self._latest_rest(spec) is None:
                return False, False
            self._known[spec.symbol] = True
        return True, True

    async def option_chain(self, underlying: str, expiration: date | None, at_ns: int) -> OptionChain | None:
        request = OptionChainRequest(underlying_symbol=underlying, feed=self.options_feed, expiration_date=expiration)
        snapshots = await self._rest(self._options.get_option_chain, request) or {}
        contracts = []
        for symbol, snapshot in snapshots.items():
            spec = parse_symbol(symbol)
            raw = (snapshot or {}).get("latestQuote")
            contracts.append(ChainContract(spec, _tick(spec.symbol, raw) if raw and "t" in raw else None))
        if not contracts:
            return None
        contracts.sort(key=lambda c: (c.spec.expiration, c.spec.strike, c.spec.option_type))
        times = [c.tick.quote_at_ns for c in contracts if c.tick is not None]
        underlying_tick = await self.latest(parse_symbol(underlying))
        return OptionChain(underlying, underlying_tick, contracts, max(times) if times else 0, Source.ALPACA)

    async def fetch_dividends(self, symbols: list[str], from_date: date, to_date: date) -> list[Dividend]:
        request = CorporateActionsRequest(
            symbols=symbols, types=[CorporateActionsType.CASH_DIVIDEND], start=from_date, end=to_date + PAYMENT_LAG
        )
        actions = await self._rest(self._actions.get_corporate_actions, request) or {}
        dividends = []
        for raw in actions.get("cash_dividends", []):
            ex_date = date.fromisoformat(raw["ex_date"])
            if from_date <= ex_date <= to_date:
                dividends.append(
                    Dividend(
                        raw["symbol"],
                        ex_date,
                        _required_decimal(raw["rate"], "dividend rate"),
                        _date(raw.get("record_date")),
                        _date(raw.get("payable_date")),
                    )
                )
        return dividends

    async def step(self, to_ns: int) -> int:
        raise DomainError(
            "FAILED_PRECONDITION",
            "the market clock is the wall clock (alpaca provider); only a stepped replay can be stepped",
        )

    def background(self):
        return []

    async def close(self) -> None:
        for stream in (self._stock_stream, self._option_stream):
            await self._stop_stream(stream)


def _date(raw: str | None) -> date | None:
    return date.fromisoformat(raw) if raw else None
