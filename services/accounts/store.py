"""Accounts' tables (its only ones) and repository."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Index, Integer, MetaData, String, UniqueConstraint, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.accounts.domain import Hold, OrderRequest, Position, Side, VersionHold
from services.common.messaging.outbox import define_outbox_tables
from services.common.persistence.sqltypes import TYPE_ANNOTATION_MAP

SERVICE = "accounts"


class Base(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = TYPE_ANNOTATION_MAP


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

    def as_position(self) -> Position:
        return Position(self.symbol, self.qty, self.avg_entry_price, self.multiplier, self.realized_pl)


class ReservationRow(Base):
    """The buying power one version of an order holds, bound to that version's terms. While
    a replace is pending an order has two active rows (see ``effective_hold``)."""

    __tablename__ = "mbt_buying_power_reservations"

    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("mbt_accounts.account_id"), index=True)
    symbol: Mapped[str] = mapped_column(String(32))
    # The terms the hold was priced for; null only on holds taken before terms were kept.
    side: Mapped[str | None] = mapped_column(String(8))
    order_qty: Mapped[Decimal | None]
    price_bound: Mapped[Decimal | None]
    multiplier: Mapped[Decimal | None]
    amount: Mapped[Decimal]
    # Shares held by a sell that closes a position (so they cannot be sold twice).
    qty: Mapped[Decimal]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Null while the hold is active.
    released_at: Mapped[datetime | None]
    # filled, canceled, expired, superseded (a newer version took over) or abandoned.
    release_reason: Mapped[str] = mapped_column(String(16), default="", server_default="")

    def terms(self) -> OrderRequest | None:
        if self.side is None or self.order_qty is None or self.price_bound is None or self.multiplier is None:
            return None
        return OrderRequest(self.symbol, Side(self.side), self.order_qty, self.price_bound, self.multiplier)

    def as_version_hold(self) -> VersionHold:
        return VersionHold(self.order_version, self.terms(), Hold(self.amount, self.qty), self.released_at is None,
                           self.release_reason)


class LedgerEntryRow(Base):
    """Every cash movement of an account, once: the opening deposit and each applied fill.
    Cash always equals the sum of cash_delta; positions replay from the fill entries."""

    __tablename__ = "mbt_account_ledger"
    __table_args__ = (Index("ix_mbt_account_ledger_account_time", "account_id", "occurred_at"),)

    entry_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("mbt_accounts.account_id"))
    kind: Mapped[str] = mapped_column(String(16))
    # The fill applied (unique: a fill moves cash once), empty for other kinds.
    fill_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    order_id: Mapped[str | None] = mapped_column(String(40))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    qty: Mapped[Decimal]
    price: Mapped[Decimal]
    multiplier: Mapped[Decimal]
    cash_delta: Mapped[Decimal]
    realized_pl: Mapped[Decimal]
    cash_after: Mapped[Decimal]
    occurred_at: Mapped[datetime]


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


class AccountRepository:
    """Users, accounts, positions, holds and ledger entries of one transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def user(self, user_id: str) -> UserRow | None:
        return self.session.get(UserRow, user_id)

    def add(self, *rows) -> None:
        self.session.add_all(rows)
        self.session.flush()

    def account_of(self, user_id: str, *, lock: bool = False) -> AccountRow | None:
        query = select(AccountRow).where(AccountRow.user_id == user_id)
        if lock:
            query = query.with_for_update()
        return self.session.execute(query).scalar_one_or_none()

    def account(self, account_id: str, *, lock: bool = False) -> AccountRow | None:
        query = select(AccountRow).where(AccountRow.account_id == account_id)
        if lock:
            query = query.with_for_update()
        return self.session.execute(query).scalar_one_or_none()

    def open_positions(self, account_id: str) -> list[PositionRow]:
        return list(self.session.execute(
            select(PositionRow).where(PositionRow.account_id == account_id, PositionRow.closed_at.is_(None))
            .order_by(PositionRow.symbol)).scalars())

    def positions(self, account_id: str, *, include_closed: bool) -> list[PositionRow]:
        query = select(PositionRow).where(PositionRow.account_id == account_id)
        if not include_closed:
            query = query.where(PositionRow.closed_at.is_(None))
        return list(self.session.execute(query.order_by(PositionRow.symbol, PositionRow.opened_at)).scalars())

    def open_position(self, account_id: str, symbol: str) -> PositionRow | None:
        return self.session.execute(
            select(PositionRow).where(PositionRow.account_id == account_id, PositionRow.symbol == symbol,
                                      PositionRow.closed_at.is_(None))).scalar_one_or_none()

    def holds_of(self, order_id: str) -> list[ReservationRow]:
        """Every version's hold of an order, active or not, oldest version first."""
        return list(self.session.execute(
            select(ReservationRow).where(ReservationRow.order_id == order_id)
            .order_by(ReservationRow.order_version)).scalars())

    def active_reservations(self, account_id: str) -> list[ReservationRow]:
        return list(self.session.execute(
            select(ReservationRow).where(ReservationRow.account_id == account_id,
                                         ReservationRow.released_at.is_(None))).scalars())

    def ledger_entry_of_fill(self, fill_id: str) -> LedgerEntryRow | None:
        return self.session.execute(select(LedgerEntryRow).where(LedgerEntryRow.fill_id == fill_id)
                                    ).scalar_one_or_none()

    def ledger(self, account_id: str, *, until: datetime | None = None) -> list[LedgerEntryRow]:
        query = select(LedgerEntryRow).where(LedgerEntryRow.account_id == account_id)
        if until is not None:
            query = query.where(LedgerEntryRow.occurred_at <= until)
        return list(self.session.execute(query.order_by(LedgerEntryRow.occurred_at, LedgerEntryRow.entry_id)).scalars())
