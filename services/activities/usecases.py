"""What the activities service does: turn events into the user's activity stream and the
append-only audit log, and answer reads of both."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from google.protobuf import json_format

from mbt.accounts.v1 import events_pb2 as account_events
from mbt.common.v1 import audit_pb2, events_pb2
from mbt.orders.v1 import events_pb2 as order_events
from services.activities.domain import fill_description, opening_description
from services.activities.store import ActivityRepository, ActivityRow, AuditLogRow
from services.common.persistence import pagination
from services.common.clock import Clock
from services.common.wire.conv import from_timestamp, parse_decimal
from services.common.persistence.db import Database
from services.common.errors import invalid_argument, not_found
from services.common.ids import derived_id
from services.common.messaging.outbox import UnitOfWork

SIDE_NAMES = {1: "buy", 2: "sell"}
ACTOR_TYPES = {audit_pb2.ACTOR_TYPE_USER: "user", audit_pb2.ACTOR_TYPE_OPS: "ops",
               audit_pb2.ACTOR_TYPE_SYSTEM: "system"}


class Activities:
    def __init__(self, db: Database, clock: Clock, audit_key: bytes) -> None:
        self.db = db
        self.clock = clock
        self.audit_key = audit_key

    # -- events -------------------------------------------------------------------------

    def on_order_filled(self, uow: UnitOfWork, event: events_pb2.Event, payload: order_events.OrderFilled) -> None:
        fill, order = payload.fill, payload.order
        side = SIDE_NAMES[fill.side]
        qty = parse_decimal(fill.qty, "qty")
        price = parse_decimal(fill.price, "price")
        multiplier = parse_decimal(fill.multiplier, "multiplier") or Decimal(1)
        signed = qty if side == "buy" else -qty
        ActivityRepository(uow.session).add_activity(ActivityRow(
            activity_id=derived_id("act", fill.fill_id), user_id=order.user_id, account_id=order.account_id,
            activity_type="fill", symbol=fill.symbol, order_id=order.order_id, fill_id=fill.fill_id, side=side,
            qty=qty, price=price, net_amount=-signed * price * multiplier,
            description=fill_description(side, qty, fill.symbol, price), occurred_at=from_timestamp(fill.filled_at),
            created_at=self.clock.now()))

    def on_account_opened(self, uow: UnitOfWork, event: events_pb2.Event,
                          payload: account_events.AccountOpened) -> None:
        cash = parse_decimal(payload.starting_cash, "starting_cash")
        ActivityRepository(uow.session).add_activity(ActivityRow(
            activity_id=derived_id("act", "opened", payload.account_id), user_id=payload.user_id,
            account_id=payload.account_id, activity_type="account_opened", symbol="", order_id="", fill_id="",
            side="", qty=None, price=None, net_amount=cash, description=opening_description(cash),
            occurred_at=from_timestamp(payload.opened_at), created_at=self.clock.now()))

    def on_audit(self, uow: UnitOfWork, event: events_pb2.Event, payload: audit_pb2.AuditRecorded) -> None:
        ActivityRepository(uow.session).add_audit(AuditLogRow(
            audit_id=payload.audit_id, actor_type=ACTOR_TYPES.get(payload.actor_type, "system"),
            actor_id=payload.actor_id, action=payload.action, entity_type=payload.entity_type,
            entity_id=payload.entity_id, user_id=payload.user_id,
            before=json_format.MessageToDict(payload.before) if payload.HasField("before") else None,
            after=json_format.MessageToDict(payload.after) if payload.HasField("after") else None,
            request_id=payload.request_id, service=payload.service, occurred_at=from_timestamp(payload.occurred_at),
            recorded_at=self.clock.now()), self.audit_key)

    # -- reads --------------------------------------------------------------------------

    async def list(self, user_id: str, activity_type: str | None, start: datetime | None, end: datetime | None,
                   size: int, token: str) -> tuple[list[ActivityRow], str]:
        if start and end and start >= end:
            raise invalid_argument("from must be before to", "from")
        digest = pagination.filter_digest(user_id, activity_type, start, end)
        after = pagination.decode_page_token(token, digest)
        limit = pagination.page_size(size)
        rows = await self.db.run(self._list, user_id, activity_type, start, end, after, limit + 1)
        if len(rows) <= limit:
            return rows, ""
        last = rows[limit - 1]
        return rows[:limit], pagination.encode_page_token(last.occurred_at, last.activity_id, digest)

    def _list(self, user_id, activity_type, start, end, after, limit) -> list[ActivityRow]:
        with self.db.snapshot() as session:
            return ActivityRepository(session).activities(user_id, activity_type=activity_type, start=start, end=end,
                                                          after=after, limit=limit)

    async def get(self, user_id: str, activity_id: str) -> ActivityRow:
        row = await self.db.run(self._get, user_id, activity_id)
        if row is None:
            raise not_found("activity", activity_id)
        return row

    def _get(self, user_id: str, activity_id: str) -> ActivityRow | None:
        with self.db.snapshot() as session:
            return ActivityRepository(session).activity(activity_id, user_id)

    async def audit_log(self, user_id: str, entity_id: str, size: int, token: str) -> tuple[list[AuditLogRow], str]:
        if not user_id and not entity_id:
            raise invalid_argument("filter the audit log by user_id or entity_id")
        digest = pagination.filter_digest("audit", user_id, entity_id)
        after = pagination.decode_page_token(token, digest)
        limit = pagination.page_size(size)
        rows = await self.db.run(self._audit, user_id, entity_id, after, limit + 1)
        if len(rows) <= limit:
            return rows, ""
        last = rows[limit - 1]
        return rows[:limit], pagination.encode_page_token(last.occurred_at, last.audit_id, digest)

    def _audit(self, user_id, entity_id, after, limit) -> list[AuditLogRow]:
        with self.db.snapshot() as session:
            return ActivityRepository(session).audit_rows(user_id=user_id, entity_id=entity_id, after=after,
                                                          limit=limit)
