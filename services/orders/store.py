"""Orders' tables (its only ones) and repository."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.errors import not_found
from services.common.messaging.outbox import define_outbox_tables
from services.common.persistence.db import changed
from services.common.persistence.sqltypes import TYPE_ANNOTATION_MAP
from services.common.persistence.user_data import UserTables, by_parent, by_user_id
from services.orders.domain.model import (
    WORKING,
    AssetClass,
    Fill,
    FillPreference,
    Leg,
    LegExecution,
    Order,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderSpec,
    OrderType,
    PositionIntent,
    Replacement,
    Side,
    Status,
    TimeInForce,
)

# Events after which the order works no more: a replace still pending for it is abandoned.
ENDING = (OrderFilled, OrderCanceled, OrderExpired)

SERVICE = "orders"


class Base(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = TYPE_ANNOTATION_MAP


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
    collar_price: Mapped[Decimal | None]
    # Multi-leg options: [{"symbol", "side", "ratio"}]; empty for single-leg orders.
    legs: Mapped[list] = mapped_column(JSON)
    multiplier: Mapped[Decimal]
    status: Mapped[str] = mapped_column(String(16))
    reject_reason: Mapped[str] = mapped_column(String(64))
    cancel_reason: Mapped[str] = mapped_column(String(64))
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
    replaced_at: Mapped[datetime | None]
    # SHA-256 of the submission's terms: a client_order_id repeated with others is refused.
    request_digest: Mapped[str | None] = mapped_column(String(64))
    reject_message: Mapped[str] = mapped_column(String(500), default="", server_default="")
    # Options: buy_to_open, sell_to_close, ... (as sent or inferred); null for stock.
    position_intent: Mapped[str | None] = mapped_column(String(16))
    # Multi-leg: conservative, mid or aggressive; null for single-symbol orders.
    fill_preference: Mapped[str | None] = mapped_column(String(16))


class ReplacementRow(Base):
    """The replace saga's state: each attempt to replace an order, by the version it would
    become. At most one is pending per order; versions of abandoned attempts are not reused."""

    __tablename__ = "mbt_order_replacements"
    __table_args__ = (Index("ix_mbt_order_replacements_status_lease", "status", "lease_until"),)

    order_id: Mapped[str] = mapped_column(ForeignKey("mbt_orders.order_id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    qty: Mapped[Decimal]
    time_in_force: Mapped[str] = mapped_column(String(8))
    limit_price: Mapped[Decimal | None]
    stop_price: Mapped[Decimal | None]
    collar_price: Mapped[Decimal | None]
    expires_at: Mapped[datetime | None]
    requested_at: Mapped[datetime]
    lease_until: Mapped[datetime]
    # pending, committed or abandoned.
    status: Mapped[str] = mapped_column(String(16))


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
# GDPR export and erasure (services.common.persistence.user_data), parents first.
USER_TABLES = UserTables(
    SERVICE,
    [
        by_user_id(OrderRow.__table__),
        by_parent(ReplacementRow.__table__, "order_id", OrderRow.__table__, "order_id"),
        by_user_id(FillRow.__table__),
        *OUTBOX.user_tables(),
    ],
)

_ORDER_FIELDS = (
    "order_id",
    "user_id",
    "account_id",
    "multiplier",
    "status",
    "created_at",
    "updated_at",
    "version",
    "collar_price",
    "reject_reason",
    "cancel_reason",
    "filled_qty",
    "filled_avg_price",
    "accepted_at",
    "rejected_at",
    "triggered_at",
    "filled_at",
    "canceled_at",
    "expired_at",
    "expires_at",
    "replaced_at",
    "request_digest",
    "reject_message",
)


def _to_order(row: OrderRow) -> Order:
    spec = OrderSpec(
        client_order_id=row.client_order_id,
        symbol=row.symbol,
        asset_class=AssetClass(row.asset_class),
        side=Side(row.side),
        qty=row.qty,
        order_type=OrderType(row.order_type),
        time_in_force=TimeInForce(row.time_in_force),
        limit_price=row.limit_price,
        stop_price=row.stop_price,
        legs=tuple(
            Leg(
                leg["symbol"],
                Side(leg["side"]),
                int(leg["ratio"]),
                PositionIntent(leg["position_intent"]) if leg.get("position_intent") else None,
            )
            for leg in row.legs
        ),
        position_intent=PositionIntent(row.position_intent) if row.position_intent else None,
        fill_preference=FillPreference(row.fill_preference) if row.fill_preference else None,
    )
    values = {name: getattr(row, name) for name in _ORDER_FIELDS}
    values["status"] = Status(row.status)
    return Order(spec=spec, **values)


def _write(row: OrderRow, order: Order) -> None:
    spec = order.spec
    for name in _ORDER_FIELDS:
        setattr(row, name, getattr(order, name))
    row.status = order.status.value
    row.client_order_id = spec.client_order_id
    row.symbol = spec.symbol
    row.asset_class = spec.asset_class.value
    row.side = spec.side.value
    row.qty = spec.qty
    row.order_type = spec.order_type.value
    row.time_in_force = spec.time_in_force.value
    row.limit_price = spec.limit_price
    row.stop_price = spec.stop_price
    row.legs = [
        {"symbol": leg.symbol, "side": leg.side.value, "ratio": leg.ratio}
        | ({"position_intent": leg.position_intent.value} if leg.position_intent else {})
        for leg in spec.legs
    ]
    row.position_intent = spec.position_intent.value if spec.position_intent else None
    row.fill_preference = spec.fill_preference.value if spec.fill_preference else None


def _to_replacement(row: ReplacementRow, spec: OrderSpec) -> Replacement:
    return Replacement(
        version=row.version,
        spec=replace(
            spec,
            qty=row.qty,
            time_in_force=TimeInForce(row.time_in_force),
            limit_price=row.limit_price,
            stop_price=row.stop_price,
        ),
        collar_price=row.collar_price,
        expires_at=row.expires_at,
        requested_at=row.requested_at,
        lease_until=row.lease_until,
    )


class OrderRepository:
    """Orders, their fills and their replace saga, in one transaction (``session``).

    ``save`` persists what the order's recorded events say (a fill row for OrderFilled; the
    pending replace of an order that ended is abandoned) and hands the events to ``collect``
    (the unit of work's), returning the order without them."""

    def __init__(self, session: AsyncSession, collect: Callable[[Iterable[OrderEvent]], None] | None = None) -> None:
        self.session = session
        self.collect = collect

    async def add(self, order: Order) -> None:
        row = OrderRow()
        _write(row, order)
        self.session.add(row)
        await self.session.flush()

    async def save(self, order: Order) -> Order:
        row = await self.session.get(OrderRow, order.order_id)
        if row is None:
            raise LookupError(f"order {order.order_id} saved before it was added")
        _write(row, order)
        for event in order.events:
            if isinstance(event, OrderFilled):
                await self._add_fill(event.fill, order.user_id)
            if isinstance(event, ENDING) and event.previous.pending is not None:
                await self.close_replacement(order.order_id, event.previous.pending.version, "abandoned")
        await self.session.flush()
        if self.collect is not None:
            self.collect(order.events)
        return replace(order, events=())

    async def get(
        self, order_id: str, *, user_id: str | None = None, lock: bool = False, with_fills: bool = False
    ) -> Order | None:
        query = select(OrderRow).where(OrderRow.order_id == order_id)
        if user_id is not None:
            query = query.where(OrderRow.user_id == user_id)
        if lock:
            query = query.with_for_update()
        row = (await self.session.execute(query)).scalar_one_or_none()
        if row is None:
            return None
        order = await self._with_pending(_to_order(row))
        return replace(order, fills=tuple(await self.fills_of(order_id))) if with_fills else order

    async def load(
        self, order_id: str, *, user_id: str | None = None, lock: bool = False, with_fills: bool = False
    ) -> Order:
        """``get``, for an order that must exist: ``not_found`` otherwise."""
        order = await self.get(order_id, user_id=user_id, lock=lock, with_fills=with_fills)
        if order is None:
            raise not_found("order", order_id)
        return order

    async def _with_pending(self, order: Order) -> Order:
        row = (
            await self.session.execute(
                select(ReplacementRow).where(
                    ReplacementRow.order_id == order.order_id, ReplacementRow.status == "pending"
                )
            )
        ).scalar_one_or_none()
        return order if row is None else replace(order, pending=_to_replacement(row, order.spec))

    # -- the replace saga ------------------------------------------------------------

    async def add_replacement(self, order_id: str, pending: Replacement) -> None:
        spec = pending.spec
        self.session.add(
            ReplacementRow(
                order_id=order_id,
                version=pending.version,
                qty=spec.qty,
                time_in_force=spec.time_in_force.value,
                limit_price=spec.limit_price,
                stop_price=spec.stop_price,
                collar_price=pending.collar_price,
                expires_at=pending.expires_at,
                requested_at=pending.requested_at,
                lease_until=pending.lease_until,
                status="pending",
            )
        )
        await self.session.flush()

    async def last_replacement_version(self, order_id: str) -> int:
        return (
            await self.session.execute(
                select(func.max(ReplacementRow.version)).where(ReplacementRow.order_id == order_id)
            )
        ).scalar() or 0

    async def close_replacement(self, order_id: str, version: int, status: str) -> None:
        """``status`` committed or abandoned; a pending replacement only."""
        await self._update_pending_replacement(order_id, version, status=status)

    async def forget_replacement(self, order_id: str, version: int) -> None:
        """A replace refused before anything was held for it: its version may be used again."""
        await self.session.execute(
            delete(ReplacementRow).where(
                ReplacementRow.order_id == order_id,
                ReplacementRow.version == version,
                ReplacementRow.status == "pending",
            )
        )

    async def lease_replacement(self, order_id: str, version: int, now: datetime, until: datetime) -> bool:
        """Take over a pending replacement whose lease ran out; False if someone holds it."""
        return await self._update_pending_replacement(
            order_id, version, ReplacementRow.lease_until <= now, lease_until=until
        )

    async def _update_pending_replacement(
        self, order_id: str, version: int, *also: ColumnElement[bool], **values: object
    ) -> bool:
        """Set ``values`` on the pending replacement (order_id, version) if it also meets
        ``also``; whether it did (a closed or absent one changes nothing)."""
        return (
            changed(
                await self.session.execute(
                    update(ReplacementRow)
                    .where(
                        ReplacementRow.order_id == order_id,
                        ReplacementRow.version == version,
                        ReplacementRow.status == "pending",
                        *also,
                    )
                    .values(**values)
                )
            ).rowcount
            == 1
        )

    async def unleased_replacements(self, now: datetime, limit: int) -> list[tuple[str, int]]:
        """(order id, version) of pending replacements nobody owns any more."""
        return [
            (row.order_id, row.version)
            for row in await self.session.execute(
                select(ReplacementRow.order_id, ReplacementRow.version)
                .where(ReplacementRow.status == "pending", ReplacementRow.lease_until <= now)
                .order_by(ReplacementRow.lease_until)
                .limit(limit)
            )
        ]

    # -- queries ----------------------------------------------------------------------

    async def by_client_order_id(self, user_id: str, client_order_id: str) -> Order | None:
        row = (
            await self.session.execute(
                select(OrderRow).where(OrderRow.user_id == user_id, OrderRow.client_order_id == client_order_id)
            )
        ).scalar_one_or_none()
        return None if row is None else _to_order(row)

    async def _orders(self, query) -> list[Order]:
        return [_to_order(row) for row in (await self.session.execute(query)).scalars()]

    async def list_for_user(
        self, user_id: str, *, status: Status | None, symbol: str | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Order]:
        """Newest first; ``after`` is the (created_at, order_id) of the previous page's last order."""
        query = select(OrderRow).where(OrderRow.user_id == user_id)
        if status is not None:
            query = query.where(OrderRow.status == status.value)
        if symbol:
            query = query.where(OrderRow.symbol == symbol)
        if after is not None:
            created_at, order_id = after
            query = query.where(
                or_(
                    OrderRow.created_at < created_at,
                    and_(OrderRow.created_at == created_at, OrderRow.order_id < order_id),
                )
            )
        return await self._orders(query.order_by(OrderRow.created_at.desc(), OrderRow.order_id.desc()).limit(limit))

    async def list_working(self, *, symbol: str | None, after_id: str | None, limit: int) -> list[Order]:
        query = select(OrderRow).where(OrderRow.status == Status.ACCEPTED.value)
        if symbol:
            query = query.where(OrderRow.symbol == symbol)
        if after_id:
            query = query.where(OrderRow.order_id > after_id)
        return await self._orders(query.order_by(OrderRow.order_id).limit(limit))

    async def working_of_user(self, user_id: str, limit: int) -> list[str]:
        """The ids of ``user_id``'s working orders (new or accepted), oldest id first."""
        query = (
            select(OrderRow.order_id)
            .where(OrderRow.user_id == user_id, OrderRow.status.in_([status.value for status in WORKING]))
            .order_by(OrderRow.order_id)
            .limit(limit)
        )
        return list((await self.session.execute(query)).scalars())

    async def undelivered_events(self, user_id: str) -> int:
        """How many of ``user_id``'s events still wait for a subscriber's acknowledgement."""
        outbox, pending = OUTBOX.outbox, OUTBOX.pending
        query = (
            select(func.count())
            .select_from(pending.join(outbox, pending.c.sequence == outbox.c.sequence))
            .where(outbox.c.user_id == user_id)
        )
        return int((await self.session.execute(query)).scalar_one())

    async def stuck_new(self, created_before: datetime, limit: int) -> list[Order]:
        return await self._orders(
            select(OrderRow)
            .where(OrderRow.status == Status.NEW.value, OrderRow.created_at <= created_before)
            .order_by(OrderRow.created_at)
            .limit(limit)
        )

    async def due_to_expire(self, now: datetime, limit: int) -> list[Order]:
        return await self._orders(
            select(OrderRow)
            .where(OrderRow.status == Status.ACCEPTED.value, OrderRow.expires_at <= now)
            .order_by(OrderRow.expires_at, OrderRow.order_id)
            .limit(limit)
        )

    async def ended_before(self, user_id: str, statuses: Iterable[Status], cutoff: datetime, limit: int) -> list[str]:
        """The ids of ``user_id``'s orders in ``statuses`` last changed before ``cutoff``,
        oldest first, at most ``limit``."""
        return list(
            (
                await self.session.execute(
                    select(OrderRow.order_id)
                    .where(
                        OrderRow.user_id == user_id,
                        OrderRow.status.in_([status.value for status in statuses]),
                        OrderRow.updated_at < cutoff,
                    )
                    .order_by(OrderRow.updated_at, OrderRow.order_id)
                    .limit(limit)
                )
            ).scalars()
        )

    async def delete_orders(self, order_ids: list[str]) -> int:
        """Delete the orders with their fills and replace attempts; the fills deleted."""
        fills = await self.session.execute(delete(FillRow).where(FillRow.order_id.in_(order_ids)))
        await self.session.execute(delete(ReplacementRow).where(ReplacementRow.order_id.in_(order_ids)))
        await self.session.execute(delete(OrderRow).where(OrderRow.order_id.in_(order_ids)))
        return changed(fills).rowcount

    # -- fills ----------------------------------------------------------------------

    async def _add_fill(self, fill: Fill, user_id: str) -> None:
        values = {name: getattr(fill, name) for name in _FILL_FIELDS}
        legs = [
            {
                "symbol": leg.symbol,
                "side": leg.side.value,
                "ratio": leg.ratio,
                "qty": format(leg.qty, "f"),
                "price": format(leg.price, "f"),
                "bid_price": format(leg.bid_price, "f"),
                "ask_price": format(leg.ask_price, "f"),
            }
            for leg in fill.legs
        ]
        self.session.add(FillRow(**values, side=fill.side.value, user_id=user_id, legs=legs))

    async def get_fill(self, fill_id: str) -> Fill | None:
        row = await self.session.get(FillRow, fill_id)
        return None if row is None else _to_fill(row)

    async def fills_of(self, order_id: str) -> list[Fill]:
        return [
            _to_fill(row)
            for row in (
                await self.session.execute(
                    select(FillRow).where(FillRow.order_id == order_id).order_by(FillRow.filled_at, FillRow.fill_id)
                )
            ).scalars()
        ]


_FILL_FIELDS = (
    "fill_id",
    "order_id",
    "symbol",
    "qty",
    "price",
    "multiplier",
    "bid_price",
    "bid_size",
    "ask_price",
    "ask_size",
    "quote_at",
    "quote_at_ns",
    "quote_sequence",
    "rule",
    "filled_at",
)


def _to_fill(row: FillRow) -> Fill:
    legs = tuple(
        LegExecution(
            leg["symbol"],
            Side(leg["side"]),
            int(leg["ratio"]),
            Decimal(leg["qty"]),
            Decimal(leg["price"]),
            Decimal(leg["bid_price"]),
            Decimal(leg["ask_price"]),
        )
        for leg in row.legs or ()
    )
    return Fill(side=Side(row.side), legs=legs, **{name: getattr(row, name) for name in _FILL_FIELDS})
