"""Recorded market data read from files: NBBO ticks and trades (CSV or Parquet), an option
chain snapshot, and cash dividends.

Prices are parsed from their decimal text, never through a float: CSV columns are read
as strings and Parquet price columns must be strings or decimals (a floating-point
column is refused).
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import operator
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

from services.common.errors import DomainError
from services.common.instruments import SymbolSpec, parse_symbol
from services.marketdata.domain.bars import Trade
from services.marketdata.domain.calibration import ChainPoint
from services.marketdata.domain.reference import ChainContract, Dividend, OptionChain
from services.marketdata.domain.ticks import Source, Tick

REPO_DATA = Path(__file__).resolve().parents[2] / "data"
BUNDLED_QUOTES = REPO_DATA / "lobster_l1_quotes_AMZN_GOOG_2012-06-21.csv.gz"
BUNDLED_TRADES = REPO_DATA / "lobster_trades_AMZN_GOOG_2012-06-21.csv.gz"
BUNDLED_OPTION_CHAIN = REPO_DATA / "cboe_spy_option_chain_2023-09-14.csv.gz"
BUNDLED_OPTION_QUOTES = REPO_DATA / "cboe_option_quotes_1800s_A_VIX_2021-04-26.csv.gz"
# MBT_REPLAY_DATASET: the bundled (quotes, trades) each dataset replays by default.
DATASETS = {"lobster-2012": (BUNDLED_QUOTES, BUNDLED_TRADES), "cboe-options-2021": (BUNDLED_OPTION_QUOTES, None)}
BUNDLED_DIVIDENDS = REPO_DATA / "yahoo_dividends_AAPL_MSFT_SPY.csv"
BUNDLED_SPLITS = REPO_DATA / "splits_AAPL_MSFT.csv"

# Accepted column names, first match wins; the first two roles of each are time and symbol,
# the others decimal.
COLUMNS = {
    "time": ("ts_ns", "timestamp", "time", "t"),
    "symbol": ("symbol", "S"),
    "bid": ("bid_px", "bid", "bid_price", "bp"),
    "bid_size": ("bid_sz", "bid_size", "bs"),
    "ask": ("ask_px", "ask", "ask_price", "ap"),
    "ask_size": ("ask_sz", "ask_size", "as"),
}
TRADE_COLUMNS = {
    "time": COLUMNS["time"],
    "symbol": COLUMNS["symbol"],
    "price": ("price", "px", "p"),
    "size": ("size", "sz", "qty", "s"),
}
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


class RecordingError(ValueError):
    """A recorded file that cannot be replayed; the message names the file and the row."""


@dataclass
class Recording:
    """Ticks in feed order. ``ticks[i].sequence`` is the tick's 1-based rank among its
    symbol's ticks, which is what replayed sequence numbers are built from."""

    path: str
    ticks: list[Tick]
    times: list[int] = field(init=False)
    indices_by_symbol: dict[str, list[int]] = field(init=False)
    times_by_symbol: dict[str, list[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.times = [t.quote_at_ns for t in self.ticks]
        self.indices_by_symbol = {}
        for index, tick in enumerate(self.ticks):
            self.indices_by_symbol.setdefault(tick.symbol, []).append(index)
        self.times_by_symbol = {s: [self.times[i] for i in idx] for s, idx in self.indices_by_symbol.items()}

    @property
    def symbols(self) -> list[str]:
        return sorted(self.indices_by_symbol)

    def count(self, symbol: str) -> int:
        return len(self.indices_by_symbol.get(symbol, ()))

    def span(self, start_ns: int, end_ns: int) -> tuple[int, int]:
        """Global index range of ticks with start <= time < end."""
        return bisect_left(self.times, start_ns), bisect_left(self.times, end_ns)

    def last_before(self, symbol: str, end_ns: int) -> Tick | None:
        """The symbol's last tick with time <= end, if any."""
        times = self.times_by_symbol.get(symbol)
        if not times:
            return None
        position = bisect_right(times, end_ns) - 1
        return self.ticks[self.indices_by_symbol[symbol][position]] if position >= 0 else None


def _text(path: Path) -> io.TextIOBase:
    """The recording's text, gunzipped when it is gzipped; the caller closes it."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _column(header: list[str], role: str, path: Path, columns: dict[str, tuple[str, ...]]) -> int:
    for name in columns[role]:
        if name in header:
            return header.index(name)
    raise RecordingError(f"{path}: no {role} column (expected one of {', '.join(columns[role])})")


def parse_time_ns(raw: str) -> int:
    """Epoch nanoseconds from an integer string or an RFC 3339 time (nanoseconds kept)."""
    text = raw.strip()
    if text.isdigit():
        return int(text)
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(f"not a time: {raw!r}")
    whole, fraction, zone = match.groups()
    seconds = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone)).timestamp()
    return int(seconds) * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


class _Decimals:
    """Decimal parsing with interning: a day of quotes repeats few distinct prices."""

    def __init__(self) -> None:
        self._seen: dict[str, Decimal] = {}

    def required(self, raw: str, field: str) -> Decimal:
        """A value the row must have: ValueError naming ``field`` when it is empty."""
        value = self(raw)
        if value is None:
            raise ValueError(f"{field} is empty")
        return value

    def __call__(self, raw: str) -> Decimal | None:
        value = self._seen.get(raw)
        if value is None:
            if raw.strip() == "":
                return None
            value = Decimal(raw)
            if not value.is_finite():
                raise InvalidOperation(raw)
            self._seen[raw] = value
        return value


def _build(path: Path, rows) -> Recording:
    decimals = _Decimals()
    specs: dict[str, SymbolSpec] = {}
    ranks: Counter[str] = Counter()
    ticks = []
    for line, (raw_time, raw_symbol, bid, bid_size, ask, ask_size) in enumerate(rows, start=2):
        try:
            spec = specs.get(raw_symbol)
            if spec is None:
                spec = specs[raw_symbol] = parse_symbol(raw_symbol)
            symbol = spec.symbol
            ranks[symbol] += 1
            ticks.append(
                Tick.quote(
                    symbol,
                    parse_time_ns(raw_time),
                    ranks[symbol],
                    decimals(bid),
                    decimals(bid_size),
                    decimals(ask),
                    decimals(ask_size),
                    Source.REPLAY,
                    index=spec.is_index,
                )
            )
        except (ValueError, ArithmeticError, LookupError) as exc:
            raise RecordingError(f"{path}: row {line}: {exc}") from None
        except DomainError as exc:
            raise RecordingError(f"{path}: row {line}: {exc.message}") from None
    if not ticks:
        raise RecordingError(f"{path}: no ticks")
    previous = ticks[0].quote_at_ns
    for tick in ticks:
        if tick.quote_at_ns < previous:
            raise RecordingError(f"{path}: ticks are not in time order ({tick!r})")
        previous = tick.quote_at_ns
    return Recording(str(path), ticks)


def _csv_rows(path: Path, roles: dict[str, tuple[str, ...]]):
    with _text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise RecordingError(f"{path}: empty file")
        project = operator.itemgetter(*(_column(header, role, path, roles) for role in roles))
        for row in reader:
            yield project(row)


def _parquet_rows(path: Path, roles: dict[str, tuple[str, ...]]):
    import pyarrow.parquet as pq
    import pyarrow.types as pat

    table = pq.read_table(path)
    header = table.column_names
    columns = [header[_column(header, role, path, roles)] for role in roles]
    for name in columns[2:]:
        if pat.is_floating(table.schema.field(name).type):
            raise RecordingError(
                f"{path}: column {name} is floating point; prices and sizes must be decimal or "
                "string columns so they stay exact"
            )
    time_column = table.column(columns[0])
    if pat.is_timestamp(time_column.type):
        time_column = time_column.cast("int64")
        times = [str(v) for v in time_column.to_pylist()]
    else:
        times = [str(v) for v in time_column.to_pylist()]
    values = [[("" if v is None else str(v)) for v in table.column(name).to_pylist()] for name in columns[1:]]
    return zip(times, *values, strict=True)


def _rows(path: Path, roles: dict[str, tuple[str, ...]]):
    return _parquet_rows(path, roles) if path.suffix == ".parquet" else _csv_rows(path, roles)


def load_recording(path: Path) -> Recording:
    """The ticks of a CSV (optionally gzipped) or Parquet recording, cached per file version."""
    stat = path.stat()
    return _load_recording(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _load_recording(path: str, _mtime_ns: int, _size: int) -> Recording:
    source = Path(path)
    return _build(source, _rows(source, COLUMNS))


# -- trades ---------------------------------------------------------------------------


@dataclass
class TradeRecording:
    """Trades in feed order, indexed per symbol by time."""

    path: str
    trades: list[Trade]
    by_symbol: dict[str, list[Trade]] = field(init=False)
    times_by_symbol: dict[str, list[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_symbol = {}
        for trade in self.trades:
            self.by_symbol.setdefault(trade.symbol, []).append(trade)
        self.times_by_symbol = {s: [t.at_ns for t in trades] for s, trades in self.by_symbol.items()}


def load_trades(path: Path) -> TradeRecording:
    """The trades of a CSV (optionally gzipped) or Parquet file (timestamp, symbol, price,
    size; other columns ignored), cached per file version."""
    stat = path.stat()
    return _load_trades(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _load_trades(path: str, _mtime_ns: int, _size: int) -> TradeRecording:
    source = Path(path)
    decimals = _Decimals()
    symbols: dict[str, str] = {}
    trades = []
    previous = None
    for line, (raw_time, raw_symbol, price, size) in enumerate(_rows(source, TRADE_COLUMNS), start=2):
        try:
            symbol = symbols.get(raw_symbol)
            if symbol is None:
                symbol = symbols[raw_symbol] = parse_symbol(raw_symbol).symbol
            trade = Trade(
                symbol, parse_time_ns(raw_time), decimals.required(price, "price"), decimals.required(size, "size")
            )
        except (ValueError, ArithmeticError, LookupError) as exc:
            raise RecordingError(f"{source}: row {line}: {exc}") from None
        except DomainError as exc:
            raise RecordingError(f"{source}: row {line}: {exc.message}") from None
        if trade.price is None or trade.size is None or trade.price <= 0 or trade.size <= 0:
            raise RecordingError(f"{source}: row {line}: a trade needs a positive price and size")
        if previous is not None and trade.at_ns < previous:
            raise RecordingError(f"{source}: row {line}: trades are not in time order")
        previous = trade.at_ns
        trades.append(trade)
    if not trades:
        raise RecordingError(f"{source}: no trades")
    return TradeRecording(str(source), trades)


# -- option chain snapshot ------------------------------------------------------------


def load_option_chain(path: Path) -> OptionChain:
    """The Cboe chain snapshot (one row per contract, see data/SOURCES.md), served as a
    SNAPSHOT quote per contract as of its recording time."""
    return _load_option_chain(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _load_option_chain(path: str, _mtime_ns: int) -> OptionChain:
    source = Path(path)
    decimals = _Decimals()
    contracts = []
    underlying_tick = None
    with _text(source) as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                as_of = int(row["snapshot_ts_ns"])
                spec = parse_symbol(row["occ_symbol"])
                if underlying_tick is None:
                    underlying_tick = Tick.quote(
                        row["underlying"],
                        as_of,
                        1,
                        decimals(row["underlying_bid"]),
                        None,
                        decimals(row["underlying_ask"]),
                        None,
                        Source.SNAPSHOT,
                    )
                tick = Tick.quote(
                    spec.symbol, as_of, 1, decimals(row["bid"]), None, decimals(row["ask"]), None, Source.SNAPSHOT
                )
                contracts.append(ChainContract(spec, tick, decimals(row["open_interest"]), decimals(row["volume"])))
            except (KeyError, ValueError, ArithmeticError) as exc:
                raise RecordingError(f"{source}: row {line}: {exc}") from None
    if underlying_tick is None:
        raise RecordingError(f"{source}: no contracts")
    contracts.sort(key=lambda c: (c.spec.expiration, c.spec.strike, c.spec.option_type))
    return OptionChain(underlying_tick.symbol, underlying_tick, contracts, underlying_tick.quote_at_ns, Source.SNAPSHOT)


def load_chain_points(path: Path) -> list[ChainPoint]:
    """The chain snapshot's contracts as the calibration reads them (Cboe's implied volatility
    included), cached per file version."""
    return _load_chain_points(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _load_chain_points(path: str, _mtime_ns: int) -> list[ChainPoint]:
    source = Path(path)
    points = []
    with _text(source) as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                quote_date = datetime.fromisoformat(row["snapshot_local"]).date()
                spec = parse_symbol(row["occ_symbol"])
                if spec.option_type is None or spec.strike is None or spec.expiration is None:
                    raise ValueError(f"{spec.symbol} is not an option contract")
                underlying_mid = (Decimal(row["underlying_bid"]) + Decimal(row["underlying_ask"])) / 2
                points.append(
                    ChainPoint(
                        spec.option_type,
                        float(spec.strike),
                        spec.expiration,
                        float(row["bid"]),
                        float(row["ask"]),
                        float(row["iv"]),
                        float(underlying_mid),
                        quote_date,
                    )
                )
            except (KeyError, ValueError, ArithmeticError) as exc:
                raise RecordingError(f"{source}: row {line}: {exc}") from None
            except DomainError as exc:
                raise RecordingError(f"{source}: row {line}: {exc.message}") from None
    return points


# -- dividends ------------------------------------------------------------------------

AMOUNT_PLACES = Decimal("0.0001")


def load_dividends(path: Path, splits_path: Path | None) -> list[Dividend]:
    """Cash dividends per share as paid at the time. Yahoo's amounts are split-adjusted;
    each is multiplied back by the ratios of the splits after its ex-date (rounded to 4
    places, Yahoo's adjusted values being rounded to 6)."""
    splits: dict[str, list[tuple[date, int]]] = {}
    if splits_path is not None:
        with _text(splits_path) as handle:
            for row in csv.DictReader(handle):
                splits.setdefault(row["symbol"], []).append((date.fromisoformat(row["ex_date"]), int(row["ratio"])))
    dividends = []
    with _text(path) as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                ex_date = date.fromisoformat(row["ex_date"])
                amount = Decimal(row.get("cash_amount_usd_split_adjusted") or row["cash_amount"])
            except (KeyError, ValueError, ArithmeticError) as exc:
                raise RecordingError(f"{path}: row {line}: {exc}") from None
            factor = 1
            for split_date, ratio in splits.get(row["symbol"], ()):
                if split_date > ex_date:
                    factor *= ratio
            if factor > 1:
                amount = (amount * factor).quantize(AMOUNT_PLACES, ROUND_HALF_EVEN).normalize()
            dividends.append(Dividend(row["symbol"], ex_date, amount))
    return dividends


def utc_ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()) * 1_000_000_000
