"""What the orders service needs from market data: validated symbols, the quote an order
is submitted against, and the trading session. Symbols and calendars are cached."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from mbt.marketdata.v1 import marketdata_pb2
from services.common.wire.conv import from_timestamp, parse_decimal, to_date
from services.common.errors import DomainError
from services.common.rpc.remote import call
from services.orders.domain import Session

CALENDAR_DAYS = 14


class MarketView:
    def __init__(self, stub, timeout: float) -> None:
        self.stub = stub
        self.timeout = timeout
        self._symbols: dict[str, marketdata_pb2.SymbolInfo] = {}
        self._sessions: list[Session] = []

    async def symbol(self, symbol: str) -> marketdata_pb2.SymbolInfo:
        """Validated by market data: invalid_argument or not_found pass through unchanged."""
        if symbol not in self._symbols:
            reply = await self._call(self.stub.GetSymbol, marketdata_pb2.GetSymbolRequest(symbol=symbol))
            self._symbols[symbol] = reply.symbol
        return self._symbols[symbol]

    async def quote(self, symbol: str) -> marketdata_pb2.Quote | None:
        try:
            reply = await self._call(self.stub.GetLatestQuote, marketdata_pb2.GetLatestQuoteRequest(symbol=symbol))
        except DomainError as exc:
            if exc.reason == "NOT_FOUND":
                return None
            raise
        return reply.quote

    async def session(self, now: datetime) -> Session:
        """The first regular session that closes after ``now``."""
        for _ in range(2):
            for session in self._sessions:
                if session.close_at > now:
                    return session
            await self._load_calendar(now)
        raise DomainError("UNAVAILABLE", "the market calendar has no session ahead")

    async def _load_calendar(self, now: datetime) -> None:
        start: date = now.date() - timedelta(days=1)
        reply = await self._call(self.stub.ListCalendar, marketdata_pb2.ListCalendarRequest(
            from_date=to_date(start), to_date=to_date(start + timedelta(days=CALENDAR_DAYS))))
        self._sessions = [Session(from_timestamp(day.open_at), from_timestamp(day.close_at)) for day in reply.days]

    async def _call(self, method, request):
        return await call(method, request, timeout=self.timeout, what="market data")


def usable_reference(quote: marketdata_pb2.Quote | None, buying: bool) -> Decimal | None:
    """The touch an order would trade against now (ask to buy, bid to sell), if usable."""
    if quote is None or quote.condition != marketdata_pb2.QUOTE_CONDITION_USABLE:
        return None
    return parse_decimal(quote.ask_price if buying else quote.bid_price, "quote")
