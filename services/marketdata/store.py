"""Market data's tables (its only ones): the tick archive and the corporate-actions cache."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, Index, Integer, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.outbox import define_outbox_tables
from services.common.sqltypes import ExactDecimal, UtcDateTime

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
    )

    tick_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                         autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(32))
    # Nanoseconds since the epoch, UTC (recorded feeds carry nanoseconds).
    quote_at_ns: Mapped[int] = mapped_column(BigInteger)
    sequence: Mapped[int] = mapped_column(BigInteger)
    bid_price: Mapped[Decimal]
    bid_size: Mapped[Decimal]
    ask_price: Mapped[Decimal]
    ask_size: Mapped[Decimal]
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


OUTBOX = define_outbox_tables(Base.metadata, SERVICE)
