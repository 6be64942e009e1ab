"""The market-data service's use cases, between the thin servicer and the parts that do
the work (provider, hub, archive, calendar, clock). Requests arrive validated into
domain values; answers leave as domain values; the servicer maps both to the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from services.common.clock import Clock
from services.common.errors import DomainError, invalid_argument, not_found
from services.common.instruments import SymbolSpec
from services.common.persistence import pagination
from services.common.wire.conv import datetime_from_ns, datetime_to_ns
from services.marketdata.archive import TickArchiver
from services.marketdata.barfeed import BarFeed, BarSubscription
from services.marketdata.clockfeed import ClockPublisher, ClockState
from services.marketdata.domain.bars import Bar, Timeframe, parse_timeframe
from services.marketdata.domain.calendar import MarketCalendar, TradingSession, new_york_date
from services.marketdata.domain.gating import DAY_NS, Entitlement, withhold_fresh_quotes
from services.marketdata.domain.option_model import quote_greeks
from services.marketdata.domain.options import last_trade_ns
from services.marketdata.domain.reference import Dividend, OptionChain
from services.marketdata.domain.ticks import Source, Tick
from services.marketdata.domain.windows import date_window, quote_window
from services.marketdata.hub import Gap, QuoteHub, Subscription
from services.marketdata.providers.base import Provider
from services.marketdata.store import MarketDataStore

ARCHIVE_MAX_PAGE = 5000
MAX_CALENDAR_DAYS = 5 * 366
MAX_DIVIDEND_DAYS = 50 * 366
# How far past today dividends (announced ex-dates) may be asked for.
DIVIDEND_HORIZON_DAYS = 366
# How far back ListBars looks when no `from` is given: a day, a year of daily bars.
DEFAULT_DAILY_BARS_SPAN_NS = 366 * DAY_NS


@dataclass(frozen=True)
class ServedQuote:
    tick: Tick
    age_ns: int
    delayed: bool


@dataclass(frozen=True)
class MarketClockView:
    now_ns: int
    is_open: bool
    next_open_ns: int | None
    next_close_ns: int | None
    session: TradingSession | None
    state: ClockState


def _after_number(token: str, digest: str) -> int:
    """The number a page token continues after (a sequence, a bar's start); 0 for the first page."""
    cursor = pagination.decode_page_token(token, digest)
    if cursor is None:
        return 0
    try:
        return int(cursor[1])
    except ValueError:
        raise invalid_argument("page_token is not valid for this list", "page_token") from None


def _bar_timeframe(specs: list[SymbolSpec], timeframe: str, field: str) -> Timeframe:
    """The timeframe of a request for bars, which equities have and option symbols not."""
    for spec in specs:
        if spec.is_option:
            raise invalid_argument(f"bars are served for equities; {spec.symbol} is an option", field)
    return parse_timeframe(timeframe)


def _next_token(ticks: list[Tick], limit: int, digest: str) -> str:
    if len(ticks) < limit:
        return ""
    last = ticks[-1]
    return pagination.encode_page_token(datetime_from_ns(last.quote_at_ns), str(last.sequence), digest)


class MarketData:
    def __init__(
        self,
        *,
        provider: Provider,
        hub: QuoteHub,
        bar_feed: BarFeed,
        archiver: TickArchiver,
        store: MarketDataStore,
        calendar: MarketCalendar,
        publisher: ClockPublisher,
        clock: Clock,
        risk_free_rate: Decimal,
    ) -> None:
        self.provider = provider
        self.hub = hub
        self.bar_feed = bar_feed
        self.archiver = archiver
        self.store = store
        self.calendar = calendar
        self.publisher = publisher
        self.clock = clock
        self.risk_free_rate = risk_free_rate

    def now_ns(self) -> int:
        return datetime_to_ns(self.clock.now())

    # -- quotes ----------------------------------------------------------------------

    async def _known(self, spec: SymbolSpec) -> bool:
        known, _ = await self.provider.describe(spec)
        return known

    async def latest_quotes(self, specs: list[SymbolSpec], entitlement: Entitlement) -> list[ServedQuote]:
        now = self.now_ns()
        served = []
        for spec in specs:
            if entitlement.delayed:
                tick = await self.provider.latest_before(spec, now - entitlement.delay_ns)
            else:
                tick = await self.provider.latest(spec)
            if tick is None:
                if not await self._known(spec):
                    raise not_found("symbol", spec.symbol)
                wait = " at least 15 minutes old" if entitlement.delayed else ""
                raise DomainError("NOT_FOUND", f"no quote{wait} for {spec.symbol} yet", symbol=spec.symbol)
            served.append(ServedQuote(tick, now - tick.quote_at_ns, entitlement.labels_delayed(tick)))
        return served

    async def history(
        self,
        spec: SymbolSpec,
        from_ns: int | None,
        to_ns: int | None,
        page_size: int,
        page_token: str,
        entitlement: Entitlement,
    ) -> tuple[list[ServedQuote], str]:
        now = self.now_ns()
        start, end = quote_window(from_ns, to_ns, now - entitlement.delay_ns)
        if spec.is_option:
            entitlement.check_option_history(start, now)
        if not await self._known(spec):
            raise not_found("symbol", spec.symbol)
        limit = pagination.page_size(page_size)
        digest = pagination.filter_digest("history", spec.symbol, from_ns, to_ns)
        after = _after_number(page_token, digest)
        ticks = await self.provider.history(spec, start, end, after, limit)
        if ticks is None:  # the provider keeps no such history: what this service served is archived
            await self.archiver.flush()
            ticks = await self.store.archived_ticks(spec.symbol, start, end, after, limit)
        return (
            [ServedQuote(t, now - t.quote_at_ns, entitlement.labels_delayed(t)) for t in ticks],
            _next_token(ticks, limit, digest),
        )

    async def bars(
        self,
        spec: SymbolSpec,
        timeframe_name: str,
        from_ns: int | None,
        to_ns: int | None,
        page_size: int,
        page_token: str,
        entitlement: Entitlement,
    ) -> tuple[list[Bar], str]:
        """Closed bars starting in the window, a page of them, and the next page's token.
        A delayed tier sees only bars that closed before its delay."""
        timeframe = _bar_timeframe([spec], timeframe_name, "symbol")
        visible = self.now_ns() - entitlement.delay_ns
        span = DEFAULT_DAILY_BARS_SPAN_NS if timeframe is Timeframe.DAY else DAY_NS
        start, end = quote_window(from_ns, to_ns, visible, default_span_ns=span)
        if not await self._known(spec):
            raise not_found("symbol", spec.symbol)
        limit = pagination.page_size(page_size)
        digest = pagination.filter_digest("bars", spec.symbol, timeframe.value, from_ns, to_ns)
        after = _after_number(page_token, digest)
        bars = await self.provider.bars(spec, timeframe, max(start, after + 1), end, visible, limit)
        if len(bars) < limit:
            return bars, ""
        last = bars[-1].start_ns
        return bars, pagination.encode_page_token(datetime_from_ns(last), str(last), digest)

    async def describe(self, spec: SymbolSpec) -> tuple[SymbolSpec, bool, int | None]:
        """The symbol, whether it is tradable, and for an option the close that ends its
        trading. An option past that close is ``CONTRACT_EXPIRED``, with that close as the
        refusal's ``last_trade_time`` (RFC 3339, empty when unknown; what expiring an order
        accepted before needs); one that is not listed (neither recorded nor on the model's
        grid) ``NOT_FOUND``."""
        last_trade = None
        if spec.is_option:
            last_trade = last_trade_ns(spec, self.calendar)
            if last_trade is None or self.now_ns() >= last_trade:
                closed = (
                    ""
                    if last_trade is None
                    else f" (its last trading day closed at {datetime_from_ns(last_trade):%Y-%m-%dT%H:%M:%SZ})"
                )
                raise DomainError(
                    "CONTRACT_EXPIRED",
                    f"option contract {spec.symbol} has expired{closed}; expired "
                    "contracts are not listed and cannot be traded",
                    symbol=spec.symbol,
                    last_trade_time="" if last_trade is None else datetime_from_ns(last_trade).isoformat(),
                )
        known, tradable = await self.provider.describe(spec)
        if not known:
            if spec.is_option:
                raise DomainError(
                    "NOT_FOUND",
                    f"option contract {spec.symbol} is not listed; GetOptionChain of "
                    f"{spec.underlying} lists the contracts there are",
                    symbol=spec.symbol,
                )
            raise not_found("symbol", spec.symbol)
        return spec, tradable, last_trade

    async def option_chain(
        self, underlying: SymbolSpec, expiration: date | None, entitlement: Entitlement
    ) -> tuple[OptionChain, int]:
        """The unexpired contracts of the chain with quotes (as of the caller's delay) and greeks."""
        if underlying.is_option:
            raise invalid_argument("underlying must be a ticker or an index, not an option symbol", "underlying")
        now = self.now_ns()
        visible = now - entitlement.delay_ns
        chain = await self.provider.option_chain(underlying.symbol, expiration, visible)
        if chain is None:
            if not await self._known(underlying):
                raise not_found("symbol", underlying.symbol)
            raise DomainError("NOT_FOUND", f"no option chain for {underlying.symbol}", symbol=underlying.symbol)
        if entitlement.delayed and chain.source is not Source.SNAPSHOT:
            chain = withhold_fresh_quotes(chain, visible)
        contracts = []
        for contract in chain.contracts:
            last_trade = last_trade_ns(contract.spec, self.calendar)
            if last_trade is None or now >= last_trade:
                continue
            greeks = quote_greeks(
                contract.spec, contract.tick, chain.underlying_tick, last_trade, self.risk_free_rate, Decimal(0)
            )
            contracts.append(dataclasses.replace(contract, greeks=greeks))
        return chain.with_contracts(contracts), now

    # -- streaming -------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def quote_feed(self, specs: list[SymbolSpec]) -> AsyncIterator[Subscription]:
        """A live subscription to the symbols for as long as the block runs."""
        subscription = await self.hub.subscribe([spec.symbol for spec in specs])
        try:
            yield subscription
        finally:
            await asyncio.shield(self.hub.unsubscribe(subscription))

    async def batches(
        self, subscription: Subscription, specs: list[SymbolSpec], include_latest: bool, max_batch: int
    ) -> AsyncIterator[Sequence[Tick | Gap]]:
        """Batches of ticks (and gaps) in feed order, the latest quotes first when asked."""
        if include_latest:
            queued = subscription.first_sequences()
            latest = [
                tick
                for spec in specs
                if (tick := await self.provider.latest(spec)) is not None
                and tick.sequence < queued.get(tick.symbol, tick.sequence + 1)
            ]
            if latest:
                self.archiver.append(latest)
                yield latest
        while True:
            yield await subscription.next_batch(max_batch)

    @contextlib.asynccontextmanager
    async def bar_closes(self, specs: list[SymbolSpec], timeframe_name: str) -> AsyncIterator[BarSubscription]:
        """A subscription to the bar closes of the symbols for as long as the block runs."""
        timeframe = _bar_timeframe(specs, timeframe_name, "symbols")
        subscription = self.bar_feed.subscribe(specs, timeframe)
        try:
            yield subscription
        finally:
            self.bar_feed.unsubscribe(subscription)

    async def archived_ticks(
        self, symbol: str, from_ns: int | None, to_ns: int | None, after_sequence: int, page_size: int, page_token: str
    ) -> tuple[list[Tick], str]:
        if after_sequence < 0:
            raise invalid_argument("after_sequence must not be negative", "after_sequence")
        if from_ns is not None and to_ns is not None and from_ns > to_ns:
            raise invalid_argument("from_time must not be after to_time", "from_time")
        if page_size < 0:
            raise invalid_argument("page_size must not be negative", "page_size")
        limit = min(page_size or pagination.DEFAULT_PAGE_SIZE, ARCHIVE_MAX_PAGE)
        digest = pagination.filter_digest("archive", symbol, from_ns, to_ns, after_sequence)
        after = max(after_sequence, _after_number(page_token, digest))
        await self.archiver.flush()
        ticks = await self.store.archived_ticks(symbol, from_ns, to_ns, after, limit)
        return ticks, _next_token(ticks, limit, digest)

    # -- clock and calendar ----------------------------------------------------------

    def market_clock(self) -> MarketClockView:
        state = self.publisher.state()
        now = datetime_to_ns(self.clock.now())
        return MarketClockView(
            now,
            self.calendar.is_open(now),
            self.calendar.next_open_ns(now),
            self.calendar.next_close_ns(now),
            self.calendar.session_on(new_york_date(now)),
            state,
        )

    async def step(self, to_ns: int | None, by_ns: int | None) -> tuple[ClockState, int]:
        if (to_ns is None) == (by_ns is None):
            raise invalid_argument("give exactly one of to_time and by", "to_time")
        if by_ns is not None and by_ns <= 0:
            raise invalid_argument("by must be a positive duration", "by")
        if to_ns is not None:
            target = to_ns
        elif by_ns is not None:
            target = self.now_ns() + by_ns
        else:
            raise invalid_argument("give exactly one of to_time and by", "to_time")
        last_close = self.calendar.session(len(self.calendar) - 1).close_ns
        if target > last_close:
            raise invalid_argument(
                f"the market calendar ends {self.calendar.last_date.isoformat()}; step to an earlier time",
                "to_time" if to_ns is not None else "by",
            )
        delivered = await self.provider.step(target)
        await self.bar_feed.advance(self.now_ns())
        return self.publisher.state(), delivered

    def trading_days(self, from_date: date | None, to_date: date | None) -> list[TradingSession]:
        today = new_york_date(self.now_ns())
        start, end = date_window(
            from_date,
            to_date,
            default_from=today,
            default_to=today + timedelta(days=30),
            max_days=MAX_CALENDAR_DAYS,
            latest=self.calendar.last_date,
        )
        if start < self.calendar.first_date:
            raise invalid_argument(f"from is before the calendar's first day {self.calendar.first_date}", "from")
        return self.calendar.sessions_between(start, end)

    # -- corporate actions -----------------------------------------------------------

    async def dividends(self, symbols: list[str], from_date: date | None, to_date: date | None) -> list[Dividend]:
        today = new_york_date(self.now_ns())
        start, end = date_window(
            from_date,
            to_date,
            default_from=today - timedelta(days=365),
            default_to=today,
            max_days=MAX_DIVIDEND_DAYS,
            latest=today + timedelta(days=DIVIDEND_HORIZON_DAYS),
        )
        fetched = await self.provider.fetch_dividends(symbols, start, end)
        if fetched:
            await self.store.save_dividends(fetched, self.provider.source.value, self.clock.now())
        return await self.store.dividends(symbols, start, end)
