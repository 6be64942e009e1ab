"""Symbols, option chains, history, calendar and dividends from the replay provider, with
clear errors for bad input, and tier gating of what users see."""

from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from mbt.common.v1 import trading_pb2
from mbt.marketdata.v1 import marketdata_pb2 as pb
from services.common.wire.conv import timestamp_ns
from tests.support.identity import as_user
from tests.support.marketdata import MATCHER, START_NS

FREE, PRO, PRO_PLUS = as_user("fay", "free"), as_user("pat", "pro"), as_user("pia", "pro_plus")
NO_TIER = as_user("nat")
MINUTE = 60 * 10**9


def ts(ns: int) -> Timestamp:
    return Timestamp(seconds=ns // 10**9, nanos=ns % 10**9)


async def refused(call, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value.details()


async def test_symbols_are_described_validated_and_looked_up(marketdata):
    stub = marketdata.stub
    amzn = (await stub.GetSymbol(pb.GetSymbolRequest(symbol="amzn"), metadata=FREE)).symbol
    assert (amzn.symbol, amzn.asset_class, amzn.multiplier, amzn.tradable) == (
        "AMZN",
        trading_pb2.ASSET_CLASS_US_EQUITY,
        "1",
        True,
    )
    call = (await stub.GetSymbol(pb.GetSymbolRequest(symbol="SPY230915C00450000"), metadata=FREE)).symbol
    assert (call.asset_class, call.underlying, call.option_type, call.strike_price, call.multiplier, call.tradable) == (
        trading_pb2.ASSET_CLASS_US_OPTION,
        "SPY",
        pb.OPTION_TYPE_CALL,
        "450.00",
        "100",
        True,
    )
    assert (call.expiration_date.year, call.expiration_date.month, call.expiration_date.day) == (2023, 9, 15)
    aapl = (await stub.GetSymbol(pb.GetSymbolRequest(symbol="AAPL"), metadata=FREE)).symbol
    assert not aapl.tradable  # known from its dividends, no quotes in the recording
    assert "neither a ticker" in await refused(
        stub.GetSymbol(pb.GetSymbolRequest(symbol="AM ZN"), metadata=FREE), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "ZZZZ" in await refused(
        stub.GetSymbol(pb.GetSymbolRequest(symbol="ZZZZ"), metadata=FREE), grpc.StatusCode.NOT_FOUND
    )
    await refused(
        stub.GetSymbol(pb.GetSymbolRequest(symbol="SPY230915C09990000"), metadata=FREE), grpc.StatusCode.NOT_FOUND
    )
    await refused(
        stub.GetLatestQuotes(pb.GetLatestQuotesRequest(symbols=["AMZN", "NOPE"]), metadata=MATCHER),
        grpc.StatusCode.NOT_FOUND,
    )
    await refused(
        stub.GetLatestQuote(pb.GetLatestQuoteRequest(symbol="AAPL"), metadata=MATCHER), grpc.StatusCode.NOT_FOUND
    )


async def test_the_spy_chain_is_served_as_a_snapshot_with_its_time(marketdata):
    stub = marketdata.stub
    request = pb.GetOptionChainRequest(underlying="SPY", expiration_date={"year": 2023, "month": 9, "day": 15})
    chain = await stub.GetOptionChain(request, metadata=FREE)
    assert chain.source == pb.QUOTE_SOURCE_SNAPSHOT and chain.as_of.ToJsonString() == "2023-09-14T20:31:00Z"
    assert (chain.underlying_quote.bid_price, chain.underlying_quote.ask_price) == ("450.81", "450.83")
    assert chain.contracts and {c.expiration_date.day for c in chain.contracts} == {15}
    atm = next(c for c in chain.contracts if c.strike_price == "450.00" and c.option_type == pb.OPTION_TYPE_CALL)
    assert atm.symbol == "SPY230915C00450000" and atm.quote.source == pb.QUOTE_SOURCE_SNAPSHOT
    assert not atm.quote.delayed and atm.open_interest
    everything = await stub.GetOptionChain(pb.GetOptionChainRequest(underlying="SPY"), metadata=MATCHER)
    assert len(everything.contracts) == 7292
    assert "no option chain for MSFT" in await refused(
        stub.GetOptionChain(pb.GetOptionChainRequest(underlying="MSFT"), metadata=FREE), grpc.StatusCode.NOT_FOUND
    )
    await refused(
        stub.GetOptionChain(pb.GetOptionChainRequest(underlying="QQQQQ"), metadata=FREE), grpc.StatusCode.NOT_FOUND
    )
    await refused(
        stub.GetOptionChain(pb.GetOptionChainRequest(underlying="SPY230915C00450000"), metadata=FREE),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_free_users_see_quotes_fifteen_minutes_late_and_paying_users_in_real_time(marketdata):
    stub = marketdata.stub
    request = pb.GetLatestQuoteRequest(symbol="AMZN")
    internal = (await stub.GetLatestQuote(request, metadata=MATCHER)).quote
    for identity in (PRO, PRO_PLUS):
        assert (await stub.GetLatestQuote(request, metadata=identity)).quote == internal
    for identity in (FREE, NO_TIER):
        delayed = (await stub.GetLatestQuote(request, metadata=identity)).quote
        assert delayed.delayed and timestamp_ns(delayed.quote_at) <= START_NS - 15 * MINUTE
        assert delayed.age.ToNanoseconds() >= 15 * MINUTE
        assert delayed.sequence < internal.sequence
    history = await stub.ListQuoteHistory(pb.ListQuoteHistoryRequest(symbol="AMZN", page_size=500), metadata=FREE)
    assert history.quotes and all(q.delayed for q in history.quotes)
    assert timestamp_ns(history.quotes[-1].quote_at) <= START_NS - 15 * MINUTE
    realtime = await stub.ListQuoteHistory(
        pb.ListQuoteHistoryRequest(symbol="AMZN", from_time=ts(START_NS - 2 * MINUTE)), metadata=PRO
    )
    assert realtime.quotes and not realtime.quotes[0].delayed


async def test_option_history_beyond_30_days_needs_pro_plus(marketdata):
    stub = marketdata.stub
    request = pb.ListQuoteHistoryRequest(symbol="SPY230915C00450000", from_time=ts(START_NS - 40 * 24 * 60 * MINUTE))
    for identity in (FREE, PRO):
        assert "Pro+" in await refused(
            stub.ListQuoteHistory(request, metadata=identity), grpc.StatusCode.PERMISSION_DENIED
        )
    assert (await stub.ListQuoteHistory(request, metadata=PRO_PLUS)).quotes == []


async def test_quote_history_pages_and_refuses_bad_windows(marketdata):
    stub = marketdata.stub
    request = {"symbol": "GOOG", "from_time": ts(START_NS - 5 * MINUTE), "to_time": ts(START_NS)}
    first = await stub.ListQuoteHistory(pb.ListQuoteHistoryRequest(**request, page_size=40), metadata=PRO)
    second = await stub.ListQuoteHistory(
        pb.ListQuoteHistoryRequest(**request, page_size=40, page_token=first.next_page_token), metadata=PRO
    )
    whole = await stub.ListQuoteHistory(pb.ListQuoteHistoryRequest(**request, page_size=80), metadata=PRO)
    assert list(first.quotes) + list(second.quotes) == list(whole.quotes)
    assert [q.sequence for q in whole.quotes] == sorted(q.sequence for q in whole.quotes)
    bad = [
        {"symbol": "GOOG", "from_time": ts(START_NS), "to_time": ts(START_NS - MINUTE)},
        {"symbol": "GOOG", "from_time": ts(0)},
        {"symbol": "GOOG", "from_time": ts(START_NS - 400 * 24 * 60 * MINUTE)},
        {"symbol": "GOOG!"},
        {"symbol": "GOOG", "from_time": ts(START_NS), "page_token": "not-a-token"},
    ]
    for fields in bad:
        await refused(
            stub.ListQuoteHistory(pb.ListQuoteHistoryRequest(**fields), metadata=PRO), grpc.StatusCode.INVALID_ARGUMENT
        )
    await refused(
        stub.ListQuoteHistory(pb.ListQuoteHistoryRequest(symbol="ZZZZ"), metadata=PRO), grpc.StatusCode.NOT_FOUND
    )


async def test_the_calendar_lists_sessions_with_early_closes(marketdata):
    reply = await marketdata.stub.ListCalendar(
        pb.ListCalendarRequest(
            from_date={"year": 2012, "month": 7, "day": 2}, to_date={"year": 2012, "month": 7, "day": 6}
        ),
        metadata=FREE,
    )
    days = [(d.date.day, d.close_at.ToJsonString(), d.early_close) for d in reply.days]
    assert days == [
        (2, "2012-07-02T20:00:00Z", False),
        (3, "2012-07-03T17:00:00Z", True),
        (5, "2012-07-05T20:00:00Z", False),
        (6, "2012-07-06T20:00:00Z", False),
    ]
    await refused(
        marketdata.stub.ListCalendar(
            pb.ListCalendarRequest(
                from_date={"year": 2012, "month": 7, "day": 6}, to_date={"year": 2012, "month": 7, "day": 2}
            ),
            metadata=FREE,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_dividends_for_a_window(marketdata):
    stub = marketdata.stub
    reply = await stub.ListDividends(
        pb.ListDividendsRequest(
            symbols=["AAPL", "MSFT"],
            from_date={"year": 2011, "month": 6, "day": 1},
            to_date={"year": 2012, "month": 12, "day": 31},
        ),
        metadata=FREE,
    )
    paid = [(d.symbol, d.ex_date.month, d.cash_amount) for d in reply.dividends if d.ex_date.year == 2012]
    assert ("AAPL", 8, "2.65") in paid and ("MSFT", 2, "0.20") in paid
    assert all(d.symbol in ("AAPL", "MSFT") for d in reply.dividends)
    recent = await stub.ListDividends(pb.ListDividendsRequest(symbols=["MSFT"]), metadata=FREE)
    assert recent.dividends and all(
        datetime(2011, 6, 21) <= datetime(d.ex_date.year, d.ex_date.month, d.ex_date.day) <= datetime(2012, 6, 21)
        for d in recent.dividends
    )
    for fields in (
        {
            "symbols": ["MSFT"],
            "from_date": {"year": 2012, "month": 2, "day": 1},
            "to_date": {"year": 2012, "month": 1, "day": 1},
        },
        {"symbols": []},
        {"symbols": ["MSFT"], "from_date": {"year": 1900, "month": 1, "day": 1}},
        {"symbols": ["MSFT"], "to_date": {"year": 2030, "month": 1, "day": 1}},
    ):
        await refused(
            stub.ListDividends(pb.ListDividendsRequest(**fields), metadata=FREE), grpc.StatusCode.INVALID_ARGUMENT
        )


async def test_users_cannot_call_internal_rpcs(marketdata):
    await refused(
        marketdata.stub.StepClock(pb.StepClockRequest(), metadata=PRO_PLUS), grpc.StatusCode.PERMISSION_DENIED
    )
    stream = marketdata.stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["AMZN"]), metadata=PRO_PLUS)
    await refused(stream.read(), grpc.StatusCode.PERMISSION_DENIED)


def test_start_is_the_documented_default():
    assert datetime.fromtimestamp(START_NS // 10**9, UTC).isoformat() == "2012-06-21T14:00:00+00:00"
