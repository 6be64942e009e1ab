"""Market data's tables (its only ones) and their repository: the tick archive, the
corporate-actions cache and the replay clock's checkpoint."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, Index, Integer, MetaData, String, UniqueConstraint, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import Database
from services.common.outbox import define_outbox_tables
from services.common.sqltypes import ExactDecimal, UtcDateTime
from services.marketdata.domain.reference import Dividend
from services.marketdata.domain.ticks import Condition, Source, Tick

SERVICE = "marketdata"


class Base(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = {Decimal: ExactDecimal(), datetime: UtcDateTime()}


class ArchivedTickRow(Base):
    """A quote as served to the matcher, kept so a fill can be explained and replayed."""

    __tablename__ = "mbt_tick_archive"
    __table_args__ = (
        UniqueConstraint("symbol", "sequence", name="ux_mbt_tick_archive_symbol_sequence"),
        Index("ix_mbt_tick_archive_symbol_time", "symbol", "quote_at_ns"),
        Index("ix_mbt_tick_archive_time", "quote_at_ns"),
    )

    tick_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                         autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(32))
    # Nanoseconds since the epoch, UTC (recorded feeds carry nanoseconds).
    quote_at_ns: Mapped[int] = mapped_column(BigInteger)
    sequence: Mapped[int] = mapped_column(BigInteger)
    bid_price: Mapped[Decimal | None]
    bid_size: Mapped[Decimal | None]
    ask_price: Mapped[Decimal | None]
    ask_size: Mapped[Decimal | None]
    condition: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    archived_at: Mapped[datetime]


class CorporateActionRow(Base):
    __tablename__ = "mbt_corporate_actions"
    __table_args__ = (UniqueConstraint("symbol", "action_type", "ex_date", name="ux_mbt_corporate_actions"),)

    action_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                           autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(32), index=True)
    action_type: Mapped[str] = mapped_column(String(16))
    ex_date: Mapped[date] = mapped_column(Date)
    record_date: Mapped[date | None] = mapped_column(Date)
    pay_date: Mapped[date | None] = mapped_column(Date)
    cash_amount: Mapped[Decimal]
    source: Mapped[str] = mapped_column(String(32))
    fetched_at: Mapped[datetime]


class ClockCheckpointRow(Base):
    """Where the replay clock was, so a restarted service never moves time backwards."""

    __tablename__ = "mbt_marketdata_clock"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    simulated_at_ns: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


OUTBOX = define_outbox_tables(Base.metadata, SERVICE)
CASH_DIVIDEND = "cash_dividend"


def _insert(db: Database, table):
    return (sqlite.insert(table) if db.is_sqlite else postgresql.insert(table))


def _tick(row) -> Tick:
    return Tick(row.symbol, row.quote_at_ns, row.sequence, row.bid_price, row.bid_size, row.ask_price, row.ask_size,
                Condition(row.condition), Source(row.source))


class MarketDataStore:
    """Blocking repository calls; servicers run them through ``Database.run``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- tick archive ---------------------------------------------------------------

    def archive(self, ticks: Iterable[Tick], archived_at: datetime) -> None:
        """Insert ticks; one already archived (same symbol and sequence) is kept as it was."""
        rows = [{"symbol": t.symbol, "quote_at_ns": t.quote_at_ns, "sequence": t.sequence, "bid_price": t.bid,
                 "bid_size": t.bid_size, "ask_price": t.ask, "ask_size": t.ask_size, "condition": t.condition.value,
                 "source": t.source.value, "archived_at": archived_at} for t in ticks]
        if not rows:
            return
        statement = _insert(self.db, ArchivedTickRow.__table__).on_conflict_do_nothing(
            index_elements=["symbol", "sequence"])
        with self.db.transaction() as session:
            session.execute(statement, rows)

    def archived_ticks(self, symbol: str, from_ns: int | None, to_ns: int | None, after_sequence: int,
                       limit: int) -> list[Tick]:
        table = ArchivedTickRow.__table__
        query = (select(table).where(table.c.symbol == symbol).where(table.c.sequence > after_sequence)
                 .order_by(table.c.sequence).limit(limit))
        if from_ns is not None:
            query = query.where(table.c.quote_at_ns >= from_ns)
        if to_ns is not None:
            query = query.where(table.c.quote_at_ns <= to_ns)
        with self.db.snapshot() as session:
            return [_tick(row) for row in session.execute(query)]

    def purge_ticks(self, before_ns: int) -> int:
        table = ArchivedTickRow.__table__
        with self.db.transaction() as session:
            return session.execute(delete(table).where(table.c.quote_at_ns < before_ns)).rowcount

    # -- corporate actions ----------------------------------------------------------

    def save_dividends(self, dividends: Iterable[Dividend], source: str, fetched_at: datetime) -> None:
        """Insert or refresh (same symbol and ex-date) cash dividends."""
        rows = [{"symbol": d.symbol, "action_type": CASH_DIVIDEND, "ex_date": d.ex_date, "record_date": d.record_date,
                 "pay_date": d.pay_date, "cash_amount": d.cash_amount, "source": source, "fetched_at": fetched_at}
                for d in dividends]
        if not rows:
            return
        statement = _insert(self.db, CorporateActionRow.__table__)
        statement = statement.on_conflict_do_update(
            index_elements=["symbol", "action_type", "ex_date"],
            set_={name: statement.excluded[name] for name in ("record_date", "pay_date", "cash_amount", "source",
                                                              "fetched_at")})
        with self.db.transaction() as session:
            session.execute(statement, rows)

    def dividends(self, symbols: list[str], from_date: date, to_date: date) -> list[Dividend]:
        table = CorporateActionRow.__table__
        query = (select(table).where(table.c.action_type == CASH_DIVIDEND).where(table.c.symbol.in_(symbols))
                 .where(table.c.ex_date >= from_date).where(table.c.ex_date <= to_date)
                 .order_by(table.c.ex_date, table.c.symbol))
        with self.db.snapshot() as session:
            return [Dividend(r.symbol, r.ex_date, r.cash_amount, r.record_date, r.pay_date)
                    for r in session.execute(query)]

    # -- clock checkpoint -----------------------------------------------------------

    def load_clock(self, name: str) -> int | None:
        table = ClockCheckpointRow.__table__
        with self.db.snapshot() as session:
            return session.execute(select(table.c.simulated_at_ns).where(table.c.name == name)).scalar()

    def save_clock(self, name: str, simulated_at_ns: int, updated_at: datetime) -> None:
        statement = _insert(self.db, ClockCheckpointRow.__table__).values(
            name=name, simulated_at_ns=simulated_at_ns, updated_at=updated_at)
        statement = statement.on_conflict_do_update(
            index_elements=["name"], set_={"simulated_at_ns": simulated_at_ns, "updated_at": updated_at})
        with self.db.transaction() as session:
            session.execute(statement)
