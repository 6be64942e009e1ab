"""The HTML report of a backtest: one self-contained page (no scripts, no external
resources) with the configuration, the statistics, and PNG charts embedded as base64 —
the equity curve, the drawdown, and the fills on each symbol's price. Charts are drawn
with matplotlib's Agg canvas (no pyplot, no global backend) with the PNG metadata
emptied, so identical inputs give identical bytes."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.typing import RcKeyType

from services.common.wire.conv import decimal_str
from services.matcher.backtest.engine import BacktestResult
from services.matcher.backtest.feed import Feed
from services.matcher.backtest.stats import Statistics

MAX_POINTS = 4000
MAX_FILL_ROWS = 200
GAP_NS = 3600 * 1_000_000_000
STYLE: dict[RcKeyType, Any] = {
    "figure.dpi": 100,
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "path.simplify": True,
    "svg.hashsalt": "mbt",
    "timezone": "UTC",
}
CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}"
    "th{background:#f4f4f4}img{max-width:100%}"
)


def render(result: BacktestResult, stats: Statistics, feed: Feed) -> bytes:
    config = result.config
    setup = [
        ("strategy", result.strategy),
        ("parameters", ", ".join(f"{k}={v}" for k, v in result.params.items()) or "none"),
        ("data", result.feed),
        ("from", _utc(config.start_ns)),
        ("to", _utc(config.end_ns)),
        ("account", f"{config.account_type}, starting cash ${config.starting_cash:,}"),
        ("path", config.mode),
        ("ticks in the window", f"{result.ticks:,}"),
        ("orders", f"{len(result.orders):,}"),
        ("fills", f"{len(result.fills):,}"),
    ]
    charts = [("Equity", _equity_chart(result)), ("Drawdown", _drawdown_chart(result))]
    charts += [(f"Fills on {symbol}", _fills_chart(result, feed, symbol)) for symbol in _traded(result, feed)]
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Backtest: {html.escape(result.strategy)}"
        f"</title><style>{CSS}</style></head><body><h1>Backtest: {html.escape(result.strategy)}</h1>",
        "<h2>Configuration</h2>",
        _table(("", ""), setup, header=False),
        "<h2>Statistics</h2>",
        _table(("statistic", "value"), stats.rows(), header=True),
        "<p>Daily returns from the start and each regular close; Sharpe and Sortino annualized with 252 "
        "trading days and a risk-free rate of 0; a trade is a fill that reduces or closes a position; "
        "MBT charges no fees.</p>",
    ]
    for title, png in charts:
        parts.append(
            f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
            f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        )
    rows = [
        (f.fill_id, _utc(f.quote_at_ns), f.symbol, f.side, decimal_str(f.qty), decimal_str(f.price, 2), f.rule)
        for f in result.fills[:MAX_FILL_ROWS]
    ]
    shown = "" if len(result.fills) <= MAX_FILL_ROWS else f" (the first {MAX_FILL_ROWS}; all are in fills.csv)"
    parts += [
        f"<h2>Fills{shown}</h2>",
        _table(("fill", "quote time", "symbol", "side", "qty", "price", "rule"), rows, header=True),
        "</body></html>",
    ]
    return "\n".join(parts).encode("utf-8")


def _table(heads: Sequence[str], rows: Sequence[Sequence[str]], *, header: bool) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in heads) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _utc(ns: int) -> str:
    return str(np.datetime64(ns, "ns")) + "Z"


def _times(values: Sequence[int]) -> np.ndarray:
    return np.asarray(values, dtype="datetime64[ns]")


def _png(draw) -> bytes:
    with rc_context(STYLE):
        figure = Figure(figsize=(10, 3.6))
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        draw(axes)
        figure.autofmt_xdate()
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _equity_chart(result: BacktestResult) -> bytes:
    times = _times([p.at_ns for p in result.equity])
    values = [float(p.equity) for p in result.equity]

    def draw(axes):
        axes.plot(times, values, marker="o", color="#1f5fa8")
        axes.set_ylabel("equity ($)")

    return _png(draw)


def _drawdown_chart(result: BacktestResult) -> bytes:
    times = _times([p.at_ns for p in result.equity])
    values = np.asarray([float(p.equity) for p in result.equity])
    drawdown = (values / np.maximum.accumulate(values) - 1) * 100

    def draw(axes):
        axes.fill_between(times, drawdown, 0, color="#c0392b", alpha=0.4)
        axes.plot(times, drawdown, color="#c0392b")
        axes.set_ylabel("drawdown (%)")

    return _png(draw)


def _traded(result: BacktestResult, feed: Feed) -> list[str]:
    return sorted({f.symbol for f in result.fills} & set(feed.columns))


def _fills_chart(result: BacktestResult, feed: Feed, symbol: str) -> bytes:
    columns = feed.columns[symbol]
    first = columns.first_at_or_after(result.config.start_ns)
    usable = np.flatnonzero(columns.tradable[first:]) + first
    step = max(1, len(usable) // MAX_POINTS)
    sample = usable[::step]
    mids = (columns.bid[sample] + columns.ask[sample]) / (2 * columns.scale)
    times = columns.times[sample].astype("datetime64[ns]")
    gaps = np.flatnonzero(np.diff(columns.times[sample]) > GAP_NS) + 1  # no line across a night
    mids, times = np.insert(mids, gaps, np.nan), np.insert(times, gaps, np.datetime64("NaT"))
    fills = [f for f in result.fills if f.symbol == symbol]

    def draw(axes):
        axes.plot(times, mids, color="#555555", linewidth=0.8, label="mid")
        for side, marker, color in (("buy", "^", "#1e8449"), ("sell", "v", "#c0392b")):
            chosen = [f for f in fills if f.side == side]
            if chosen:
                axes.scatter(
                    _times([f.quote_at_ns for f in chosen]),
                    [float(f.price) for f in chosen],
                    marker=marker,
                    color=color,
                    s=28,
                    zorder=3,
                    label=side,
                )
        axes.set_ylabel(f"{symbol} ($)")
        axes.legend(loc="best")

    return _png(draw)
