"""A backtest's results as files: orders, fills, the ledger and the daily equity curve
as Parquet and CSV, the statistics, and the HTML report. The same inputs give the same
bytes (no wall-clock time, no random ordering, fixed metadata)."""

from __future__ import annotations

import csv
import io
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from services.common.wire.conv import decimal_str
from services.matcher.backtest.engine import BacktestResult
from services.matcher.backtest.stats import Statistics, exposure, statistics

DECIMAL = pa.decimal128(38, 10)
TIME = pa.timestamp("ns", tz="UTC")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # text, int, decimal, time (epoch ns, 0 = none), date
    value: Callable[[Any], Any]  # a row's value, of the type ``kind`` names


def _columns(spec: Sequence[tuple[str, str]]) -> list[Column]:
    return [Column(name, kind, operator.attrgetter(name)) for name, kind in spec]


ORDER_COLUMNS = _columns(
    [
        ("order_id", "text"),
        ("client_order_id", "text"),
        ("symbol", "text"),
        ("side", "text"),
        ("qty", "decimal"),
        ("order_type", "text"),
        ("time_in_force", "text"),
        ("limit_price", "decimal"),
        ("stop_price", "decimal"),
        ("collar_price", "decimal"),
        ("status", "text"),
        ("reject_reason", "text"),
        ("cancel_reason", "text"),
        ("filled_qty", "decimal"),
        ("filled_avg_price", "decimal"),
        ("version", "int"),
        ("created_ns", "time"),
        ("accepted_ns", "time"),
        ("triggered_ns", "time"),
        ("replaced_ns", "time"),
        ("filled_ns", "time"),
        ("canceled_ns", "time"),
        ("expired_ns", "time"),
        ("expires_ns", "time"),
    ]
)
FILL_COLUMNS = _columns(
    [
        ("fill_id", "text"),
        ("order_id", "text"),
        ("symbol", "text"),
        ("side", "text"),
        ("qty", "decimal"),
        ("price", "decimal"),
        ("bid_price", "decimal"),
        ("bid_size", "decimal"),
        ("ask_price", "decimal"),
        ("ask_size", "decimal"),
        ("quote_at_ns", "time"),
        ("quote_sequence", "int"),
        ("rule", "text"),
        ("filled_ns", "time"),
    ]
)
LEDGER_COLUMNS = _columns(
    [
        ("entry_id", "text"),
        ("kind", "text"),
        ("fill_id", "text"),
        ("order_id", "text"),
        ("symbol", "text"),
        ("side", "text"),
        ("qty", "decimal"),
        ("price", "decimal"),
        ("multiplier", "decimal"),
        ("cash_delta", "decimal"),
        ("realized_pl", "decimal"),
        ("cash_after", "decimal"),
        ("occurred_at_ns", "time"),
    ]
)
EQUITY_COLUMNS = _columns(
    [
        ("day", "date"),
        ("at_ns", "time"),
        ("cash", "decimal"),
        ("long_market_value", "decimal"),
        ("short_market_value", "decimal"),
        ("equity", "decimal"),
    ]
)


def backtest_statistics(result: BacktestResult) -> Statistics:
    sessions = [(s.open_ns, s.close_ns) for _, s in result.sessions]
    return statistics(
        [(p.day, p.equity) for p in result.equity],
        _realized(result.ledger),
        len(result.fills),
        exposure(result.exposure, sessions),
    )


def _realized(ledger) -> list[Decimal | None]:
    """Per fill or option expiration leg (the contracts closed, the shares delivered), the
    P&L it realized when it reduced or closed a position (a trade), else None."""
    held: dict[str, Decimal] = {}
    realized = []
    for entry in ledger:
        if entry.kind == "opening":
            continue
        before = held.get(entry.symbol, Decimal(0))
        signed = entry.qty if entry.side == "buy" else -entry.qty
        held[entry.symbol] = before + signed
        realized.append(entry.realized_pl if before and (before > 0) != (signed > 0) else None)
    return realized


def tables(result: BacktestResult, stats: Statistics) -> dict[str, tuple[list[Column], list]]:
    return {
        "orders": (ORDER_COLUMNS, result.orders),
        "fills": (FILL_COLUMNS, result.fills),
        "ledger": (LEDGER_COLUMNS, result.ledger),
        "equity": (EQUITY_COLUMNS, result.equity),
        "statistics": (
            [Column("statistic", "text", lambda r: r[0]), Column("value", "text", lambda r: r[1])],
            stats.rows(),
        ),
    }


def parquet_bytes(columns: list[Column], rows: list) -> bytes:
    arrays = {c.name: _arrow(c, [c.value(r) for r in rows]) for c in columns}
    buffer = io.BytesIO()
    pq.write_table(pa.table(arrays), buffer, compression="zstd", write_statistics=False)
    return buffer.getvalue()


def _arrow(column: Column, values: list) -> pa.Array:
    if column.kind == "decimal":
        return pa.array(values, type=DECIMAL)
    if column.kind == "time":
        return pa.array([v or None for v in values], type=pa.int64()).cast(TIME)
    if column.kind == "int":
        return pa.array(values, type=pa.int64())
    if column.kind == "date":
        return pa.array(values, type=pa.date32())
    return pa.array(values, type=pa.string())


def csv_bytes(columns: list[Column], rows: list) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.name for c in columns])
    for row in rows:
        writer.writerow([_text(c.kind, c.value(row)) for c in columns])
    return buffer.getvalue().encode("utf-8")


def _text(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "decimal":
        return decimal_str(value)
    if kind == "time":
        return _rfc3339(value) if value else ""
    if kind == "date":
        return value.isoformat()
    return str(value)


def _rfc3339(ns: int) -> str:
    seconds, fraction = divmod(ns, 1_000_000_000)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


def files(result: BacktestResult, report_html: bytes, stats: Statistics) -> dict[str, bytes]:
    """Every result file by name, in a fixed order."""
    out: dict[str, bytes] = {}
    for name, (columns, rows) in tables(result, stats).items():
        out[f"{name}.csv"] = csv_bytes(columns, rows)
        out[f"{name}.parquet"] = parquet_bytes(columns, rows)
    out["report.html"] = report_html
    return out


CONTENT_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet", "html": "text/html"}


def content_type(name: str) -> str:
    return CONTENT_TYPES[name.rsplit(".", 1)[1]]
