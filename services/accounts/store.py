"""Accounts' tables (its only ones) and repository."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    case,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.accounts.domain.account import (
    Account,
    AccountEvent,
    AccountOpened,
    DividendPosted,
    FillApplied,
    HoldReleased,
    HoldTaken,
    InterestCharged,
    OptionSettled,
)
from services.accounts.domain.eod import LedgerEntry, Snapshot
from services.accounts.domain.expiration import Instruction
from services.accounts.domain.privacy import DataExport, ErasureStatus, ExportStatus
from services.accounts.domain.retention import CARRIED_FORWARD, CarriedForward, LedgerLine, fold
from services.accounts.domain.rules import (
    AccountType,
    FillEffect,
    FillTerms,
    Hold,
    HoldLeg,
    HoldTerms,
    Position,
    Profile,
    Tier,
    VersionHold,
    asset_class_of,
)
from services.common.ids import derived_id, new_id
from services.common.messaging.outbox import define_outbox_tables
from services.common.persistence.db import changed
from services.common.persistence.sqltypes import TYPE_ANNOTATION_MAP
from services.common.persistence.user_data import UserTable, UserTables, by_parent, by_user_id
from services.common.trading import AssetClass, FillPreference, Side

SERVICE = "accounts"


class Base(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = TYPE_ANNOTATION_MAP


class UserRow(Base):
    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tier: Mapped[str] = mapped_column(String(16))
    investor_profile: Mapped[str] = mapped_column(String(24))
    # The user's own default for multi-leg orders that send none; None: the profile's.
    fill_preference: Mapped[str | None] = mapped_column(String(16))
    # USD the account opens with; None: the profile's (``STARTING_CASH``).
    starting_cash: Mapped[Decimal | None]
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
        Index(
            "ux_mbt_positions_open",
            "account_id",
            "symbol",
            unique=True,
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
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
    # Multi-leg orders: [{"symbol", "side", "ratio"}]; empty otherwise.
    legs: Mapped[list | None] = mapped_column(JSON, default=list)
    # Null while the hold is active.
    released_at: Mapped[datetime | None]
    # filled, canceled, expired, superseded (a newer version took over) or abandoned.
    release_reason: Mapped[str] = mapped_column(String(16), default="", server_default="")
    # The exits of one bracket or oco order share it and hold once (``exit_group_key``).
    exit_group: Mapped[str] = mapped_column(String(40), default="", server_default="")

    def terms(self) -> HoldTerms | None:
        if self.side is None or self.order_qty is None or self.price_bound is None or self.multiplier is None:
            return None
        legs = tuple(HoldLeg(leg["symbol"], Side(leg["side"]), int(leg["ratio"])) for leg in self.legs or ())
        return HoldTerms(
            self.symbol, Side(self.side), self.order_qty, self.price_bound, self.multiplier, legs, self.exit_group or ""
        )

    def as_version_hold(self) -> VersionHold:
        return VersionHold(
            self.order_version,
            self.terms(),
            Hold(self.amount, self.qty),
            self.released_at is None,
            self.release_reason,
            self.symbol,
        )


class LedgerEntryRow(Base):
    """Every cash movement of an account, once: the opening deposit and each applied fill.
    Cash always equals the sum of cash_delta; positions replay from the fill entries."""

    __tablename__ = "mbt_account_ledger"
    __table_args__ = (
        Index("ix_mbt_account_ledger_account_time", "account_id", "occurred_at"),
        # The next sequence is the account's highest plus one, read on every entry.
        Index("ix_mbt_account_ledger_account_sequence", "account_id", "sequence"),
    )

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
    # The order the account applied its entries in (1, 2, … per account; 0 for carried-forward
    # balances, which come first): entries of one moment — an expiration's effects, fills
    # stamped alike — replay in that order, so P&L and snapshots average the cost exactly as
    # the positions did.
    sequence: Mapped[int] = mapped_column(Integer)


class GraduationOverrideRow(Base):
    """An operator's opening of a user's graduation gate (audited; the first one stays)."""

    __tablename__ = "mbt_graduation_overrides"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    operator: Mapped[str] = mapped_column(String(128))
    granted_at: Mapped[datetime]


class OptionInstructionRow(Base):
    """A holder's instruction for a long option position at its expiry (``do_not_exercise``),
    taken until ``cutoff_at`` (``expiration.check_instruction``) and applied by that
    session's expiration run; one per account and contract."""

    __tablename__ = "mbt_option_instructions"

    account_id: Mapped[str] = mapped_column(ForeignKey("mbt_accounts.account_id"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    instruction: Mapped[str] = mapped_column(String(24))
    expiration: Mapped[date] = mapped_column(Date)
    cutoff_at: Mapped[datetime]
    given_at: Mapped[datetime]


class EodSnapshotRow(Base):
    """An account at one session's close (``mbt.eod_mark_all``): cash, the positions marked at
    the closing quotes (``positions``: JSON of symbol, qty, multiplier, avg_entry_price, mark,
    market_value as decimal strings) and equity = cash + long + short market value."""

    __tablename__ = "mbt_eod_snapshots"
    __table_args__ = (UniqueConstraint("account_id", "as_of_date"),)

    snapshot_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("mbt_accounts.account_id"))
    as_of_date: Mapped[date] = mapped_column(Date)
    # The session's close the marks are for.
    closed_at: Mapped[datetime]
    cash: Mapped[Decimal]
    long_market_value: Mapped[Decimal]
    short_market_value: Mapped[Decimal]
    equity: Mapped[Decimal]
    positions: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime]


class ErasureRow(Base):
    """A GDPR erasure request. Pending through its cooling period; once the user is erased
    everywhere it stays as a tombstone that keeps only the keyed hash of the user id, so the
    user can never be recreated (by a stale token or anything else)."""

    __tablename__ = "mbt_erasures"
    __table_args__ = (Index("ix_mbt_erasures_status_due", "status", "due_at"),)

    erasure_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # The clear user id while pending or canceled; empty once erased.
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    # HMAC-SHA256 of the user id under MBT_AUDIT_ACTOR_KEY (privacy.erased_user_hash).
    user_hash: Mapped[str] = mapped_column(String(64), index=True)
    # pending, canceled or erased.
    status: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime]
    due_at: Mapped[datetime]
    # When it was canceled; for an erased one, when it fell due.
    ended_at: Mapped[datetime | None]


class DataExportRow(Base):
    """A GDPR export: asked by the user, gathered by the ``mbt.export_user_data`` job, its
    archive kept until ``expires_at``."""

    __tablename__ = "mbt_data_exports"
    __table_args__ = (Index("ix_mbt_data_exports_user", "user_id", "requested_at"),)

    export_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    # pending, ready, failed or expired.
    status: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime]
    ready_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    archive: Mapped[bytes | None] = mapped_column(LargeBinary)
    archive_sha256: Mapped[str] = mapped_column(String(64))
    archive_bytes: Mapped[int] = mapped_column(BigInteger)
    error: Mapped[str] = mapped_column(Text)


OUTBOX = define_outbox_tables(Base.metadata, SERVICE)


def _erasure_done(user_id: str):
    """Erasing a user leaves its pending request as the tombstone (the clear id blanked, the
    keyed hash kept) and deletes canceled ones."""
    return [
        delete(ErasureRow).where(ErasureRow.user_id == user_id, ErasureRow.status != "pending"),
        update(ErasureRow)
        .where(ErasureRow.user_id == user_id, ErasureRow.status == "pending")
        .values(user_id="", status="erased", ended_at=func.coalesce(ErasureRow.ended_at, ErasureRow.due_at)),
    ]


def _of_account(row: type[Base]):
    return by_parent(row.__table__, "account_id", AccountRow.__table__, "account_id")


# GDPR export and erasure (services.common.persistence.user_data), parents first.
USER_TABLES = UserTables(
    SERVICE,
    [
        by_user_id(UserRow.__table__),
        by_user_id(AccountRow.__table__),
        _of_account(PositionRow),
        _of_account(ReservationRow),
        _of_account(LedgerEntryRow),
        _of_account(EodSnapshotRow),
        _of_account(OptionInstructionRow),
        by_user_id(GraduationOverrideRow.__table__),
        by_user_id(DataExportRow.__table__),
        UserTable(cast(Table, ErasureRow.__table__), lambda user_id: ErasureRow.user_id == user_id, _erasure_done),
        *OUTBOX.user_tables(),
    ],
)


class AccountRepository:
    """Users, accounts (the Account aggregate: row, open positions, holds) and the ledger, in
    one transaction (``session``).

    ``save`` persists what the account's recorded events say — an opened account and its
    opening deposit, holds taken and released, fills applied (the ledger entry and the
    position) — and hands the events to ``collect`` (the unit of work's)."""

    def __init__(self, session: AsyncSession, collect: Callable[[Iterable[AccountEvent]], None] | None = None) -> None:
        self.session = session
        self.collect = collect
        self._rows: dict[str, AccountRow] = {}
        self._sequences: dict[str, int] = {}

    async def _next_sequence(self, account_id: str) -> int:
        """The next ledger sequence of ``account_id`` (changes hold the account's row lock)."""
        if account_id not in self._sequences:
            query = select(func.max(LedgerEntryRow.sequence)).where(LedgerEntryRow.account_id == account_id)
            self._sequences[account_id] = (await self.session.scalar(query)) or 0
        self._sequences[account_id] += 1
        return self._sequences[account_id]

    async def user(self, user_id: str) -> UserRow | None:
        return await self.session.get(UserRow, user_id)

    async def chosen_fill_preference(self, user_id: str) -> FillPreference | None:
        """The user's own fill preference default, or None (the profile's applies)."""
        chosen = await self.session.scalar(select(UserRow.fill_preference).where(UserRow.user_id == user_id))
        return FillPreference(chosen) if chosen else None

    async def add_user(self, user: UserRow) -> None:
        self.session.add(user)
        await self.session.flush()

    async def has_fill_of(self, account_id: str, order_id: str) -> bool:
        """Whether the ledger applied a fill of ``order_id`` to ``account_id``."""
        query = select(LedgerEntryRow.entry_id).where(
            LedgerEntryRow.account_id == account_id,
            LedgerEntryRow.order_id == order_id,
            LedgerEntryRow.fill_id.is_not(None),
        )
        return (await self.session.execute(query.limit(1))).first() is not None

    async def account_of(self, user_id: str, *, lock: bool = False, order_id: str | None = None) -> Account | None:
        """The user's account; with ``lock`` its row is locked (concurrent changes queue). The
        holds loaded are the active ones, plus every version of ``order_id``'s."""
        query = select(AccountRow).where(AccountRow.user_id == user_id)
        return await self._load(query.with_for_update() if lock else query, order_id)

    async def account(self, account_id: str, *, lock: bool = False, order_id: str | None = None) -> Account | None:
        query = select(AccountRow).where(AccountRow.account_id == account_id)
        return await self._load(query.with_for_update() if lock else query, order_id)

    async def _load(self, query, order_id: str | None) -> Account | None:
        row = (await self.session.execute(query)).scalar_one_or_none()
        if row is None:
            return None
        self._rows[row.account_id] = row
        positions = (
            await self.session.execute(
                select(PositionRow).where(PositionRow.account_id == row.account_id, PositionRow.closed_at.is_(None))
            )
        ).scalars()
        active = select(ReservationRow).where(
            ReservationRow.account_id == row.account_id, ReservationRow.released_at.is_(None)
        )
        rows = {(h.order_id, h.order_version): h for h in (await self.session.execute(active)).scalars()}
        if order_id is not None:
            every = select(ReservationRow).where(ReservationRow.order_id == order_id)
            rows.update({(h.order_id, h.order_version): h for h in (await self.session.execute(every)).scalars()})
        by_order: dict[str, list[VersionHold]] = {}
        for key in sorted(rows):
            by_order.setdefault(key[0], []).append(rows[key].as_version_hold())
        return Account(
            row.account_id,
            row.user_id,
            AccountType(row.account_type),
            Profile(row.investor_profile),
            row.starting_cash,
            row.cash,
            positions={p.symbol: p.as_position() for p in positions},
            holds=by_order,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    async def save(self, account: Account) -> None:
        row = self._rows.get(account.account_id)
        for event in account.events:
            match event:
                case AccountOpened():
                    row = AccountRow(
                        account_id=event.account_id,
                        user_id=event.user_id,
                        account_type=event.account_type.value,
                        status="active",
                        currency="USD",
                        investor_profile=event.profile.value,
                        starting_cash=event.starting_cash,
                        cash=event.starting_cash,
                        version=0,
                        created_at=event.at,
                        updated_at=event.at,
                    )
                    self.session.add(row)
                    self._rows[row.account_id] = row
                    self.session.add(
                        LedgerEntryRow(
                            entry_id=new_id("led"),
                            account_id=row.account_id,
                            kind="opening",
                            fill_id=None,
                            order_id=None,
                            symbol="",
                            side="",
                            qty=Decimal(0),
                            price=Decimal(0),
                            multiplier=Decimal(1),
                            cash_delta=event.starting_cash,
                            realized_pl=Decimal(0),
                            cash_after=event.starting_cash,
                            occurred_at=event.at,
                            sequence=await self._next_sequence(row.account_id),
                        )
                    )
                case HoldTaken(order_id=order_id, hold=hold, at=at):
                    terms = hold.terms
                    if terms is None:
                        raise ValueError(f"hold of order {order_id} taken without its terms")
                    self.session.add(
                        ReservationRow(
                            order_id=order_id,
                            order_version=hold.version,
                            account_id=account.account_id,
                            symbol=terms.symbol,
                            side=terms.side.value,
                            order_qty=terms.qty,
                            price_bound=terms.price_bound,
                            multiplier=terms.multiplier,
                            legs=[
                                {"symbol": leg.symbol, "side": leg.side.value, "ratio": leg.ratio} for leg in terms.legs
                            ],
                            amount=hold.hold.amount,
                            qty=hold.hold.qty,
                            created_at=at,
                            updated_at=at,
                            released_at=None,
                            release_reason="",
                            exit_group=terms.exit_group,
                        )
                    )
                case HoldReleased(marker=True):
                    self.session.add(
                        ReservationRow(
                            order_id=event.order_id,
                            order_version=event.version,
                            account_id=account.account_id,
                            symbol="",
                            side=None,
                            order_qty=None,
                            price_bound=None,
                            multiplier=None,
                            legs=[],
                            amount=Decimal(0),
                            qty=Decimal(0),
                            created_at=event.at,
                            updated_at=event.at,
                            released_at=event.at,
                            release_reason=event.reason,
                        )
                    )
                case HoldReleased():
                    await self.session.flush()
                    released = await self.session.get(ReservationRow, (event.order_id, event.version))
                    if released is None:
                        raise LookupError(f"no hold of order {event.order_id} version {event.version} to release")
                    released.released_at = released.released_at or event.at
                    released.updated_at, released.release_reason = event.at, event.reason
                case FillApplied():
                    await self._apply_fill(account.account_id, event)
                case OptionSettled():
                    await self._settle_option(account.account_id, event)
                case DividendPosted():
                    sequence = await self._next_sequence(account.account_id)
                    self.session.add(
                        _cash_entry(
                            account.account_id, event.entry_id, "dividend", event.symbol, event.amount, event, sequence
                        )
                    )
                case InterestCharged():
                    sequence = await self._next_sequence(account.account_id)
                    self.session.add(
                        _cash_entry(account.account_id, event.entry_id, "interest", "", -event.amount, event, sequence)
                    )
        if account.events:
            if row is None:
                raise LookupError(f"account {account.account_id} changed but was never opened or loaded")
            row.cash, row.account_type = account.cash, account.account_type.value
            row.version += 1
            row.updated_at = account.updated_at or row.updated_at
        await self.session.flush()
        if self.collect is not None:
            self.collect(account.events)
        account.events = []

    async def _apply_fill(self, account_id: str, event: FillApplied) -> None:
        fill = event.fill
        await self._move(
            account_id, "fill", event.fill_id, fill.order_id, fill, event.effect, event.cash_after, event.at
        )

    async def _settle_option(self, account_id: str, event: OptionSettled) -> None:
        """Each leg of an expiration effect, as the ledger entry ``expiration`` (its id the
        leg's: a leg never moves cash twice) and the position it changed."""
        cash = event.cash_after - sum((effect.cash_delta for _, effect in event.legs), Decimal(0))
        for leg, effect in event.legs:
            cash += effect.cash_delta
            terms = FillTerms("", leg.symbol, leg.side, leg.qty, leg.price, leg.multiplier)
            await self._move(account_id, "expiration", leg.entry_id, None, terms, effect, cash, event.at)

    async def _move(
        self,
        account_id: str,
        kind: str,
        fill_id: str,
        order_id: str | None,
        fill: FillTerms,
        effect: FillEffect,
        cash_after: Decimal,
        at: datetime,
    ) -> None:
        self.session.add(
            LedgerEntryRow(
                entry_id=derived_id("led", fill_id),
                account_id=account_id,
                kind=kind,
                fill_id=fill_id,
                order_id=order_id,
                symbol=fill.symbol,
                side=fill.side.value,
                qty=fill.qty,
                price=fill.price,
                multiplier=fill.multiplier,
                cash_delta=effect.cash_delta,
                realized_pl=effect.realized_pl,
                cash_after=cash_after,
                occurred_at=at,
                sequence=await self._next_sequence(account_id),
            )
        )
        row = (
            await self.session.execute(
                select(PositionRow).where(
                    PositionRow.account_id == account_id,
                    PositionRow.symbol == fill.symbol,
                    PositionRow.closed_at.is_(None),
                )
            )
        ).scalar_one_or_none()
        after = effect.position
        if row is None:
            self.session.add(_position_row(account_id, after, at, asset_class_of(after.symbol).value))
            return
        row.updated_at = at
        if not effect.closed:
            row.qty, row.avg_entry_price, row.realized_pl = after.qty, after.avg_entry_price, after.realized_pl
            return
        row.realized_pl += effect.realized_pl
        row.qty = Decimal(0)
        row.closed_at = at
        await self.session.flush()
        if effect.reopened:
            self.session.add(_position_row(account_id, replace(after, realized_pl=Decimal(0)), at, row.asset_class))

    # -- reads ----------------------------------------------------------------------

    async def equity_by_day(self, account_id: str) -> dict[date, Decimal]:
        """The equity (USD) of each of the account's EOD snapshots, by session date."""
        query = select(EodSnapshotRow.as_of_date, EodSnapshotRow.equity).where(EodSnapshotRow.account_id == account_id)
        return dict((await self.session.execute(query)).all())

    async def graduation_override(self, user_id: str) -> GraduationOverrideRow | None:
        return await self.session.get(GraduationOverrideRow, user_id)

    async def add_graduation_override(self, row: GraduationOverrideRow) -> None:
        self.session.add(row)
        await self.session.flush()

    async def holdings(self, after_account_id: str, limit: int) -> list[tuple[str, str, Profile, list[str], Tier]]:
        """Accounts after ``after_account_id`` in id order: (account id, user id, the user's
        investor profile now, sorted symbols of its open positions, the user's tier now)."""
        accounts = (
            await self.session.execute(
                select(AccountRow.account_id, AccountRow.user_id, UserRow.investor_profile, UserRow.tier)
                .join(UserRow, UserRow.user_id == AccountRow.user_id)
                .where(AccountRow.account_id > after_account_id)
                .order_by(AccountRow.account_id)
                .limit(limit)
            )
        ).all()
        symbols: dict[str, list[str]] = {row.account_id: [] for row in accounts}
        if symbols:
            query = (
                select(PositionRow.account_id, PositionRow.symbol)
                .where(PositionRow.account_id.in_(list(symbols)), PositionRow.closed_at.is_(None))
                .order_by(PositionRow.account_id, PositionRow.symbol)
            )
            for account_id, symbol in (await self.session.execute(query)).all():
                symbols[account_id].append(symbol)
        return [(a, u, Profile(p), symbols[a], Tier(t)) for a, u, p, t in accounts]

    async def option_holders(self) -> dict[str, list[str]]:
        """The open option positions of every account: contract symbols by account id."""
        rows = await self.session.execute(
            select(PositionRow.account_id, PositionRow.symbol)
            .where(PositionRow.closed_at.is_(None), PositionRow.asset_class == AssetClass.US_OPTION.value)
            .order_by(PositionRow.account_id, PositionRow.symbol)
        )
        holders: dict[str, list[str]] = {}
        for account_id, symbol in rows:
            holders.setdefault(account_id, []).append(symbol)
        return holders

    async def instruction(self, account_id: str, symbol: str) -> OptionInstructionRow | None:
        return await self.session.get(OptionInstructionRow, (account_id, symbol))

    async def add_instruction(self, row: OptionInstructionRow) -> None:
        self.session.add(row)
        await self.session.flush()

    async def remove_instruction(self, row: OptionInstructionRow) -> None:
        await self.session.delete(row)
        await self.session.flush()

    async def instructions(self, account_id: str) -> dict[str, Instruction]:
        """The account's standing instructions, by contract symbol."""
        rows = await self.session.execute(
            select(OptionInstructionRow.symbol, OptionInstructionRow.instruction).where(
                OptionInstructionRow.account_id == account_id
            )
        )
        return {symbol: Instruction(instruction) for symbol, instruction in rows}

    async def positions(self, account_id: str, *, include_closed: bool) -> list[PositionRow]:
        query = select(PositionRow).where(PositionRow.account_id == account_id)
        if not include_closed:
            query = query.where(PositionRow.closed_at.is_(None))
        return list((await self.session.execute(query.order_by(PositionRow.symbol, PositionRow.opened_at))).scalars())

    async def applied_fill(self, fill_id: str) -> FillTerms | None:
        """The terms a fill id was applied with, None if it never was."""
        entry = (
            await self.session.execute(select(LedgerEntryRow).where(LedgerEntryRow.fill_id == fill_id))
        ).scalar_one_or_none()
        if entry is None:
            return None
        return FillTerms(
            order_id=entry.order_id or "",
            symbol=entry.symbol,
            side=Side(entry.side),
            qty=entry.qty,
            price=entry.price,
            multiplier=entry.multiplier,
        )

    async def ledger(self, account_id: str, *, until: datetime | None = None) -> list[LedgerEntryRow]:
        query = select(LedgerEntryRow).where(LedgerEntryRow.account_id == account_id)
        if until is not None:
            query = query.where(LedgerEntryRow.occurred_at <= until)
        carried_first = case((LedgerEntryRow.kind == CARRIED_FORWARD, 0), else_=1)
        return list(
            (
                await self.session.execute(
                    query.order_by(LedgerEntryRow.occurred_at, carried_first, LedgerEntryRow.sequence)
                )
            ).scalars()
        )

    # -- retention ------------------------------------------------------------------

    async def carried_forward(self, account_id: str) -> CarriedForward | None:
        """The account's carried-forward balance; None when the purge folded nothing."""
        query = select(LedgerEntryRow).where(
            LedgerEntryRow.account_id == account_id, LedgerEntryRow.kind == CARRIED_FORWARD
        )
        rows = sorted((await self.session.execute(query)).scalars(), key=lambda row: row.symbol)
        return fold(ledger_line(row) for row in rows)

    async def account_ids_of(self, user_ids: list[str]) -> dict[str, str]:
        """Account id by user id, for the users that have one."""
        query = select(AccountRow.user_id, AccountRow.account_id).where(AccountRow.user_id.in_(user_ids))
        return {row.user_id: row.account_id for row in (await self.session.execute(query)).all()}

    async def fold_ledger_before(self, account_id: str, cutoff: datetime, limit: int) -> int:
        """Fold the account's oldest ledger entries before ``cutoff`` (at most ``limit``) into
        its carried-forward entries and delete them; the number folded."""
        carried = list(
            (
                await self.session.execute(
                    select(LedgerEntryRow)
                    .where(LedgerEntryRow.account_id == account_id, LedgerEntryRow.kind == CARRIED_FORWARD)
                    .order_by(LedgerEntryRow.entry_id)
                )
            ).scalars()
        )
        old = list(
            (
                await self.session.execute(
                    select(LedgerEntryRow)
                    .where(
                        LedgerEntryRow.account_id == account_id,
                        LedgerEntryRow.kind != CARRIED_FORWARD,
                        LedgerEntryRow.occurred_at < cutoff,
                    )
                    .order_by(LedgerEntryRow.occurred_at, LedgerEntryRow.sequence)
                    .limit(limit)
                )
            ).scalars()
        )
        if not old:
            return 0
        balance = fold(ledger_line(row) for row in [*sorted(carried, key=lambda r: r.symbol), *old])
        await self.session.execute(
            delete(LedgerEntryRow).where(LedgerEntryRow.entry_id.in_([row.entry_id for row in [*carried, *old]]))
        )
        for row in carried:  # their ids are reused by the new balance's entries
            self.session.expunge(row)
        if balance is not None:
            for row in _carried_rows(account_id, balance):
                self.session.add(row)
        return len(old)

    async def delete_closed_positions_before(self, account_id: str, cutoff: datetime, limit: int) -> int:
        """Delete up to ``limit`` of the account's positions closed before ``cutoff`` (open
        ones never); the number deleted."""
        ids = (
            select(PositionRow.position_id)
            .where(
                PositionRow.account_id == account_id,
                PositionRow.closed_at.is_not(None),
                PositionRow.closed_at < cutoff,
            )
            .order_by(PositionRow.closed_at, PositionRow.position_id)
            .limit(limit)
        )
        doomed = list((await self.session.execute(ids)).scalars())
        if not doomed:
            return 0
        return changed(
            await self.session.execute(delete(PositionRow).where(PositionRow.position_id.in_(doomed)))
        ).rowcount

    async def delete_snapshots_before(self, account_id: str, day: date) -> int:
        """Delete the account's end-of-day snapshots of sessions before ``day``."""
        return changed(
            await self.session.execute(
                delete(EodSnapshotRow).where(EodSnapshotRow.account_id == account_id, EodSnapshotRow.as_of_date < day)
            )
        ).rowcount

    async def entry_exists(self, entry_id: str) -> bool:
        return await self.session.get(LedgerEntryRow, entry_id) is not None

    async def account_rows(self, *, opened_by: datetime) -> list[AccountRow]:
        query = select(AccountRow).where(AccountRow.created_at <= opened_by).order_by(AccountRow.account_id)
        return list((await self.session.execute(query)).scalars())

    async def ledgers(self, until: datetime) -> dict[str, list[LedgerEntry]]:
        """Every account's ledger entries up to ``until``, in ledger order, as domain values."""
        query = (
            select(LedgerEntryRow)
            .where(LedgerEntryRow.occurred_at <= until)
            .order_by(
                LedgerEntryRow.account_id,
                LedgerEntryRow.occurred_at,
                case((LedgerEntryRow.kind == CARRIED_FORWARD, 0), else_=1),
                LedgerEntryRow.entry_id,
            )
        )
        ledgers: dict[str, list[LedgerEntry]] = {}
        for row in (await self.session.execute(query)).scalars():
            ledgers.setdefault(row.account_id, []).append(
                LedgerEntry(
                    row.kind,
                    row.symbol,
                    Side(row.side) if row.kind in ("fill", CARRIED_FORWARD) and row.side else None,
                    row.qty,
                    row.price,
                    row.multiplier,
                    row.cash_delta,
                    row.occurred_at,
                )
            )
        return ledgers

    async def snapshot_accounts(self, as_of: date) -> set[str]:
        query = select(EodSnapshotRow.account_id).where(EodSnapshotRow.as_of_date == as_of)
        return set((await self.session.execute(query)).scalars())

    def add_snapshot(self, account_id: str, as_of: date, closed_at: datetime, value: Snapshot, now: datetime) -> None:
        self.session.add(
            EodSnapshotRow(
                snapshot_id=derived_id("eod", account_id, as_of.isoformat()),
                account_id=account_id,
                as_of_date=as_of,
                closed_at=closed_at,
                cash=value.cash,
                long_market_value=value.long_market_value,
                short_market_value=value.short_market_value,
                equity=value.equity,
                positions=[
                    {
                        "symbol": p.symbol,
                        "qty": str(p.qty),
                        "multiplier": str(p.multiplier),
                        "avg_entry_price": str(p.avg_entry_price),
                        "mark": str(p.mark),
                        "market_value": str(p.market_value),
                    }
                    for p in value.positions
                ],
                created_at=now,
            )
        )

    async def snapshots(self, account_id: str, *, since: date | None) -> list[EodSnapshotRow]:
        """The account's snapshots from ``since`` (None: all), oldest first."""
        query = select(EodSnapshotRow).where(EodSnapshotRow.account_id == account_id)
        if since is not None:
            query = query.where(EodSnapshotRow.as_of_date >= since)
        return list((await self.session.execute(query.order_by(EodSnapshotRow.as_of_date))).scalars())

    async def snapshot_before(self, account_id: str, day: date) -> EodSnapshotRow | None:
        query = (
            select(EodSnapshotRow)
            .where(EodSnapshotRow.account_id == account_id, EodSnapshotRow.as_of_date < day)
            .order_by(EodSnapshotRow.as_of_date.desc())
            .limit(1)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def account_row(self, account_id: str) -> AccountRow | None:
        return self._rows.get(account_id) or await self.session.get(AccountRow, account_id)


def ledger_line(row: LedgerEntryRow) -> LedgerLine:
    return LedgerLine(
        row.kind,
        row.symbol,
        row.side,
        row.qty,
        row.price,
        row.multiplier,
        row.cash_delta,
        row.realized_pl,
        row.cash_after,
        row.occurred_at,
    )


def _carried_rows(account_id: str, balance: CarriedForward) -> list[LedgerEntryRow]:
    """The ``carried_forward`` entries of a balance: the cash one, then one per open position
    (quantity unsigned, the side giving the sign, as on fills)."""

    def entry(symbol: str, side: str, qty: Decimal, price: Decimal, multiplier: Decimal, **amounts: Decimal):
        return LedgerEntryRow(
            entry_id=derived_id("led", f"{CARRIED_FORWARD}:{account_id}:{symbol}"),
            account_id=account_id,
            kind=CARRIED_FORWARD,
            fill_id=None,
            order_id=None,
            symbol=symbol,
            side=side,
            qty=qty,
            price=price,
            multiplier=multiplier,
            cash_after=balance.cash_after,
            occurred_at=balance.through,
            sequence=0,
            **amounts,
        )

    rows = [entry("", "", Decimal(0), Decimal(0), Decimal(1), cash_delta=balance.cash_delta, realized_pl=Decimal(0))]
    for symbol, position in sorted(balance.positions.items()):
        side = Side.BUY.value if position.qty > 0 else Side.SELL.value
        rows.append(
            entry(
                symbol,
                side,
                abs(position.qty),
                position.avg_entry_price,
                position.multiplier,
                cash_delta=Decimal(0),
                realized_pl=position.realized_pl,
            )
        )
    return rows


def _position_row(account_id: str, position: Position, at: datetime, asset_class: str) -> PositionRow:
    return PositionRow(
        position_id=new_id("pos"),
        account_id=account_id,
        symbol=position.symbol,
        asset_class=asset_class,
        qty=position.qty,
        multiplier=position.multiplier,
        avg_entry_price=position.avg_entry_price,
        realized_pl=position.realized_pl,
        opened_at=at,
        closed_at=None,
        updated_at=at,
    )


def _data_export(row: DataExportRow) -> DataExport:
    return DataExport(
        row.export_id,
        row.user_id,
        ExportStatus(row.status),
        row.requested_at,
        row.ready_at,
        row.expires_at,
        row.archive_sha256,
        row.archive_bytes,
        row.error,
    )


class PrivacyRepository:
    """Erasure requests, tombstones and data exports, in one transaction (``session``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def pending_erasure(self, user_id: str, *, lock: bool = False) -> ErasureRow | None:
        query = select(ErasureRow).where(ErasureRow.user_id == user_id, ErasureRow.status == ErasureStatus.PENDING)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalars().first()

    async def is_erased(self, user_hash: str) -> bool:
        query = select(ErasureRow.erasure_id).where(
            ErasureRow.user_hash == user_hash, ErasureRow.status == ErasureStatus.ERASED
        )
        return (await self.session.execute(query.limit(1))).first() is not None

    def add_erasure(self, row: ErasureRow) -> None:
        self.session.add(row)

    async def pending_erasures(self, now: datetime) -> tuple[list[str], list[str]]:
        """The users of pending erasures, oldest request first: (due by ``now``, still cooling)."""
        query = (
            select(ErasureRow.user_id, ErasureRow.due_at)
            .where(ErasureRow.status == ErasureStatus.PENDING)
            .order_by(ErasureRow.requested_at, ErasureRow.erasure_id)
        )
        due: list[str] = []
        cooling: list[str] = []
        for user_id, due_at in await self.session.execute(query):
            (due if due_at <= now else cooling).append(user_id)
        return due, cooling

    def add_export(self, row: DataExportRow) -> None:
        self.session.add(row)

    async def export_row(self, export_id: str, *, lock: bool = False) -> DataExportRow | None:
        return await self.session.get(DataExportRow, export_id, with_for_update=lock)

    async def export(self, export_id: str) -> DataExport | None:
        row = await self.session.get(DataExportRow, export_id)
        return None if row is None else _data_export(row)

    async def pending_exports(self) -> list[DataExport]:
        query = select(DataExportRow).where(DataExportRow.status == ExportStatus.PENDING)
        return [_data_export(row) for row in (await self.session.execute(query)).scalars()]


def _cash_entry(
    account_id: str,
    entry_id: str,
    kind: str,
    symbol: str,
    delta: Decimal,
    event: DividendPosted | InterestCharged,
    sequence: int,
) -> LedgerEntryRow:
    """A ledger entry that moves cash only (a dividend, interest), the account's ``sequence``-th."""
    return LedgerEntryRow(
        entry_id=entry_id,
        account_id=account_id,
        kind=kind,
        fill_id=None,
        order_id=None,
        symbol=symbol,
        side="",
        qty=event.qty if isinstance(event, DividendPosted) else Decimal(0),
        price=event.cash_amount if isinstance(event, DividendPosted) else Decimal(0),
        multiplier=Decimal(1),
        cash_delta=delta,
        realized_pl=Decimal(0),
        cash_after=event.cash_after,
        occurred_at=event.at,
        sequence=sequence,
    )
