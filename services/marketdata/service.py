"""MarketDataService servicer: thin — parse the request, call the use case, map the answer."""

from __future__ import annotations

from mbt.marketdata.v1 import marketdata_pb2 as pb
from mbt.marketdata.v1 import marketdata_pb2_grpc
from services.common.instruments import parse_symbol, parse_symbols
from services.common.rpc import context
from services.common.wire.conv import from_date, timestamp_from_ns, timestamp_ns
from services.marketdata import wire
from services.marketdata.domain.gating import Entitlement, entitlement
from services.marketdata.hub import Gap
from services.marketdata.usecases import MarketData

MAX_STREAM_SYMBOLS = 1000


def _caller() -> Entitlement:
    caller = context.identity()
    return entitlement(caller.kind, caller.tier)


def _time_ns(message, field: str) -> int | None:
    return timestamp_ns(getattr(message, field)) if message.HasField(field) else None


def _duration_ns(message, field: str) -> int | None:
    if not message.HasField(field):
        return None
    value = getattr(message, field)
    return value.seconds * 1_000_000_000 + value.nanos


class MarketDataServicer(marketdata_pb2_grpc.MarketDataServiceServicer):
    def __init__(self, market: MarketData, *, stream_batch: int) -> None:
        self.market = market
        self.stream_batch = stream_batch
        self.messages = wire.StreamMessages()

    async def GetLatestQuotes(self, request, context_):
        served = await self.market.latest_quotes(parse_symbols(request.symbols), _caller())
        return pb.GetLatestQuotesResponse(quotes=[wire.quote(s.tick, s.age_ns, s.delayed) for s in served])

    async def GetLatestQuote(self, request, context_):
        [served] = await self.market.latest_quotes([parse_symbol(request.symbol)], _caller())
        return pb.GetLatestQuoteResponse(quote=wire.quote(served.tick, served.age_ns, served.delayed))

    async def ListQuoteHistory(self, request, context_):
        served, token = await self.market.history(
            parse_symbol(request.symbol),
            _time_ns(request, "from_time"),
            _time_ns(request, "to_time"),
            request.page_size,
            request.page_token,
            _caller(),
        )
        return pb.ListQuoteHistoryResponse(
            quotes=[wire.quote(s.tick, s.age_ns, s.delayed) for s in served], next_page_token=token
        )

    async def ListBars(self, request, context_):
        bars, token = await self.market.bars(
            parse_symbol(request.symbol),
            request.timeframe,
            _time_ns(request, "from_time"),
            _time_ns(request, "to_time"),
            request.page_size,
            request.page_token,
            _caller(),
        )
        source = self.market.provider.source
        return pb.ListBarsResponse(bars=[wire.bar(b, source) for b in bars], next_page_token=token)

    async def GetSymbol(self, request, context_):
        spec, tradable, last_trade = await self.market.describe(parse_symbol(request.symbol))
        return pb.GetSymbolResponse(symbol=wire.symbol_info(spec, tradable, last_trade))

    async def GetOptionChain(self, request, context_):
        expiration = (
            from_date(request.expiration_date, "expiration_date") if request.HasField("expiration_date") else None
        )
        caller = _caller()
        chain, now = await self.market.option_chain(parse_symbol(request.underlying, "underlying"), expiration, caller)
        return wire.option_chain(chain, now, self.market.risk_free_rate, caller)

    async def GetClock(self, request, context_):
        view = self.market.market_clock()
        clock = pb.MarketClock(
            now=timestamp_from_ns(view.now_ns), is_open=view.is_open, state=wire.clock_state(view.state)
        )
        if view.next_open_ns is not None:
            clock.next_open_at.CopyFrom(timestamp_from_ns(view.next_open_ns))
        if view.next_close_ns is not None:
            clock.next_close_at.CopyFrom(timestamp_from_ns(view.next_close_ns))
        if view.session is not None:
            clock.session.CopyFrom(wire.trading_day(view.session))
        return pb.GetClockResponse(clock=clock)

    async def ListCalendar(self, request, context_):
        days = self.market.trading_days(from_date(request.from_date, "from"), from_date(request.to_date, "to"))
        return pb.ListCalendarResponse(days=[wire.trading_day(day) for day in days])

    async def ListDividends(self, request, context_):
        symbols = [spec.symbol for spec in parse_symbols(request.symbols)]
        dividends = await self.market.dividends(
            symbols, from_date(request.from_date, "from"), from_date(request.to_date, "to")
        )
        return pb.ListDividendsResponse(dividends=[wire.dividend(d) for d in dividends])

    async def StreamQuotes(self, request, context_):
        specs = parse_symbols(request.symbols, limit=MAX_STREAM_SYMBOLS)
        async with self.market.quote_feed(specs) as subscription:
            # Initial metadata goes out once the subscription is live: a client that
            # awaits it before stepping the clock misses no tick.
            await context_.send_initial_metadata(())
            symbols = subscription.symbols
            async for batch in self.market.batches(subscription, specs, request.include_latest, self.stream_batch):
                ticks = []
                for item in batch:
                    if type(item) is Gap:
                        if ticks:
                            yield self.messages.response(symbols, ticks, self.market.now_ns())
                            ticks = []
                        yield wire.gap_response(item)
                    else:
                        ticks.append(item)
                if ticks:
                    yield self.messages.response(symbols, ticks, self.market.now_ns())

    async def StreamBars(self, request, context_):
        specs = parse_symbols(request.symbols, limit=MAX_STREAM_SYMBOLS)
        async with self.market.bar_closes(specs, request.timeframe) as subscription:
            # As for quotes: once the subscription is live, so a client can await it before stepping.
            await context_.send_initial_metadata(())
            source = self.market.provider.source
            while True:
                yield wire.bar_close(await subscription.next(), source)

    async def WatchClock(self, request, context_):
        async for state in self.market.publisher.watch():
            yield pb.WatchClockResponse(state=wire.clock_state(state))

    async def StepClock(self, request, context_):
        state, delivered = await self.market.step(_time_ns(request, "to_time"), _duration_ns(request, "by"))
        return pb.StepClockResponse(state=wire.clock_state(state), delivered_ticks=delivered)

    async def ListArchivedTicks(self, request, context_):
        symbol = parse_symbol(request.symbol).symbol
        ticks, token = await self.market.archived_ticks(
            symbol,
            _time_ns(request, "from_time"),
            _time_ns(request, "to_time"),
            request.after_sequence,
            request.page_size,
            request.page_token,
        )
        now = self.market.now_ns()
        return pb.ListArchivedTicksResponse(
            quotes=[wire.quote(t, now - t.quote_at_ns) for t in ticks], next_page_token=token
        )
