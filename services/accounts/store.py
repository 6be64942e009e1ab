"""Accounts' tables (its only ones) and repository."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Index, Integer, MetaData, String, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.outbox import define_outbox_tables
from services.common.sqltypes import ExactDecimal, UtcDateTime

SERVICE = "accounts"


class Base(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = {Decimal: ExactDecimal(), datetime: UtcDateTime()}


class UserRow(Base):
    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tier: Mapped[str] = mapped_column(String(16))
    investor_profile: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AccountRow(Base):
    __tablename__ = "mbt_accounts"

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id"), unique=True)
    account_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    investor_profile: Mapped[str] = mapped_column(String(24))
    starting_cash: Mapped[Decimal]
    cash: Mapped[Decimal]
    # Bumped on every change of cash, positions or reservations (optimistic checks, audits).
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PositionRow(Base):
    __tablename__ = "mbt_positions"
    __table_args__ = (
        # At most one open position per symbol; closed ones stay as history.
        Index("ux_mbt_positions_open", "account_id", "symbol", unique=True,
              sqlite_where=text("closed_at IS NULL"), postgresql_where=text("closed_at IS NULL")),
    )

    position_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("mbt_accounts.account_id"), index=True)
    symbol: Mapped[str] = mapped_column(String(32))
    asset_class: Mapped[str] = mapped_column(String(16))
    # Signed: negative when short.
    qty: Mapped[Decimal]
    multiplier: Mapped[Decimal]
    avg_entry_price: Mapped[Decimal]
    realized_pl: Mapped[Decimal]
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class ReservationRow(Base):
    __tablename__ = "mbt_buying_power_reservations"

    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("mbt_accounts.account_id"), index=True)
    order_version: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Null while the hold is active.
    released_at: Mapped[datetime | None]


class EodSnapshotRow(Base):
    __tablename__ = "mbt_eod_snapshots"
    __table_args__ = (UniqueConstraint("account_id", "session_date"),)

    snapshot_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("mbt_accounts.account_id"))
    session_date: Mapped[date] = mapped_column(Date)
    cash: Mapped[Decimal]
    long_market_value: Mapped[Decimal]
    short_market_value: Mapped[Decimal]
    equity: Mapped[Decimal]
    realized_pl: Mapped[Decimal]
    unrealized_pl: Mapped[Decimal]
    created_at: Mapped[datetime]


OUTBOX = define_outbox_tables(Base.metadata, SERVICE)
