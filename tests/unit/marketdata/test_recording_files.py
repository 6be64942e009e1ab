"""Recordings load exactly (decimal text, never floats) from CSV or Parquet; bad files
say what is wrong; the bundled dividends are un-split-adjusted to what was paid."""

import gzip
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.marketdata.domain.ticks import Condition
from services.marketdata.recording import (
    BUNDLED_DIVIDENDS,
    BUNDLED_OPTION_CHAIN,
    BUNDLED_SPLITS,
    RecordingError,
    load_dividends,
    load_option_chain,
    load_recording,
)

CSV = """timestamp,symbol,bid,bid_size,ask,ask_size
2024-03-01T14:30:00.000000001Z,aapl,179.10,200,179.12,100
2024-03-01T14:30:00.5Z,MSFT,410.00,100,409.99,300
2024-03-01T14:30:01Z,AAPL,179.11,100,179.11,100
"""


def test_a_csv_recording_with_rfc3339_times_and_other_column_names(tmp_path):
    path = tmp_path / "ticks.csv.gz"
    path.write_bytes(gzip.compress(CSV.encode()))
    recording = load_recording(path)
    first, crossed, locked = recording.ticks
    assert (first.symbol, first.quote_at_ns, first.bid, first.sequence) == (
        "AAPL",
        1709303400000000001,
        Decimal("179.10"),
        1,
    )
    assert (crossed.condition, locked.condition, locked.sequence) == (Condition.CROSSED, Condition.LOCKED, 2)


def test_a_parquet_recording_keeps_decimal_prices(tmp_path):
    path = tmp_path / "ticks.parquet"
    table = pa.table(
        {
            "ts_ns": pa.array([1, 2], pa.int64()),
            "symbol": ["AMZN", "AMZN"],
            "bid_px": pa.array([Decimal("223.18"), Decimal("223.19")], pa.decimal128(12, 4)),
            "bid_sz": [100, 200],
            "ask_px": ["223.95", "223.96"],
            "ask_sz": [100, 100],
        }
    )
    pq.write_table(table, path)
    ticks = load_recording(path).ticks
    assert [(t.quote_at_ns, t.bid, t.ask, t.bid_size) for t in ticks] == [
        (1, Decimal("223.1800"), Decimal("223.95"), Decimal(100)),
        (2, Decimal("223.1900"), Decimal("223.96"), Decimal(200)),
    ]


def test_float_price_columns_are_refused(tmp_path):
    path = tmp_path / "floats.parquet"
    pq.write_table(
        pa.table(
            {"ts_ns": [1], "symbol": ["AMZN"], "bid_px": [223.18], "bid_sz": [1], "ask_px": [223.2], "ask_sz": [1]}
        ),
        path,
    )
    with pytest.raises(RecordingError, match="floating point"):
        load_recording(path)


@pytest.mark.parametrize(
    "content, says",
    [
        ("ts_ns,symbol,bid_px,bid_sz,ask_px,ask_sz\n2,AMZN,1,1,2,1\n1,AMZN,1,1,2,1\n", "not in time order"),
        ("ts_ns,symbol,bid_px,bid_sz,ask_px,ask_sz\n1,AMZN,abc,1,2,1\n", "row 2"),
        ("ts_ns,symbol,bid_px,bid_sz,ask_px,ask_sz\n1,AMZN!,1,1,2,1\n", "row 2"),
        ("time,symbol,bid,ask\n1,AMZN,1,2\n", "no bid_size column"),
        ("ts_ns,symbol,bid_px,bid_sz,ask_px,ask_sz\n", "no ticks"),
    ],
)
def test_bad_recordings_say_what_is_wrong(tmp_path, content, says):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(RecordingError, match=says):
        load_recording(path)


def test_the_bundled_chain_is_a_snapshot_of_real_spy_contracts():
    chain = load_option_chain(BUNDLED_OPTION_CHAIN)
    assert chain.underlying == "SPY" and len(chain.contracts) == 7292
    assert (chain.underlying_tick.bid, chain.underlying_tick.ask) == (Decimal("450.81"), Decimal("450.83"))
    one_sided = [c for c in chain.contracts if c.tick.condition is Condition.EMPTY]
    assert len(chain.contracts) - len(one_sided) == 6504


def test_bundled_dividends_are_what_was_paid_per_share_at_the_time():
    paid = {(d.symbol, d.ex_date): d.cash_amount for d in load_dividends(BUNDLED_DIVIDENDS, BUNDLED_SPLITS)}
    assert paid[("AAPL", date(1990, 2, 16))] == Decimal("0.11")  # 0.000982 x 112 (four splits since)
    assert paid[("AAPL", date(2012, 8, 9))] == Decimal("2.65")  # 0.094643 x 28
    assert paid[("AAPL", date(2014, 8, 7))] == Decimal("0.47")  # 0.1175 x 4
    assert paid[("AAPL", date(2020, 11, 6))] == Decimal("0.205")  # after the last split: as published
    assert paid[("MSFT", date(2003, 2, 19))] == Decimal("0.08")
    assert paid[("SPY", date(1993, 3, 19))] == Decimal("0.213")
