"""The alpaca provider runs alpaca-py's real clients against a local server speaking
Alpaca's market-data wire format (tests/support/alpaca_wire.py): REST for latest and
historical quotes, option chains and dividends; the websocket streams for live quotes,
one connection per endpoint shared by every subscriber, recovered after a drop."""

import asyncio
from datetime import datetime
from decimal import Decimal

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from mbt.marketdata.v1 import marketdata_pb2 as pb
from services.common.clock import AnchoredClock, WallClock
from services.common.config import ConfigError, Settings
from services.common.wire.conv import datetime_from_ns, datetime_to_ns, timestamp_ns
from tests.support.alpaca_wire import FakeAlpaca, option_quote, stock_bar, stock_quote
from tests.support.identity import as_user
from tests.support.marketdata import MATCHER, start_marketdata, wait_until

MINUTE = 60 * 10**9
STOCKS, OPTIONS = "/v2/iex", "/v1beta1/indicative"
CALL = "AAPL350119C00190000"


@pytest.fixture
async def alpaca():
    fake = await FakeAlpaca().start()
    yield fake
    await fake.stop()


UNSUBSCRIBE_AFTER_SECONDS = 2


def alpaca_env(fake: FakeAlpaca, secret: str | None = None) -> dict:
    return {
        "MBT_MARKETDATA_PROVIDER": "alpaca",
        "ALPACA_MARKET_DATA_KEY": fake.key,
        "ALPACA_MARKET_DATA_SECRET": secret or fake.secret,
        "MBT_ALPACA_DATA_URL": fake.rest_url,
        "MBT_ALPACA_STREAM_URL": fake.stream_url,
        "MBT_QUOTE_UNSUBSCRIBE_AFTER_SECONDS": str(UNSUBSCRIBE_AFTER_SECONDS),
    }


@pytest.fixture
async def server(alpaca, databases, tmp_path):
    server = await start_marketdata(databases, tmp_path, **alpaca_env(alpaca))
    yield server
    await server.stop()


def now_ns() -> int:
    return datetime_to_ns(WallClock().now())


async def test_latest_quotes_history_and_delayed_quotes_come_from_the_rest_api(alpaca, server):
    now = now_ns()
    alpaca.stock_history["AAPL"] = [
        stock_quote(now - m * MINUTE, 189.5 + m / 100, 100, 189.6 + m / 100, 200) for m in (40, 30, 20, 10, 0)
    ]
    reply = await server.stub.GetLatestQuote(pb.GetLatestQuoteRequest(symbol="AAPL"), metadata=MATCHER)
    quote = reply.quote
    assert (quote.bid_price, quote.bid_size, quote.ask_price, quote.ask_size) == ("189.50", "100", "189.60", "200")
    assert quote.source == pb.QUOTE_SOURCE_ALPACA and quote.condition == pb.QUOTE_CONDITION_USABLE
    assert timestamp_ns(quote.quote_at) == now and quote.sequence == now
    assert ("/v2/stocks/quotes/latest", {"symbols": "AAPL", "feed": "iex"}) in alpaca.requests

    delayed = (
        await server.stub.GetLatestQuote(pb.GetLatestQuoteRequest(symbol="AAPL"), metadata=as_user("fay", "free"))
    ).quote
    assert delayed.delayed and timestamp_ns(delayed.quote_at) == now - 20 * MINUTE and delayed.bid_price == "189.70"

    request = {"symbol": "AAPL", "from_time": Timestamp(seconds=(now - 45 * MINUTE) // 10**9)}
    first = await server.stub.ListQuoteHistory(pb.ListQuoteHistoryRequest(**request, page_size=3), metadata=MATCHER)
    rest = await server.stub.ListQuoteHistory(
        pb.ListQuoteHistoryRequest(**request, page_size=3, page_token=first.next_page_token), metadata=MATCHER
    )
    assert [timestamp_ns(q.quote_at) for q in list(first.quotes) + list(rest.quotes)] == [
        now - m * MINUTE for m in (40, 30, 20, 10, 0)
    ]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await server.stub.GetSymbol(pb.GetSymbolRequest(symbol="NOPE"), metadata=MATCHER)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_option_chains_and_option_quotes_come_from_the_option_client(alpaca, server):
    now = now_ns()
    alpaca.stock_history["AAPL"] = [stock_quote(now, 189.5, 100, 189.6, 200)]
    alpaca.chains["AAPL"] = {
        CALL: {
            "latestQuote": option_quote(now - MINUTE, 5.1, 10, 5.25, 12),
            "greeks": {"delta": 0.5},
            "impliedVolatility": 0.2,
        },
        "AAPL350216P00180000": {"latestQuote": option_quote(now - MINUTE, 3.0, 1, 2.9, 1)},
    }
    alpaca.option_latest[CALL] = option_quote(now, 5.15, 4, 5.2, 8)
    chain = await server.stub.GetOptionChain(pb.GetOptionChainRequest(underlying="AAPL"), metadata=MATCHER)
    assert chain.source == pb.QUOTE_SOURCE_ALPACA and chain.underlying_quote.bid_price == "189.50"
    assert [(c.symbol, c.quote.bid_price, c.quote.condition) for c in chain.contracts] == [
        (CALL, "5.10", pb.QUOTE_CONDITION_USABLE),
        ("AAPL350216P00180000", "3.00", pb.QUOTE_CONDITION_CROSSED),
    ]
    january = await server.stub.GetOptionChain(
        pb.GetOptionChainRequest(underlying="AAPL", expiration_date={"year": 2035, "month": 1, "day": 19}),
        metadata=MATCHER,
    )
    assert [c.symbol for c in january.contracts] == [CALL]
    assert (
        "/v1beta1/options/snapshots/AAPL",
        {"feed": "indicative", "expiration_date": "2035-01-19", "limit": "1000"},
    ) in alpaca.requests
    option = (await server.stub.GetLatestQuote(pb.GetLatestQuoteRequest(symbol=CALL), metadata=MATCHER)).quote
    assert (option.bid_price, option.ask_price, timestamp_ns(option.quote_at)) == ("5.15", "5.20", now)


async def test_dividends_come_from_the_corporate_actions_api_and_stay_cached(alpaca, server):
    alpaca.cash_dividends = [
        {
            "corporate_action_type": "cash_dividend",
            "symbol": "AAPL",
            "cusip": "037833100",
            "rate": 0.24,
            "special": False,
            "foreign": False,
            "process_date": "2023-11-16",
            "ex_date": "2023-11-10",
            "record_date": "2023-11-13",
            "payable_date": "2023-11-16",
        }
    ]
    request = pb.ListDividendsRequest(
        symbols=["AAPL"],
        from_date={"year": 2023, "month": 11, "day": 1},
        to_date={"year": 2023, "month": 11, "day": 30},
    )
    [dividend] = (await server.stub.ListDividends(request, metadata=MATCHER)).dividends
    assert (dividend.cash_amount, dividend.ex_date.day, dividend.record_date.day, dividend.pay_date.day) == (
        "0.24",
        10,
        13,
        16,
    )
    _path, params = next(r for r in alpaca.requests if r[0] == "/v1/corporate-actions")
    assert (params["symbols"], params["types"]) == ("AAPL", "cash_dividend")
    alpaca.cash_dividends = []
    assert len((await server.stub.ListDividends(request, metadata=MATCHER)).dividends) == 1


async def test_streams_share_one_connection_per_endpoint_and_recover_a_dropped_one(alpaca, server):
    streams = [
        server.stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["AAPL"]), metadata=MATCHER),
        server.stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["AAPL", "MSFT"]), metadata=MATCHER),
        server.stub.StreamQuotes(pb.StreamQuotesRequest(symbols=[CALL]), metadata=MATCHER),
    ]
    try:
        for stream in streams:
            await stream.initial_metadata()
        await wait_until(lambda: alpaca.subscribed(STOCKS) == {"AAPL", "MSFT"} and alpaca.subscribed(OPTIONS) == {CALL})
        now = now_ns()
        assert await alpaca.push_quote(STOCKS, "AAPL", now, 189.5, 100, 189.6, 200) == 1
        assert await alpaca.push_quote(OPTIONS, CALL, now, 5.1, 3, 5.2, 4) == 1
        first = [(await asyncio.wait_for(s.read(), 10)).quotes[0] for s in streams]
        assert [(q.symbol, q.bid_price, q.sequence) for q in first] == [
            ("AAPL", "189.50", now),
            ("AAPL", "189.50", now),
            (CALL, "5.10", now),
        ]
        assert alpaca.drop_connections(STOCKS) == 1
        await wait_until(lambda: alpaca.connects[STOCKS] == 2 and alpaca.subscribed(STOCKS) == {"AAPL", "MSFT"}, 30)
        await alpaca.push_quote(STOCKS, "MSFT", now + 1, 410.0, 100, 410.1, 100)
        await alpaca.push_quote(STOCKS, "AAPL", now, 189.55, 100, 189.6, 200)
        after = (await asyncio.wait_for(streams[1].read(), 10)).quotes
        while len(after) < 2:
            after.extend((await asyncio.wait_for(streams[1].read(), 10)).quotes)
        assert [(q.symbol, q.sequence) for q in after] == [("MSFT", now + 1), ("AAPL", now + 1)]
        assert alpaca.max_concurrent == {STOCKS: 1, OPTIONS: 1}
        assert server.market.provider.upstream_subscriptions == {"AAPL": 1, "MSFT": 1, CALL: 1}
        assert (
            sum(
                1 for path, action in alpaca.subscribe_actions if path == STOCKS and action.get("action") == "subscribe"
            )
            >= 2
        )
    finally:
        for stream in streams:
            stream.cancel()
    hub = server.market.hub
    await wait_until(lambda: not any(hub.subscribers(s) for s in ("AAPL", "MSFT", CALL)))
    # Nobody listens, yet the symbols stay subscribed (and archived) a while, for a restarting matcher.
    assert alpaca.subscribed(STOCKS) == {"AAPL", "MSFT"} and alpaca.subscribed(OPTIONS) == {CALL}
    await wait_until(
        lambda: not alpaca.connections[STOCKS] and not alpaca.connections[OPTIONS], UNSUBSCRIBE_AFTER_SECONDS + 30
    )
    archived = await server.stub.ListArchivedTicks(pb.ListArchivedTicksRequest(symbol="AAPL"), metadata=MATCHER)
    assert [q.sequence for q in archived.quotes] == [now, now + 1]


async def test_a_refused_key_is_unavailable_and_never_shown(alpaca, databases, tmp_path):
    server = await start_marketdata(databases, tmp_path, **alpaca_env(alpaca, secret="wrong-secret-value"))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await server.stub.GetLatestQuote(pb.GetLatestQuoteRequest(symbol="AAPL"), metadata=MATCHER)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "wrong-secret-value" not in caught.value.details() and "401" in caught.value.details()
        assert "wrong-secret-value" not in repr(server.market.provider.__dict__)
    finally:
        await server.stop()


async def test_the_key_may_come_from_mounted_files_and_is_required(alpaca, databases, tmp_path):
    (tmp_path / "key").write_text(alpaca.key + "\n")
    (tmp_path / "secret").write_text(alpaca.secret)
    env = {
        **alpaca_env(alpaca),
        "ALPACA_MARKET_DATA_KEY": "",
        "ALPACA_MARKET_DATA_SECRET": "",
        "ALPACA_MARKET_DATA_KEY_FILE": str(tmp_path / "key"),
        "ALPACA_MARKET_DATA_SECRET_FILE": str(tmp_path / "secret"),
    }
    assert alpaca.secret not in repr(Settings.from_env(env))
    server = await start_marketdata(databases, tmp_path, **env)
    try:
        alpaca.stock_history["MSFT"] = [stock_quote(now_ns(), 410.0, 1, 410.1, 1)]
        quote = (await server.stub.GetLatestQuote(pb.GetLatestQuoteRequest(symbol="MSFT"), metadata=MATCHER)).quote
        assert quote.ask_price == "410.10"
    finally:
        await server.stop()
    with pytest.raises(ConfigError, match="ALPACA_MARKET_DATA_SECRET"):
        await start_marketdata(databases, tmp_path, **{**env, "ALPACA_MARKET_DATA_SECRET_FILE": ""})


def ny(text: str) -> int:
    """Nanoseconds of a New York wall time in March 2024 (EST, UTC-5)."""
    return datetime_to_ns(datetime.fromisoformat(text + "-05:00"))


DAY_FROM, DAY_TO = (
    Timestamp(seconds=ny("2024-03-05T00:00:00") // 10**9),
    Timestamp(seconds=ny("2024-03-05T23:59:00") // 10**9),
)


def known(alpaca: FakeAlpaca, symbol: str = "AAPL") -> None:
    """A symbol is known to the provider when Alpaca has a latest quote of it."""
    alpaca.stock_history[symbol] = [stock_quote(now_ns(), 189.5, 100, 189.6, 200)]


async def list_bars(server, timeframe: str, **request) -> list:
    reply = await server.stub.ListBars(
        pb.ListBarsRequest(
            symbol="AAPL", timeframe=timeframe, from_time=DAY_FROM, to_time=DAY_TO, page_size=100, **request
        ),
        metadata=MATCHER,
    )
    return list(reply.bars)


def summary(bar) -> tuple:
    return (
        bar.start_time.ToJsonString(),
        bar.end_time.ToJsonString(),
        bar.open,
        bar.high,
        bar.low,
        bar.close,
        bar.volume,
        bar.trade_count,
        bar.vwap,
        bar.basis,
        bar.source,
    )


TRADES, ALPACA = pb.BAR_BASIS_TRADES, pb.QUOTE_SOURCE_ALPACA


async def test_bars_are_alpacas_cut_to_the_session_and_rolled_up_to_session_hours_and_days(alpaca, server):
    known(alpaca)
    alpaca.stock_bars["AAPL", "1Min"] = [
        stock_bar(ny("2024-03-05T09:29:00"), 170.0, 170.0, 170.0, 170.0, 500, 3, 170.0),  # pre-market
        stock_bar(ny("2024-03-05T09:30:00"), 170.1, 170.5, 169.9, 170.2, 1000, 20, 170.123456),
        stock_bar(ny("2024-03-05T09:31:00"), 170.2, 170.3, 170.15, 170.25, 400, 5, 170.22),
        stock_bar(ny("2024-03-05T16:00:00"), 171.0, 171.0, 171.0, 171.0, 100, 1, 171.0),
    ]  # after hours
    assert [summary(b) for b in await list_bars(server, "1Min")] == [
        (
            "2024-03-05T14:30:00Z",
            "2024-03-05T14:31:00Z",
            "170.10",
            "170.50",
            "169.90",
            "170.20",
            "1000",
            20,
            "170.1235",
            TRADES,
            ALPACA,
        ),
        (
            "2024-03-05T14:31:00Z",
            "2024-03-05T14:32:00Z",
            "170.20",
            "170.30",
            "170.15",
            "170.25",
            "400",
            5,
            "170.2200",
            TRADES,
            ALPACA,
        ),
    ]
    # Alpaca's hours start on the clock and its days at midnight: MBT builds both from 30Min bars.
    alpaca.stock_bars["AAPL", "30Min"] = [
        stock_bar(ny("2024-03-05T09:00:00"), 169.0, 169.0, 169.0, 169.0, 900, 9, 169.0),  # pre-market
        stock_bar(ny("2024-03-05T09:30:00"), 170.0, 171.0, 169.5, 170.5, 1000, 10, 170.25),
        stock_bar(ny("2024-03-05T10:00:00"), 170.5, 172.0, 170.4, 171.5, 3000, 30, 171.25),
        stock_bar(ny("2024-03-05T10:30:00"), 171.5, 171.6, 168.0, 168.5, 200, 2, 169.0),
        stock_bar(ny("2024-03-05T15:30:00"), 168.5, 169.0, 168.1, 168.9, 700, 7, 168.7),
        stock_bar(ny("2024-03-05T16:00:00"), 168.9, 175.0, 160.0, 169.0, 5000, 50, 170.0),
    ]  # after hours
    assert [summary(b) for b in await list_bars(server, "1Hour")] == [
        (
            "2024-03-05T14:30:00Z",
            "2024-03-05T15:30:00Z",
            "170.00",
            "172.00",
            "169.50",
            "171.50",
            "4000",
            40,
            "171.0000",
            TRADES,
            ALPACA,
        ),  # (1000 x 170.25 + 3000 x 171.25) / 4000
        (
            "2024-03-05T15:30:00Z",
            "2024-03-05T16:30:00Z",
            "171.50",
            "171.60",
            "168.00",
            "168.50",
            "200",
            2,
            "169.0000",
            TRADES,
            ALPACA,
        ),
        (
            "2024-03-05T20:30:00Z",
            "2024-03-05T21:00:00Z",
            "168.50",
            "169.00",
            "168.10",
            "168.90",
            "700",
            7,
            "168.7000",
            TRADES,
            ALPACA,
        ),
    ]
    assert [summary(b) for b in await list_bars(server, "1Day")] == [
        (
            "2024-03-05T14:30:00Z",
            "2024-03-05T21:00:00Z",
            "170.00",
            "172.00",
            "168.00",
            "168.90",
            "4900",
            49,
            "170.5898",
            TRADES,
            ALPACA,
        )
    ]  # 835,890 / 4,900 = 170.58979...
    _path, params = [r for r in alpaca.requests if r[0] == "/v2/stocks/bars"][-1]
    assert (params["symbols"], params["timeframe"], params["feed"], params["adjustment"]) == (
        "AAPL",
        "30Min",
        "iex",
        "raw",
    )


async def test_a_symbol_halted_through_two_sessions_pages_on_to_its_next_bars(alpaca, server):
    """Only extended-hours minutes on the 5th and 6th (more rows than one Alpaca request
    asks for when two bars are wanted): the provider asks again from where it stopped."""
    known(alpaca)
    rows = []
    for day in ("2024-03-05", "2024-03-06", "2024-03-07"):
        minutes = [*range(4 * 60, 9 * 60 + 30), *range(16 * 60, 20 * 60)]
        if day == "2024-03-07":
            minutes = [*range(4 * 60, 9 * 60 + 33)]
        for minute in minutes:
            at = ny(f"{day}T00:00:00") + minute * MINUTE
            rows.append(stock_bar(at, 170.0, 170.0, 170.0, 170.0, 10, 1, 170.0))
    alpaca.stock_bars["AAPL", "1Min"] = rows
    pages, token = [], ""
    while True:
        reply = await server.stub.ListBars(
            pb.ListBarsRequest(
                symbol="AAPL",
                timeframe="1Min",
                from_time=DAY_FROM,
                to_time=Timestamp(seconds=ny("2024-03-08T00:00:00") // 10**9),
                page_size=2,
                page_token=token,
            ),
            metadata=MATCHER,
        )
        pages.append([b.start_time.ToJsonString() for b in reply.bars])
        token = reply.next_page_token
        if not token:
            break
    assert pages == [["2024-03-07T14:30:00Z", "2024-03-07T14:31:00Z"], ["2024-03-07T14:32:00Z"]]
    assert sum(1 for path, _ in alpaca.requests if path == "/v2/stocks/bars") >= 3


async def test_stream_bars_follow_the_wall_clock_and_ask_alpaca_again_until_it_answers(alpaca, databases, tmp_path):
    close = ny("2024-03-05T10:05:00")
    alpaca.stock_bars["AAPL", "1Min"] = [
        stock_bar(close - MINUTE, 170.1, 170.5, 169.9, 170.2, 1000, 20, 170.2),
        stock_bar(close, 170.2, 170.2, 170.2, 170.2, 1, 1, 170.2),
    ]
    alpaca.failing_bars_requests = 2
    clock = AnchoredClock(WallClock().now(), Decimal(1))
    server = await start_marketdata(databases, tmp_path, clock=clock, **alpaca_env(alpaca))
    # The wall clock, moved to two seconds before a close of that day: the bar comes at the close.
    clock.anchor(datetime_from_ns(close - 2 * 10**9), Decimal(1))
    stream = server.stub.StreamBars(pb.StreamBarsRequest(symbols=["AAPL", "MSFT"], timeframe="1Min"), metadata=MATCHER)
    try:
        await stream.initial_metadata()
        first = await asyncio.wait_for(stream.read(), 10)
        assert (first.start_time.ToJsonString(), first.end_time.ToJsonString()) == (
            "2024-03-05T15:04:00Z",
            "2024-03-05T15:05:00Z",
        )
        # MSFT has no bar in that minute: the close carries AAPL's only.
        assert [(b.symbol, b.close, b.volume, b.source) for b in first.bars] == [("AAPL", "170.20", "1000", ALPACA)]
        asked = [params for path, params in alpaca.requests if path == "/v2/stocks/bars"]
        assert len(asked) >= 3 and alpaca.failing_bars_requests == 0  # refused twice, then answered
        assert {(params["timeframe"], params["start"]) for params in asked} == {("1Min", "2024-03-05T15:04:00+00:00")}
    finally:
        stream.cancel()
        await server.stop()
