"""A backtest on the market-data service's quote history (ListQuoteHistory, paged) runs on
the same quotes as the recording it was served from, so it gives the same fills."""

from __future__ import annotations

from datetime import date, timedelta

from mbt.marketdata.v1 import marketdata_pb2_grpc
from services.common.config import Settings
from services.common.rpc.channels import open_channel
from services.common.wire.conv import to_timestamp
from services.matcher.backtest.model import BacktestSpec
from services.matcher.backtest.runs import build_strategy, execute, feed_for, recorded
from services.matcher.clients import MarketDataClient
from tests.support.marketdata import MATCHER, START, start_marketdata

SETTINGS = Settings.from_env({})


async def test_a_backtest_on_market_data_history_matches_the_recording(databases, tmp_path):
    server = await start_marketdata(databases, tmp_path)
    try:
        # history answers up to the service's clock: let it reach the close
        await server.step(to_time=to_timestamp(START + timedelta(hours=6, minutes=5)))
        spec = BacktestSpec(
            first_day=date(2012, 6, 21),
            last_day=date(2012, 6, 21),
            strategy="grid",
            params={"slots": "8"},
            data="marketdata",
        )
        strategy = build_strategy(spec)
        async with open_channel(server.running.address, lambda: MATCHER) as channel:  # the matcher's identity
            marketdata = MarketDataClient(
                marketdata_pb2_grpc.MarketDataServiceStub(channel), SETTINGS.rpc_timeout_seconds
            )
            feed = await feed_for(spec, strategy, SETTINGS, marketdata)
    finally:
        await server.stop()
    from_history = execute(spec, strategy, feed, SETTINGS)
    bundled = BacktestSpec(
        first_day=date(2012, 6, 21), last_day=date(2012, 6, 21), strategy="grid", params={"slots": "8"}
    )
    from_recording = execute(
        bundled, build_strategy(bundled), recorded(bundled, build_strategy(bundled), SETTINGS), SETTINGS
    )
    assert len(feed) == from_recording.result.ticks + feed.delivered_by(from_recording.result.config.start_ns)
    assert from_history.result.fills and from_history.result.fills == from_recording.result.fills
    assert from_history.files["ledger.csv"] == from_recording.files["ledger.csv"]
