"""The one service accounts calls: market data, for marks to value positions at, as the caller
may see them:
a user's reads are priced with the quotes that user's tier is entitled to (a Free user's
15 minutes late: marking at a real-time quote would show the real-time price through the
position), so accounts calls market data on the user's behalf (``auth.on_behalf_of``).
Everything the platform decides — a hold, a margin check — calls as the accounts service
itself and prices at real time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from mbt.marketdata.v1 import marketdata_pb2
from services.accounts.domain.rules import Mark
from services.common.errors import DomainError
from services.common.rpc import context
from services.common.rpc.remote import call
from services.common.security.auth import ServiceCredentials, on_behalf_of
from services.common.wire.conv import from_date, from_timestamp, parse_decimal, to_date, to_timestamp

HISTORY_LOOKBACK = timedelta(minutes=5)


def _mark(quote: marketdata_pb2.Quote) -> Mark:
    usable = quote.condition == marketdata_pb2.QUOTE_CONDITION_USABLE
    return Mark(
        parse_decimal(quote.bid_price, "bid_price") if usable else None,
        parse_decimal(quote.ask_price, "ask_price") if usable else None,
        from_timestamp(quote.quote_at),
    )


@dataclass(frozen=True)
class Session:
    day: date
    open_at: datetime
    close_at: datetime


@dataclass(frozen=True)
class DividendPayment:
    symbol: str
    ex_date: date
    pay_date: date | None
    cash_amount: Decimal


class MarketDataClient:
    def __init__(self, stub, timeout: float, credentials: ServiceCredentials) -> None:
        self.stub = stub
        self.timeout = timeout
        self.credentials = credentials

    def _as_caller(self) -> list[tuple[str, str]]:
        return on_behalf_of(context.identity(), self.credentials)

    async def latest(self, symbols: set[str]) -> dict[str, Mark]:
        if not symbols:
            return {}
        try:
            reply = await call(
                self.stub.GetLatestQuotes,
                marketdata_pb2.GetLatestQuotesRequest(symbols=sorted(symbols)),
                timeout=self.timeout,
                what="market data",
                metadata=self._as_caller(),
            )
        except DomainError as exc:
            if exc.reason == "NOT_FOUND":
                return {}
            raise
        return {quote.symbol: _mark(quote) for quote in reply.quotes}

    async def at(self, symbols: set[str], moment: datetime) -> dict[str, Mark]:
        """The quote in force at ``moment`` (the last one at or before it, within a few minutes)."""
        marks = {}
        for symbol in sorted(symbols):
            last, token = None, ""
            while True:
                reply = await call(
                    self.stub.ListQuoteHistory,
                    marketdata_pb2.ListQuoteHistoryRequest(
                        symbol=symbol,
                        from_time=to_timestamp(moment - HISTORY_LOOKBACK),
                        to_time=to_timestamp(moment),
                        page_size=500,
                        page_token=token,
                    ),
                    timeout=self.timeout,
                    what="market data",
                    metadata=self._as_caller(),
                )
                for quote in reply.quotes:
                    if quote.condition == marketdata_pb2.QUOTE_CONDITION_USABLE and (
                        last is None
                        or (quote.quote_at.ToNanoseconds(), quote.sequence)
                        > (last.quote_at.ToNanoseconds(), last.sequence)
                    ):
                        last = quote
                token = reply.next_page_token
                if not token:
                    break
            if last is not None:
                marks[symbol] = _mark(last)
        return marks

    async def sessions(self, first: date, last: date) -> list[Session]:
        """The XNYS sessions from ``first`` to ``last``, in order."""
        reply = await call(
            self.stub.ListCalendar,
            marketdata_pb2.ListCalendarRequest(from_date=to_date(first), to_date=to_date(last)),
            timeout=self.timeout,
            what="market data",
            metadata=self._as_caller(),
        )
        return [
            Session(
                from_date(day.date, "date", required=True),
                from_timestamp(day.open_at, "open_at", required=True),
                from_timestamp(day.close_at, "close_at", required=True),
            )
            for day in reply.days
        ]

    async def dividends(self, symbols: set[str], first: date, last: date) -> list[DividendPayment]:
        """Cash dividends of ``symbols`` with an ex-date from ``first`` to ``last``."""
        if not symbols:
            return []
        reply = await call(
            self.stub.ListDividends,
            marketdata_pb2.ListDividendsRequest(
                symbols=sorted(symbols), from_date=to_date(first), to_date=to_date(last)
            ),
            timeout=self.timeout,
            what="market data",
            metadata=self._as_caller(),
        )
        return [
            DividendPayment(
                d.symbol,
                from_date(d.ex_date, "ex_date", required=True),
                from_date(d.pay_date, "pay_date"),
                parse_decimal(d.cash_amount, "cash_amount", required=True),
            )
            for d in reply.dividends
        ]
