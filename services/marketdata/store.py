"""Market data's tables (its only ones) and their repository: the tick archive, the
corporate-actions cache and the replay clock's checkpoint."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, Index, Integer, MetaData, String, Table, Text, UniqueConstraint, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.messaging.outbox import define_outbox_tables
from services.common.persistence.db import Database, changed
from services.common.persistence.sqltypes import TYPE_ANNOTATION_MAP, sqlite_decimal
from services.common.persistence.user_data import UserTables
from services.common.wire.conv import datetime_from_ns, datetime_to_ns
from services.marketdata.clockfeed import ClockLine
from services.marketdata.domain.option_model import ModelInputs
from services.marketdata.domain.reference import Dividend
from services.marketdata.domain.ticks import Condition, Source, Tick

SERVICE = "marketdata"


class Base(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = TYPE_ANNOTATION_MAP


class ArchivedTickRow(Base):
    """A quote as served to the matcher, kept so a fill can be explained and replayed.

    The busiest table of the service: times are integer nanoseconds and it has one
    index besides its key, so archiving keeps up with the feed."""

    __tablename__ = "mbt_tick_archive"
    __table_args__ = (Index("ix_mbt_tick_archive_symbol_time", "symbol", "quote_at_ns"),)

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Strictly increasing per symbol (see the README's market data section).
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Nanoseconds since the epoch, UTC (recorded feeds carry nanoseconds).
    quote_at_ns: Mapped[int] = mapped_column(BigInteger)
    bid_price: Mapped[Decimal | None]
    bid_size: Mapped[Decimal | None]
    ask_price: Mapped[Decimal | None]
    ask_size: Mapped[Decimal | None]
    condition: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    # When it was archived, simulated time in nanoseconds.
    archived_at_ns: Mapped[int] = mapped_column(BigInteger)
    # A model quote's inputs (option_model.ModelInputs) as JSON of decimal strings; null otherwise.
    model_inputs: Mapped[str | None] = mapped_column(Text)


class CorporateActionRow(Base):
    __tablename__ = "mbt_corporate_actions"
    __table_args__ = (UniqueConstraint("symbol", "action_type", "ex_date", name="ux_mbt_corporate_actions"),)

    action_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    symbol: Mapped[str] = mapped_column(String(32), index=True)
    action_type: Mapped[str] = mapped_column(String(16))
    ex_date: Mapped[date] = mapped_column(Date)
    record_date: Mapped[date | None] = mapped_column(Date)
    pay_date: Mapped[date | None] = mapped_column(Date)
    cash_amount: Mapped[Decimal]
    source: Mapped[str] = mapped_column(String(32))
    fetched_at: Mapped[datetime]


class ClockCheckpointRow(Base):
    """The replay clock's current line, simulated = simulated_at + (wall - wall_at) x speed,
    written before followers are told of it, so a restarted service continues it."""

    __tablename__ = "mbt_marketdata_clock"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    simulated_at_ns: Mapped[int] = mapped_column(BigInteger)
    # When it was written (wall time).
    updated_at: Mapped[datetime]
    # Wall time of the anchor, nanoseconds; with speed, null in rows written before lines
    # were kept (they resume at simulated_at).
    wall_at_ns: Mapped[int | None] = mapped_column(BigInteger)
    speed: Mapped[Decimal | None]


OUTBOX = define_outbox_tables(Base.metadata, SERVICE)
# GDPR export and erasure (services.common.persistence.user_data): market events name no
# user, but the outbox has the column every service's has.
USER_TABLES = UserTables(SERVICE, OUTBOX.user_tables())
CASH_DIVIDEND = "cash_dividend"
ARCHIVE_COLUMNS = (
    "symbol",
    "sequence",
    "quote_at_ns",
    "bid_price",
    "bid_size",
    "ask_price",
    "ask_size",
    "condition",
    "source",
    "archived_at_ns",
    "model_inputs",
)


def _insert(db: Database, table):
    return sqlite.insert(table) if db.is_sqlite else postgresql.insert(table)


def _model_json(inputs: ModelInputs | None) -> str | None:
    if inputs is None:
        return None
    return json.dumps({name: str(value) for name, value in dataclasses.asdict(inputs).items()}, sort_keys=True)


def _model_inputs(text: str | None) -> ModelInputs | None:
    if text is None:
        return None
    raw = json.loads(text)
    return ModelInputs(
        raw["underlying_symbol"],
        int(raw["underlying_sequence"]),
        underlying_price=Decimal(raw["underlying_price"]),
        volatility=Decimal(raw["volatility"]),
        risk_free_rate=Decimal(raw["risk_free_rate"]),
        dividend_yield=Decimal(raw["dividend_yield"]),
        time_to_expiry=Decimal(raw["time_to_expiry"]),
        model_price=Decimal(raw["model_price"]),
        half_spread=Decimal(raw["half_spread"]),
        model=raw["model"],
    )


def _tick(row) -> Tick:
    tick = Tick(
        row.symbol,
        row.quote_at_ns,
        row.sequence,
        row.bid_price,
        row.bid_size,
        row.ask_price,
        row.ask_size,
        Condition(row.condition),
        Source(row.source),
    )
    tick.model = _model_inputs(row.model_inputs)
    return tick


class MarketDataStore:
    """The tick archive, corporate actions and the clock's saved line (each call its own
    transaction)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        marker = "?" if db.is_sqlite else "%s"
        self._archive_sql = (
            f"INSERT INTO {ArchivedTickRow.__tablename__} ({', '.join(ARCHIVE_COLUMNS)}) "
            f"VALUES ({', '.join([marker] * len(ARCHIVE_COLUMNS))}) "
            "ON CONFLICT (symbol, sequence) DO NOTHING"
        )

    # -- tick archive ---------------------------------------------------------------

    async def archive(self, ticks: Iterable[Tick], archived_at_ns: int) -> None:
        """Insert ticks; one already archived (same symbol and sequence) is kept as it was.

        The busiest write of the service goes straight to the driver's executemany, with
        decimals in ExactDecimal's representation, so it costs the streams as little as
        possible."""
        if self.db.is_sqlite:

            def store(value):
                return None if value is None else sqlite_decimal(value)
        else:

            def store(value):
                return value

        rows = [
            (
                t.symbol,
                t.sequence,
                t.quote_at_ns,
                store(t.bid),
                store(t.bid_size),
                store(t.ask),
                store(t.ask_size),
                t.condition.value,
                t.source.value,
                archived_at_ns,
                _model_json(t.model),
            )
            for t in ticks
        ]
        if not rows:
            return
        async with self.db.writing() as session:
            await (await session.connection()).exec_driver_sql(self._archive_sql, rows)

    async def archived_ticks(
        self, symbol: str, from_ns: int | None, to_ns: int | None, after_sequence: int, limit: int
    ) -> list[Tick]:
        table = ArchivedTickRow.__table__
        query = (
            select(table)
            .where(table.c.symbol == symbol)
            .where(table.c.sequence > after_sequence)
            .order_by(table.c.sequence)
            .limit(limit)
        )
        if from_ns is not None:
            query = query.where(table.c.quote_at_ns >= from_ns)
        if to_ns is not None:
            query = query.where(table.c.quote_at_ns <= to_ns)
        async with self.db.reading() as session:
            return [_tick(row) for row in await session.execute(query)]

    async def archived_symbols(self) -> set[str]:
        table = ArchivedTickRow.__table__
        async with self.db.reading() as session:
            return set((await session.execute(select(table.c.symbol).distinct())).scalars())

    async def purge_ticks(self, symbols: Iterable[str], before_ns: int) -> int:
        """Delete the symbols' ticks older than ``before_ns`` (one index range per symbol)."""
        table = ArchivedTickRow.__table__
        if not isinstance(table, Table):
            raise TypeError("ArchivedTickRow is mapped to a table")
        deleted = 0
        async with self.db.writing() as session:
            for symbol in symbols:
                deleted += changed(
                    await session.execute(
                        delete(table).where(table.c.symbol == symbol).where(table.c.quote_at_ns < before_ns)
                    )
                ).rowcount
        return deleted

    # -- corporate actions ----------------------------------------------------------

    async def save_dividends(self, dividends: Iterable[Dividend], source: str, fetched_at: datetime) -> None:
        """Insert or refresh (same symbol and ex-date) cash dividends."""
        rows = [
            {
                "symbol": d.symbol,
                "action_type": CASH_DIVIDEND,
                "ex_date": d.ex_date,
                "record_date": d.record_date,
                "pay_date": d.pay_date,
                "cash_amount": d.cash_amount,
                "source": source,
                "fetched_at": fetched_at,
            }
            for d in dividends
        ]
        if not rows:
            return
        statement = _insert(self.db, CorporateActionRow.__table__)
        statement = statement.on_conflict_do_update(
            index_elements=["symbol", "action_type", "ex_date"],
            set_={
                name: statement.excluded[name]
                for name in ("record_date", "pay_date", "cash_amount", "source", "fetched_at")
            },
        )
        async with self.db.writing() as session:
            await session.execute(statement, rows)

    async def dividends(self, symbols: list[str], from_date: date, to_date: date) -> list[Dividend]:
        table = CorporateActionRow.__table__
        query = (
            select(table)
            .where(table.c.action_type == CASH_DIVIDEND)
            .where(table.c.symbol.in_(symbols))
            .where(table.c.ex_date >= from_date)
            .where(table.c.ex_date <= to_date)
            .order_by(table.c.ex_date, table.c.symbol)
        )
        async with self.db.reading() as session:
            return [
                Dividend(r.symbol, r.ex_date, r.cash_amount, r.record_date, r.pay_date)
                for r in await session.execute(query)
            ]

    # -- clock checkpoint -----------------------------------------------------------

    async def load_clock(self, name: str) -> ClockLine | None:
        table = ClockCheckpointRow.__table__
        async with self.db.reading() as session:
            row = (await session.execute(select(table).where(table.c.name == name))).one_or_none()
        if row is None:
            return None
        if row.wall_at_ns is None or row.speed is None:
            return ClockLine(datetime_from_ns(row.simulated_at_ns), row.updated_at, Decimal(0))
        return ClockLine(datetime_from_ns(row.simulated_at_ns), datetime_from_ns(row.wall_at_ns), row.speed)

    async def save_clock(self, name: str, line: ClockLine) -> None:
        values = {
            "simulated_at_ns": datetime_to_ns(line.simulated_at),
            "wall_at_ns": datetime_to_ns(line.wall_at),
            "speed": line.speed,
            "updated_at": line.wall_at,
        }
        statement = _insert(self.db, ClockCheckpointRow.__table__).values(name=name, **values)
        statement = statement.on_conflict_do_update(index_elements=["name"], set_=values)
        async with self.db.writing() as session:
            await session.execute(statement)
