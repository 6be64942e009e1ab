"""The matcher's proto <-> domain conversions for backtests."""

from __future__ import annotations

from google.protobuf.json_format import MessageToDict

from mbt.accounts.v1 import accounts_pb2
from mbt.matcher.v1 import matcher_pb2
from services.common.wire.conv import from_date, parse_decimal, to_timestamp
from services.common.errors import invalid_argument
from services.common.instruments import parse_symbol
from services.matcher.backtest.sources import BUNDLED, MARKETDATA
from services.matcher.backtest.runs import BacktestSpec
from services.matcher.store import FAILED, QUEUED, RUNNING, SUCCEEDED, BacktestRow, FileInfo

ACCOUNT_TYPES = {accounts_pb2.ACCOUNT_TYPE_CASH: "cash", accounts_pb2.ACCOUNT_TYPE_MARGIN: "margin"}
STATUSES = {QUEUED: matcher_pb2.BACKTEST_STATUS_QUEUED, RUNNING: matcher_pb2.BACKTEST_STATUS_RUNNING,
            SUCCEEDED: matcher_pb2.BACKTEST_STATUS_SUCCEEDED, FAILED: matcher_pb2.BACKTEST_STATUS_FAILED}
# Over the API a backtest reads the bundled quotes or the market-data service, never a
# file of the server's choosing.
API_DATA = ("", BUNDLED, MARKETDATA)
INPUT_FIELDS = ("strategy", "parameters", "script", "data", "from_date", "to_date", "symbols", "account_type",
                "starting_cash")


def spec_from_message(message: matcher_pb2.Backtest) -> BacktestSpec:
    """The run a Backtest message asks for; invalid_argument naming the field."""
    if message.data not in API_DATA:
        raise invalid_argument(f"data must be {BUNDLED} or {MARKETDATA}", "data")
    first, last = from_date(message.from_date, "from_date"), from_date(message.to_date, "to_date")
    if first is None or last is None:
        raise invalid_argument("from_date and to_date are required", "from_date" if first is None else "to_date")
    if message.account_type not in (0, *ACCOUNT_TYPES):
        raise invalid_argument("account_type has an unknown value", "account_type")
    script = None
    if message.HasField("script"):
        script = MessageToDict(message.script, preserving_proto_field_name=True)
        script.setdefault("steps", [])
    spec = BacktestSpec(
        first_day=first, last_day=last, strategy=message.strategy.strip(), params=dict(message.parameters),
        script=script, data=message.data or BUNDLED,
        symbols=tuple(parse_symbol(s, f"symbols[{i}]").symbol for i, s in enumerate(message.symbols)),
        account_type=ACCOUNT_TYPES.get(message.account_type, ""),
        starting_cash=parse_decimal(message.starting_cash, "starting_cash"))
    spec.validate()
    return spec


def inputs_of(message: matcher_pb2.Backtest) -> matcher_pb2.Backtest:
    """Only what the caller may set (output fields dropped), as stored."""
    kept = matcher_pb2.Backtest()
    for name in INPUT_FIELDS:
        field = message.DESCRIPTOR.fields_by_name[name]
        if field.message_type is not None and not field.is_repeated and not message.HasField(name):
            continue
        if field.is_repeated:
            getattr(kept, name).MergeFrom(getattr(message, name))
        elif field.message_type is not None:
            getattr(kept, name).CopyFrom(getattr(message, name))
        else:
            setattr(kept, name, getattr(message, name))
    return kept


def backtest_to_proto(row: BacktestRow, files: list[FileInfo]) -> matcher_pb2.Backtest:
    message = matcher_pb2.Backtest()
    message.ParseFromString(row.parameters)
    message.backtest_id = row.backtest_id
    message.status = STATUSES[row.status]
    message.progress_percent = row.progress_percent
    message.error = row.error
    message.created_at.CopyFrom(to_timestamp(row.created_at))
    for name in ("started_at", "finished_at"):
        value = getattr(row, name)
        if value is not None:
            getattr(message, name).CopyFrom(to_timestamp(value))
    message.statistics.extend(matcher_pb2.BacktestStatistic(name=n, value=v) for n, v in row.statistics)
    message.files.extend(matcher_pb2.BacktestFile(name=f.name, content_type=f.content_type, size_bytes=f.size_bytes)
                         for f in files)
    message.ticks, message.orders, message.fills = row.ticks, row.orders, row.fills
    return message
