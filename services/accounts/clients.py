"""The one service accounts calls: market data, for marks to value positions at, as the caller
may see them:
a user's reads are priced with the quotes that user's tier is entitled to (a Free user's
15 minutes late: marking at a real-time quote would show the real-time price through the
position), so accounts calls market data on the user's behalf (``auth.on_behalf_of``).
Everything the platform decides — a hold, a margin check — calls as the accounts service
itself and prices at real time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from mbt.marketdata.v1 import marketdata_pb2
from services.accounts.domain.rules import Mark
from services.common.errors import DomainError
from services.common.rpc import context
from services.common.rpc.remote import call
from services.common.security.auth import ServiceCredentials, on_behalf_of
from services.common.wire.conv import from_date, from_timestamp, parse_decimal, to_date, to_timestamp

HISTORY_LOOKBACK = timedelta(minutes=5)
# How far back the session an expiry settles on is looked for (a holiday on the expiry day
# moves it to the session before; a week covers every US market closure).
SETTLEMENT_LOOKBACK = timedelta(days=7)


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
        """The latest quote the caller may see of each symbol that has one. Market data
        answers a batch with one unquoted symbol ``not_found`` as a whole; the symbols are
        then asked one by one, so one unquoted symbol never unmarks the others."""
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
            if exc.reason != "NOT_FOUND":
                raise
            if len(symbols) == 1:
                return {}
            marks: dict[str, Mark] = {}
            for symbol in sorted(symbols):
                marks.update(await self.latest({symbol}))
            return marks
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

    async def settlement_price(self, underlying: str, expiration: date, *, am: bool) -> Decimal:
        """The price an option on ``underlying`` expiring on ``expiration`` settles at: the
        official close (the regular session's daily bar's close, an early close's on an
        early-close day; never an after-hours quote) of the last session on or before the
        expiration date, or for AM-settled index options the opening value of the
        expiration date's session. Asked as the accounts service (real time);
        FAILED_PRECONDITION while that session's bar has not closed."""
        start = datetime.combine(expiration, time(), UTC)
        reply = await call(
            self.stub.ListBars,
            marketdata_pb2.ListBarsRequest(
                symbol=underlying,
                timeframe="1Day",
                from_time=to_timestamp(start - (timedelta(0) if am else SETTLEMENT_LOOKBACK)),
                to_time=to_timestamp(start + timedelta(days=1)),
                page_size=10,
            ),
            timeout=self.timeout,
            what="market data",
        )
        bars = [b for b in reply.bars if b.start_time.ToDatetime(tzinfo=UTC).date() <= expiration]
        if not bars:
            raise DomainError(
                "FAILED_PRECONDITION",
                f"no closed session of {underlying} on or before {expiration} to settle its options on",
                symbol=underlying,
            )
        bar = bars[0] if am else bars[-1]
        price = parse_decimal(bar.open if am else bar.close, "close", required=True)
        assert price is not None
        return price
