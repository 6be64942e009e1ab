"""Options in market data over real gRPC: contract metadata and expiry from GetSymbol, model
quotes of the bundled AMZN day (chain, latest, history, stream, archive), and the recorded
Cboe A/VIX day as the second replay dataset."""

import csv
import gzip
import itertools
from decimal import Decimal

import grpc
import pytest

from mbt.common.v1 import trading_pb2
from mbt.marketdata.v1 import marketdata_pb2 as pb
from services.common.instruments import on_option_grid, parse_symbol
from services.common.wire.conv import timestamp_ns
from services.marketdata.recording import BUNDLED_OPTION_QUOTES, parse_time_ns
from tests.support.errors import error_info
from tests.support.identity import as_user
from tests.support.marketdata import MATCHER, START_NS, read_quotes, start_marketdata

FREE, PRO = as_user("fay", "free"), as_user("pat", "pro")
MINUTE = 60 * 10**9
# AMZN at 10:00 New York on 2012-06-21 trades near $222: the $220 strike is at the money.
ATM_CALL = "AMZN120622C00220000"
JUNE_22 = {"year": 2012, "month": 6, "day": 22}


async def refused(call, code: grpc.StatusCode) -> tuple[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return error_info(caught.value)[0], caught.value.details()


def to_ts(ns: int):
    from google.protobuf.timestamp_pb2 import Timestamp

    return Timestamp(seconds=ns // 10**9, nanos=ns % 10**9)


async def test_get_symbol_describes_a_listed_model_contract_compact_and_refuses_unlisted_and_expired(marketdata):
    stub = marketdata.stub
    padded = (await stub.GetSymbol(pb.GetSymbolRequest(symbol="AMZN  120622C00220000"), metadata=FREE)).symbol
    assert (
        padded.symbol,
        padded.asset_class,
        padded.underlying,
        padded.root,
        padded.strike_price,
        padded.multiplier,
        padded.tradable,
    ) == (ATM_CALL, trading_pb2.ASSET_CLASS_US_OPTION, "AMZN", "AMZN", "220.00", "100", True)
    assert (padded.exercise_style, padded.settlement_type, padded.settlement_time) == (
        pb.EXERCISE_STYLE_AMERICAN,
        pb.SETTLEMENT_TYPE_PHYSICAL,
        pb.SETTLEMENT_TIME_UNSPECIFIED,
    )
    assert padded.last_trade_time.ToJsonString() == "2012-06-22T20:00:00Z"

    reason, message = await refused(
        stub.GetSymbol(pb.GetSymbolRequest(symbol="AMZN120622C00221000"), metadata=FREE), grpc.StatusCode.NOT_FOUND
    )
    assert reason == "NOT_FOUND" and "is not listed" in message
    reason, message = await refused(
        stub.GetSymbol(pb.GetSymbolRequest(symbol="AMZN120615C00220000"), metadata=FREE),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason == "CONTRACT_EXPIRED" and "2012-06-15T20:00:00Z" in message

    # Past the close of its last trading day, the contract is expired and no longer listed.
    await marketdata.step(to_time=to_ts(START_NS + 30 * 3600 * 10**9 + 7 * MINUTE))  # 2012-06-22 20:07Z
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetSymbol(pb.GetSymbolRequest(symbol=ATM_CALL), metadata=FREE)
    # The refusal names when it stopped trading: an order accepted before still expires by it.
    assert error_info(caught.value) == (
        "CONTRACT_EXPIRED",
        {"symbol": ATM_CALL, "last_trade_time": "2012-06-22T20:00:00+00:00"},
    )
    chain = await stub.GetOptionChain(pb.GetOptionChainRequest(underlying="AMZN"), metadata=MATCHER)
    assert chain.contracts and all((c.expiration_date.month, c.expiration_date.day) != (6, 22) for c in chain.contracts)
    # Its quotes stopped at that close: the latest is the model at AMZN's last tick before it.
    last = (await stub.GetLatestQuote(pb.GetLatestQuoteRequest(symbol=ATM_CALL), metadata=MATCHER)).quote
    assert timestamp_ns(last.quote_at) < START_NS + 30 * 3600 * 10**9


async def test_the_model_chain_has_a_quote_and_greeks_for_every_listed_contract(marketdata):
    stub = marketdata.stub
    chain = await stub.GetOptionChain(
        pb.GetOptionChainRequest(underlying="AMZN", expiration_date=JUNE_22), metadata=MATCHER
    )
    assert chain.source == pb.QUOTE_SOURCE_MODEL and chain.risk_free_rate == "0.001"
    amzn = (await stub.GetLatestQuote(pb.GetLatestQuoteRequest(symbol="AMZN"), metadata=MATCHER)).quote
    assert chain.as_of == amzn.quote_at and chain.underlying_quote.sequence == amzn.sequence
    strikes = sorted({Decimal(c.strike_price) for c in chain.contracts})
    assert strikes == [Decimal(s) for s in (170, 175, 180, 185, 190, 195, 200, 210, 220, 230, 240, 250, 260, 270)]
    assert len(chain.contracts) == 28
    mid = (Decimal(amzn.bid_price) + Decimal(amzn.ask_price)) / 2
    for contract in chain.contracts:
        quote, model, greeks = contract.quote, contract.quote.model, contract.greeks
        assert quote.source == pb.QUOTE_SOURCE_MODEL and quote.sequence == amzn.sequence
        assert (model.model, model.underlying_symbol, model.underlying_sequence) == (
            "black_scholes_merton",
            "AMZN",
            amzn.sequence,
        )
        assert Decimal(model.underlying_price) == mid and model.risk_free_rate == "0.001"
        bid, ask, value = Decimal(quote.bid_price), Decimal(quote.ask_price), Decimal(model.model_price)
        assert bid <= value <= ask and bid < ask and on_option_grid(bid, "AMZN") and on_option_grid(ask, "AMZN")
        assert greeks.implied_volatility == model.volatility
        delta = Decimal(greeks.delta)
        assert (0 <= delta <= 1) if contract.option_type == pb.OPTION_TYPE_CALL else (-1 <= delta <= 0)
        assert Decimal(greeks.gamma) >= 0 and Decimal(greeks.vega) >= 0
        # A call on a stock paying nothing loses value with time (a deep in-the-money European
        # put may gain: its strike is received later).
        assert contract.option_type == pb.OPTION_TYPE_PUT or Decimal(greeks.theta) <= 0
    atm = next(c for c in chain.contracts if c.symbol == ATM_CALL)
    assert atm.quote.condition == pb.QUOTE_CONDITION_USABLE and Decimal("0.3") < Decimal(atm.greeks.delta) < 1

    assert not chain.underlying_quote.delayed and not any(c.quote.delayed for c in chain.contracts)

    # A Free user's chain is the model at AMZN's tick of 15 minutes earlier, labelled so, as
    # the quote that user gets of the same contract is; a Pro user's is real time.
    delayed = await stub.GetOptionChain(
        pb.GetOptionChainRequest(underlying="AMZN", expiration_date=JUNE_22), metadata=FREE
    )
    assert timestamp_ns(delayed.as_of) <= START_NS - 15 * MINUTE and delayed.contracts[0].quote.bid_price
    assert delayed.underlying_quote.delayed and all(c.quote.delayed for c in delayed.contracts)
    free_quote = (await stub.GetLatestQuote(pb.GetLatestQuoteRequest(symbol=ATM_CALL), metadata=FREE)).quote
    free_atm = next(c for c in delayed.contracts if c.symbol == ATM_CALL).quote
    assert free_quote.delayed and (free_atm.bid_price, free_atm.ask_price, free_atm.quote_at) == (
        free_quote.bid_price,
        free_quote.ask_price,
        free_quote.quote_at,
    )
    pro = await stub.GetOptionChain(pb.GetOptionChainRequest(underlying="AMZN", expiration_date=JUNE_22), metadata=PRO)
    assert pro.as_of == chain.as_of and not any(c.quote.delayed for c in pro.contracts)


async def test_model_quotes_stream_as_the_underlying_moves_and_are_archived_and_listed_alike(marketdata):
    stub = marketdata.stub
    put = "AMZN120622P00220000"
    stream = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=[ATM_CALL, put]), metadata=MATCHER)
    await stream.initial_metadata()
    await marketdata.step(by={"seconds": 600})
    streamed = await read_quotes(stream, 20)
    stream.cancel()
    for symbol in (ATM_CALL, put):
        ticks = [q for q in streamed if q.symbol == symbol]
        assert ticks and all(q.source == pb.QUOTE_SOURCE_MODEL for q in ticks)
        assert all(a.sequence < b.sequence for a, b in itertools.pairwise(ticks))
        # A model quote is sent only when its bid or ask changed.
        assert all((a.bid_price, a.ask_price) != (b.bid_price, b.ask_price) for a, b in itertools.pairwise(ticks))
    # Each names the AMZN tick it was priced from: same sequence and time, its mid the model's input.
    amzn = {q.sequence: q for q in await whole_history(stub, "AMZN", START_NS)}
    for quote in streamed:
        underlying = amzn[quote.sequence]
        assert underlying.quote_at == quote.quote_at and quote.model.underlying_sequence == quote.sequence
        assert (
            Decimal(quote.model.underlying_price) == (Decimal(underlying.bid_price) + Decimal(underlying.ask_price)) / 2
        )
    calls = [q for q in streamed if q.symbol == ATM_CALL]
    archived = (
        await stub.ListArchivedTicks(pb.ListArchivedTicksRequest(symbol=ATM_CALL, page_size=5000), metadata=MATCHER)
    ).quotes
    assert [(q.sequence, q.bid_price, q.ask_price, q.model) for q in archived[: len(calls)]] == [
        (q.sequence, q.bid_price, q.ask_price, q.model) for q in calls
    ]
    listed = await whole_history(stub, ATM_CALL, START_NS + 1)
    assert [(q.sequence, q.bid_price, q.ask_price, q.model) for q in listed[: len(calls)]] == [
        (q.sequence, q.bid_price, q.ask_price, q.model) for q in calls
    ]
    latest = (await stub.GetLatestQuote(pb.GetLatestQuoteRequest(symbol=ATM_CALL), metadata=MATCHER)).quote
    assert (latest.bid_price, latest.ask_price) == (listed[-1].bid_price, listed[-1].ask_price)
    assert latest.sequence >= listed[-1].sequence


async def whole_history(stub, symbol: str, from_ns: int) -> list:
    quotes, token = [], ""
    while True:
        page = await stub.ListQuoteHistory(
            pb.ListQuoteHistoryRequest(symbol=symbol, from_time=to_ts(from_ns), page_size=500, page_token=token),
            metadata=MATCHER,
        )
        quotes.extend(page.quotes)
        if not page.next_page_token:
            return quotes
        token = page.next_page_token


def raw_row(symbol: str, at: str) -> dict:
    """The bundled Cboe file's row, read with nothing but the csv module."""
    with gzip.open(BUNDLED_OPTION_QUOTES, "rt", newline="") as handle:
        return next(r for r in csv.DictReader(handle) if r["symbol"] == symbol and r["timestamp"] == at)


@pytest.fixture
async def cboe(databases, tmp_path):
    server = await start_marketdata(databases, tmp_path, MBT_REPLAY_DATASET="cboe-options-2021")
    yield server
    await server.stop()


async def test_the_cboe_dataset_replays_recorded_option_quotes_and_the_index_level(cboe):
    stub = cboe.stub
    clock = (await stub.GetClock(pb.GetClockRequest(), metadata=MATCHER)).clock
    assert clock.now.ToJsonString() == "2021-04-26T14:00:00Z" and clock.is_open
    symbol = "A210521C00135000"
    row = raw_row(symbol, "2021-04-26T14:00:00Z")
    quote = (await stub.GetLatestQuote(pb.GetLatestQuoteRequest(symbol=symbol), metadata=PRO)).quote
    assert (quote.source, quote.quote_at.ToJsonString()) == (pb.QUOTE_SOURCE_REPLAY, row["timestamp"])
    assert (Decimal(quote.bid_price), Decimal(quote.bid_size), Decimal(quote.ask_price), Decimal(quote.ask_size)) == (
        Decimal(row["bid"]),
        Decimal(row["bid_size"]),
        Decimal(row["ask"]),
        Decimal(row["ask_size"]),
    )
    assert not quote.HasField("model")

    await cboe.step(to_time=to_ts(parse_time_ns("2021-04-26T15:00:00Z")))
    later = raw_row(symbol, "2021-04-26T15:00:00Z")
    quote = (await stub.GetLatestQuote(pb.GetLatestQuoteRequest(symbol=symbol), metadata=PRO)).quote
    assert (Decimal(quote.bid_price), Decimal(quote.ask_price)) == (Decimal(later["bid"]), Decimal(later["ask"]))

    vix = (await stub.GetLatestQuote(pb.GetLatestQuoteRequest(symbol="^vix"), metadata=PRO)).quote
    assert (vix.symbol, vix.condition, vix.bid_price) == (
        "^VIX",
        pb.QUOTE_CONDITION_INDEX,
        raw_row("^VIX", "2021-04-26T15:00:00Z")["bid"][:-2],
    )
    index = (await stub.GetSymbol(pb.GetSymbolRequest(symbol="^VIX"), metadata=PRO)).symbol
    assert (index.asset_class, index.tradable) == (trading_pb2.ASSET_CLASS_INDEX, False)

    chain = await stub.GetOptionChain(pb.GetOptionChainRequest(underlying="A"), metadata=PRO)
    assert chain.source == pb.QUOTE_SOURCE_REPLAY and len(chain.contracts) == 392
    assert chain.as_of.ToJsonString() == "2021-04-26T15:00:00Z"
    contract = next(c for c in chain.contracts if c.symbol == symbol)
    assert contract.HasField("greeks") and Decimal("0.3") < Decimal(contract.greeks.delta) < Decimal("0.8")
    assert Decimal("0.1") < Decimal(contract.greeks.implied_volatility) < Decimal("0.6")
    vix_chain = await stub.GetOptionChain(pb.GetOptionChainRequest(underlying="^VIX"), metadata=PRO)
    assert len(vix_chain.contracts) == 1076 and not any(c.HasField("greeks") for c in vix_chain.contracts)
    assert {c.root for c in vix_chain.contracts} == {"VIX", "VIXW"}


async def test_index_options_are_european_and_cash_settled_and_expire_after_their_last_trading_day(cboe):
    stub = cboe.stub
    monthly = (await stub.GetSymbol(pb.GetSymbolRequest(symbol="VIX210519C00010500"), metadata=PRO)).symbol
    assert (
        monthly.underlying,
        monthly.root,
        monthly.exercise_style,
        monthly.settlement_type,
        monthly.settlement_time,
    ) == ("^VIX", "VIX", pb.EXERCISE_STYLE_EUROPEAN, pb.SETTLEMENT_TYPE_CASH, pb.SETTLEMENT_TIME_AM)
    # AM-settled on the Wednesday's opening value: trading stops at Tuesday's close.
    assert monthly.last_trade_time.ToJsonString() == "2021-05-18T20:00:00Z"
    weekly = "VIXW210428P00017000"
    assert (await stub.GetSymbol(pb.GetSymbolRequest(symbol=weekly), metadata=PRO)).symbol.tradable
    equity = (await stub.GetSymbol(pb.GetSymbolRequest(symbol="A210521C00135000"), metadata=PRO)).symbol
    assert (equity.exercise_style, equity.settlement_type) == (pb.EXERCISE_STYLE_AMERICAN, pb.SETTLEMENT_TYPE_PHYSICAL)
    await cboe.step(to_time=to_ts(parse_time_ns("2021-04-27T20:00:00Z")))
    reason, _ = await refused(
        stub.GetSymbol(pb.GetSymbolRequest(symbol=weekly), metadata=PRO), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert reason == "CONTRACT_EXPIRED"
    chain = await stub.GetOptionChain(pb.GetOptionChainRequest(underlying="^VIX"), metadata=PRO)
    assert chain.contracts and weekly not in {c.symbol for c in chain.contracts}
    assert parse_symbol(weekly).underlying == "^VIX"


async def test_the_index_level_gives_the_daily_bars_its_options_settle_on(cboe):
    # ^VIX's quotes are its level (condition index): never usable, yet its 1Day bar is what
    # the accounts service settles VIX options on (the AM open of the expiration day).
    stub = cboe.stub
    await cboe.step(to_time=to_ts(parse_time_ns("2021-04-28T21:35:00Z")))
    reply = await stub.ListBars(
        pb.ListBarsRequest(
            symbol="^VIX", timeframe="1Day", from_time=to_ts(parse_time_ns("2021-04-20T00:00:00Z")), page_size=10
        ),
        metadata=PRO,
    )
    first, last = raw_row("^VIX", "2021-04-26T14:00:00Z"), raw_row("^VIX", "2021-04-26T19:30:00Z")
    assert [b.start_time.ToJsonString() for b in reply.bars] == [
        "2021-04-26T13:30:00Z",
        "2021-04-27T13:30:00Z",
        "2021-04-28T13:30:00Z",
    ]
    # The replay plays the recorded day again each session: every day opens at the first
    # recorded level and closes at the last one inside the session (20:00Z on is after it).
    for bar in reply.bars:
        assert (bar.symbol, Decimal(bar.open), Decimal(bar.close)) == (
            "^VIX",
            Decimal(first["bid"]),
            Decimal(last["bid"]),
        )
        assert (bar.volume, bar.trade_count) == ("0", 0)
