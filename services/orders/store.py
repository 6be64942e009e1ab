"""Orders' tables (its only ones) and repository."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.outbox import define_outbox_tables
from services.common.sqltypes import ExactDecimal, UtcDateTime

SERVICE = "orders"


class Base(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = {Decimal: ExactDecimal(), datetime: UtcDateTime()}


class OrderRow(Base):
    __tablename__ = "mbt_orders"
    __table_args__ = (
        # Idempotency: one order per client_order_id per user (one account per user).
        UniqueConstraint("user_id", "client_order_id", name="ux_mbt_orders_client_order_id"),
        Index("ix_mbt_orders_user_created", "user_id", "created_at", "order_id"),
        Index("ix_mbt_orders_status_symbol", "status", "symbol"),
    )

    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[str] = mapped_column(String(40))
    client_order_id: Mapped[str] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(32))
    asset_class: Mapped[str] = mapped_column(String(16))
    side: Mapped[str] = mapped_column(String(8))
    qty: Mapped[Decimal]
    order_type: Mapped[str] = mapped_column(String(16))
    time_in_force: Mapped[str] = mapped_column(String(8))
    limit_price: Mapped[Decimal | None]
    stop_price: Mapped[Decimal | None]
    # Multi-leg options: [{"symbol", "side", "ratio"}]; empty for single-leg orders.
    legs: Mapped[list] = mapped_column(JSON)
    fill_preference: Mapped[str] = mapped_column(String(16))
    multiplier: Mapped[Decimal]
    status: Mapped[str] = mapped_column(String(16))
    reject_reason: Mapped[str] = mapped_column(String(64))
    filled_qty: Mapped[Decimal]
    filled_avg_price: Mapped[Decimal | None]
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    rejected_at: Mapped[datetime | None]
    triggered_at: Mapped[datetime | None]
    filled_at: Mapped[datetime | None]
    canceled_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class FillRow(Base):
    __tablename__ = "mbt_fills"

    # Deterministic (order id + tick): recording the same fill twice is a no-op.
    fill_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("mbt_orders.order_id"), index=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    qty: Mapped[Decimal]
    price: Mapped[Decimal]
    multiplier: Mapped[Decimal]
    bid_price: Mapped[Decimal]
    bid_size: Mapped[Decimal]
    ask_price: Mapped[Decimal]
    ask_size: Mapped[Decimal]
    quote_at: Mapped[datetime]
    quote_at_ns: Mapped[int] = mapped_column(BigInteger)
    quote_sequence: Mapped[int] = mapped_column(BigInteger)
    rule: Mapped[str] = mapped_column(String(64))
    # Multi-leg: per-leg price and NBBO.
    legs: Mapped[list] = mapped_column(JSON)
    filled_at: Mapped[datetime]


OUTBOX = define_outbox_tables(Base.metadata, SERVICE)
