"""Accounts' marks from market data: a symbol without a quote (AAPL is known to the bundled
replay but never quoted) leaves the others marked, instead of unmarking every position."""

from __future__ import annotations

from mbt.marketdata.v1 import marketdata_pb2_grpc
from services.accounts.clients import MarketDataClient
from services.common.config import Settings
from services.common.rpc.channels import open_channel
from services.common.security.auth import ServiceCredentials
from services.common.security.tokens import TokenIssuer, TokenKeys
from tests.support.marketdata import START_NS, start_marketdata
from tests.support.recording import standing

SETTINGS = Settings.from_env({})


async def test_an_unquoted_symbol_leaves_the_other_symbols_marked(databases, tmp_path):
    server = await start_marketdata(databases, tmp_path)
    try:
        credentials = ServiceCredentials(TokenIssuer(TokenKeys.from_settings(SETTINGS)), "accounts")
        async with open_channel(server.running.address, credentials) as channel:
            market = MarketDataClient(
                marketdata_pb2_grpc.MarketDataServiceStub(channel), SETTINGS.rpc_timeout_seconds, credentials
            )
            marks = await market.latest({"AMZN", "AAPL", "GOOG"})
            assert await market.latest({"AAPL"}) == {}
    finally:
        await server.stop()
    assert sorted(marks) == ["AMZN", "GOOG"]
    for symbol in ("AMZN", "GOOG"):
        recorded = standing(symbol, START_NS)
        assert (marks[symbol].bid, marks[symbol].ask) == (recorded.bid, recorded.ask)
