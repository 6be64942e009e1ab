"""What the orders service does: the submit saga and every other state change of an order.

Each change is one local transaction: the order row, its audit message and the events it
causes (DESIGN §4). Calls to market data and accounts happen between transactions, never
inside one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy.exc import IntegrityError

from mbt.accounts.v1 import accounts_pb2
from mbt.common.v1 import trading_pb2
from mbt.orders.v1 import orders_pb2
from services.common import pagination
from services.common.clock import Clock
from services.common.config import Settings
from services.common.conv import decimal_str, from_timestamp, money_str, parse_decimal
from services.common.db import Database
from services.common.errors import DomainError, not_found
from services.common.ids import new_id
from services.common.outbox import Outbox, UnitOfWork, unit_of_work
from services.common.remote import call
from services.orders import wire
from services.orders.domain import (Event, Fill, Order, OrderSpec, OrderType, Side, Status, TimeInForce, check_fill,
                                    check_market_hours, collar_price, replacement, validate_spec)
from services.orders.events import audit_snapshot, emit_filled, emit_order_event, emit_replaced
from services.orders.market import MarketView, usable_reference
from services.orders.store import OrderRepository

log = logging.getLogger(__name__)

# Refusals from accounts that end the saga (anything else leaves the order new, to resume).
DEFINITIVE_REFUSALS = {"INSUFFICIENT_BUYING_POWER", "INVALID_ARGUMENT", "NOT_FOUND", "CONFLICT"}
RESUME_EVERY_SECONDS = 2.0
EXPIRE_EVERY_SECONDS = 0.25


class Orders:
    def __init__(self, settings: Settings, db: Database, outbox: Outbox, clock: Clock, market: MarketView,
                 accounts) -> None:
        self.settings = settings
        self.db = db
        self.outbox = outbox
        self.clock = clock
        self.market = market
        self.accounts = accounts
        self.timeout = settings.rpc_timeout_seconds
        self._in_saga: set[str] = set()

    # -- submit -----------------------------------------------------------------------

    def _check_switches(self, *, new_exposure: bool) -> None:
        if self.settings.trading_disabled:
            raise DomainError("TRADING_DISABLED", "trading is disabled; the account is read-only for now")
        if new_exposure and self.settings.new_orders_disabled:
            raise DomainError("NEW_ORDERS_DISABLED", "new orders are disabled for now; cancels still work")

    async def submit(self, user_id: str, request: orders_pb2.SubmitOrderRequest) -> tuple[Order, bool]:
        """Returns (order, idempotent_replay)."""
        self._check_switches(new_exposure=True)
        order_id = new_id("ord")
        client_order_id = request.client_order_id.strip() or order_id
        spec = validate_spec(wire.spec_from_request(request, client_order_id))
        existing = await self.db.run(self._by_client_order_id, user_id, client_order_id)
        if existing is not None:
            return existing, True
        info = await self.market.symbol(spec.symbol)
        if info.asset_class != trading_pb2.ASSET_CLASS_US_EQUITY:
            raise DomainError("INVALID_ARGUMENT", "options orders are not supported yet; trade us_equity symbols",
                              field="symbol")
        now = self.clock.now()
        session = await self.market.session(now)
        check_market_hours(spec, now, session)
        reference = None
        if spec.order_type is OrderType.MARKET:  # the others carry their own price bound
            quote = await self.market.quote(spec.symbol)
            reference = usable_reference(quote, spec.side is Side.BUY)
            self._check_quote_fresh(spec, quote, reference, now, session.contains(now))
        order = Order(
            order_id=order_id, user_id=user_id, account_id="", spec=spec,
            multiplier=parse_decimal(info.multiplier, "multiplier") or Decimal(1), status=Status.NEW,
            created_at=now, updated_at=now,
            collar_price=collar_price(spec.side, spec.order_type, reference, spec.stop_price,
                                      self.settings.market_order_collar_pct),
            expires_at=session.close_at if spec.time_in_force is TimeInForce.DAY else None)
        self._in_saga.add(order_id)
        try:
            try:
                await self.db.run(self._insert_new, order)
            except IntegrityError:
                # A concurrent submit with the same client_order_id won the insert.
                return await self.db.run(self._by_client_order_id, user_id, client_order_id), True
            return await self._complete_saga(order), False
        finally:
            self._in_saga.discard(order_id)

    def _check_quote_fresh(self, spec: OrderSpec, quote, reference: Decimal | None, now: datetime,
                           market_open: bool) -> None:
        if reference is None:
            reason = "STALE_QUOTE" if quote is None else "UNUSABLE_QUOTE"
            raise DomainError(reason, f"no usable quote for {spec.symbol} to price a market order; "
                                      "use a limit order")
        age = now - from_timestamp(quote.quote_at)
        if market_open and age.total_seconds() > float(self.settings.max_quote_age_seconds):
            raise DomainError("STALE_QUOTE", f"the latest {spec.symbol} quote is {age.total_seconds():.0f}s old; "
                                             "a market order needs a fresh one")

    def _by_client_order_id(self, user_id: str, client_order_id: str) -> Order | None:
        with self.db.snapshot() as session:
            return OrderRepository(session).by_client_order_id(user_id, client_order_id)

    def _insert_new(self, order: Order) -> None:
        with unit_of_work(self.db, self.outbox) as uow:
            OrderRepository(uow.session).add(order)

    def _reserve_request(self, order: Order, version: int,
                         spec: OrderSpec | None = None) -> accounts_pb2.ReserveBuyingPowerRequest:
        """Accounts prices the hold at the order's limit, or else at its collar."""
        spec = spec or order.spec
        return accounts_pb2.ReserveBuyingPowerRequest(
            order_id=order.order_id, order_version=version, user_id=order.user_id, symbol=spec.symbol,
            asset_class=wire.ASSET_CLASS_WIRE[spec.asset_class], side=wire.SIDE_WIRE[spec.side],
            qty=decimal_str(spec.qty), order_type=wire.TYPE_WIRE[spec.order_type],
            limit_price=money_str(spec.limit_price), stop_price=money_str(spec.stop_price),
            reference_price=money_str(order.collar_price),
            multiplier=decimal_str(order.multiplier))

    async def _complete_saga(self, order: Order) -> Order:
        """new -> reserve buying power -> accepted, or rejected with the reason."""
        try:
            reply = await call(self.accounts.ReserveBuyingPower, self._reserve_request(order, 1),
                               timeout=self.timeout, what="accounts")
        except DomainError as refusal:
            if refusal.reason not in DEFINITIVE_REFUSALS:
                raise  # stays new: the resume loop finishes it, a retry with the client_order_id returns it
            await self.db.run(self._reject, order.order_id, refusal.reason.lower())
            raise DomainError(refusal.reason, refusal.message, order_id=order.order_id) from None
        accepted = await self.db.run(self._accept, order.order_id, reply.reservation.account_id)
        if accepted.status is not Status.ACCEPTED:
            # Canceled while we reserved: hand the hold back.
            await call(self.accounts.ReleaseBuyingPower,
                       accounts_pb2.ReleaseBuyingPowerRequest(order_id=order.order_id), timeout=self.timeout,
                       what="accounts")
        return accepted

    def _accept(self, order_id: str, account_id: str) -> Order:
        return self._conclude_saga(order_id, Event.ACCEPT, "accepted", account_id=account_id)

    def _reject(self, order_id: str, reason: str) -> Order:
        return self._conclude_saga(order_id, Event.REJECT, "rejected", reject_reason=reason)

    def _conclude_saga(self, order_id: str, event: Event, kind: str, **changes) -> Order:
        """The saga's last step: one audit row for the submit, whichever way it ended."""
        with unit_of_work(self.db, self.outbox) as uow:
            repo = OrderRepository(uow.session)
            order = repo.get(order_id, lock=True)
            if order.status is not Status.NEW:
                return order  # canceled meanwhile, or concluded by a concurrent resume
            concluded = order.apply(event, self.clock.now(), **changes)
            repo.save(concluded)
            emit_order_event(uow, kind, concluded)
            self._audit(uow, "submit", None, concluded)
            return concluded

    async def resume_new(self) -> int:
        """Finish sagas a crash or an unavailable dependency left at `new`."""
        stuck = await self.db.run(self._stuck)
        resumed = 0
        for order in stuck:
            if order.order_id in self._in_saga:
                continue
            self._in_saga.add(order.order_id)
            try:
                await self._complete_saga(order)
                resumed += 1
            except DomainError as exc:
                log.info("order saga not finished yet", extra={"fields": {"order_id": order.order_id,
                                                                          "reason": exc.reason}})
            finally:
                self._in_saga.discard(order.order_id)
        return resumed

    def _stuck(self) -> list[Order]:
        with self.db.snapshot() as session:
            return OrderRepository(session).stuck_new(self.clock.now(), limit=100)

    # -- reads --------------------------------------------------------------------------

    async def get(self, user_id: str, order_id: str) -> Order:
        return await self.db.run(self._get, user_id, order_id)

    def _get(self, user_id: str, order_id: str) -> Order:
        with self.db.snapshot() as session:
            repo = OrderRepository(session)
            order = repo.get(order_id, user_id=user_id)
            if order is None:
                raise not_found("order", order_id)
            return repo.with_fills(order)

    async def list(self, user_id: str, status: Status | None, symbol: str, size: int,
                   token: str) -> tuple[list[Order], str]:
        digest = pagination.filter_digest(user_id, status, symbol)
        after = pagination.decode_page_token(token, digest)
        limit = pagination.page_size(size)
        orders = await self.db.run(self._list, user_id, status, symbol, after, limit + 1)
        if len(orders) <= limit:
            return orders, ""
        last = orders[limit - 1]
        return orders[:limit], pagination.encode_page_token(last.created_at, last.order_id, digest)

    def _list(self, user_id, status, symbol, after, limit) -> list[Order]:
        with self.db.snapshot() as session:
            return OrderRepository(session).list_for_user(user_id, status=status, symbol=symbol, after=after,
                                                          limit=limit)

    async def list_open(self, symbol: str, size: int, token: str) -> tuple[list[Order], str]:
        digest = pagination.filter_digest("open", symbol)
        after = pagination.decode_page_token(token, digest)
        limit = pagination.page_size(size)
        orders = await self.db.run(self._list_open, symbol, after[1] if after else None, limit + 1)
        if len(orders) <= limit:
            return orders, ""
        last = orders[limit - 1]
        return orders[:limit], pagination.encode_page_token(last.created_at, last.order_id, digest)

    def _list_open(self, symbol: str, after_id: str | None, limit: int) -> list[Order]:
        with self.db.snapshot() as session:
            return OrderRepository(session).list_working(symbol=symbol or None, after_id=after_id, limit=limit)

    async def get_fill(self, fill_id: str) -> tuple[Fill, Order]:
        return await self.db.run(self._get_fill, fill_id)

    def _get_fill(self, fill_id: str) -> tuple[Fill, Order]:
        with self.db.snapshot() as session:
            repo = OrderRepository(session)
            fill = repo.get_fill(fill_id)
            if fill is None:
                raise not_found("fill", fill_id)
            return fill, repo.with_fills(repo.get(fill.order_id))

    # -- changes by the user -----------------------------------------------------------

    async def cancel(self, user_id: str, order_id: str) -> Order:
        self._check_switches(new_exposure=False)
        return await self.db.run(self._cancel, order_id, user_id, "user")

    def _cancel(self, order_id: str, user_id: str | None, reason: str) -> Order:
        with unit_of_work(self.db, self.outbox) as uow:
            repo = OrderRepository(uow.session)
            order = repo.get(order_id, user_id=user_id, lock=True)
            if order is None:
                raise not_found("order", order_id)
            if order.status is Status.CANCELED:
                return repo.with_fills(order)  # idempotent
            canceled = order.apply(Event.CANCEL, self.clock.now(), cancel_reason=reason)
            repo.save(canceled)
            emit_order_event(uow, "canceled", canceled)
            self._audit(uow, "cancel", order, canceled)
            return repo.with_fills(canceled)

    async def replace_order(self, user_id: str, order_id: str, request: orders_pb2.ReplaceOrderRequest) -> Order:
        self._check_switches(new_exposure=True)
        order = await self.get(user_id, order_id)
        if order.status is not Status.ACCEPTED:
            raise DomainError("ORDER_NOT_REPLACEABLE", f"cannot replace an order that is {order.status.value}")
        spec = replacement(order, qty=parse_decimal(request.qty, "qty"),
                           limit_price=parse_decimal(request.limit_price, "limit_price"),
                           stop_price=parse_decimal(request.stop_price, "stop_price"),
                           time_in_force=wire.tif_filter(request.time_in_force))
        now = self.clock.now()
        session = await self.market.session(now)
        check_market_hours(spec, now, session)
        collar = order.collar_price
        if spec.order_type is OrderType.STOP:
            collar = collar_price(spec.side, spec.order_type, None, spec.stop_price,
                                  self.settings.market_order_collar_pct)
        candidate = replace(order, spec=spec, collar_price=collar)
        await call(self.accounts.ReserveBuyingPower,
                   self._reserve_request(candidate, order.version + 1, spec), timeout=self.timeout,
                   what="accounts")
        expires_at = (session.close_at if spec.time_in_force is TimeInForce.DAY else None)
        return await self.db.run(self._replace, order, spec, collar, expires_at)

    def _replace(self, before: Order, spec: OrderSpec, collar: Decimal | None, expires_at) -> Order:
        with unit_of_work(self.db, self.outbox) as uow:
            repo = OrderRepository(uow.session)
            order = repo.get(before.order_id, lock=True)
            if order.version != before.version or order.status is not Status.ACCEPTED:
                raise DomainError("ORDER_NOT_REPLACEABLE", "the order changed while it was being replaced; "
                                                           "fetch it and try again")
            if spec.time_in_force is order.spec.time_in_force:
                expires_at = order.expires_at
            replaced = order.apply(Event.REPLACE, self.clock.now(), spec=spec, collar_price=collar,
                                   version=order.version + 1, expires_at=expires_at)
            repo.save(replaced)
            emit_replaced(uow, replaced, order)
            self._audit(uow, "replace", order, replaced)
            return repo.with_fills(replaced)

    # -- changes decided by the platform ----------------------------------------------

    async def record_fill(self, fill: Fill) -> tuple[Order, bool]:
        return await self.db.run(self._record_fill, fill)

    def _record_fill(self, fill: Fill) -> tuple[Order, bool]:
        with unit_of_work(self.db, self.outbox) as uow:
            repo = OrderRepository(uow.session)
            if repo.get_fill(fill.fill_id) is not None:
                return repo.with_fills(repo.get(fill.order_id)), True
            order = repo.get(fill.order_id, lock=True)
            if order is None:
                raise not_found("order", fill.order_id)
            if order.status is not Status.ACCEPTED:
                raise DomainError("CONFLICT", f"order {order.order_id} is {order.status.value}; the fill is refused")
            check_fill(order, fill)
            stop_reached = order.spec.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
            filled = order.apply(Event.FILL, fill.filled_at, filled_qty=order.filled_qty + fill.qty,
                                 filled_avg_price=fill.price,
                                 triggered_at=order.triggered_at or (fill.filled_at if stop_reached else None))
            repo.save(filled)
            repo.add_fill(fill, order.user_id)
            filled = repo.with_fills(filled)
            emit_filled(uow, filled, fill)
            self._audit(uow, "fill", order, filled, cause=fill.fill_id)
            return filled, False

    async def mark_triggered(self, order_id: str, at: datetime) -> Order:
        return await self.db.run(self._mark_triggered, order_id, at)

    def _mark_triggered(self, order_id: str, at: datetime) -> Order:
        with unit_of_work(self.db, self.outbox) as uow:
            repo = OrderRepository(uow.session)
            order = repo.get(order_id, lock=True)
            if order is None:
                raise not_found("order", order_id)
            if order.triggered_at is not None:
                return order
            if order.spec.order_type not in (OrderType.STOP, OrderType.STOP_LIMIT):
                raise DomainError("INVALID_ARGUMENT", "only stop and stop-limit orders trigger")
            triggered = order.apply(Event.TRIGGER, at)
            repo.save(triggered)
            emit_order_event(uow, "triggered", triggered)
            self._audit(uow, "trigger", order, triggered)
            return triggered

    async def cancel_unfilled(self, order_id: str, reason: str) -> Order:
        return await self.db.run(self._cancel, order_id, None, reason or "not_filled")

    async def expire_due(self, as_of: datetime | None = None) -> int:
        now = self.clock.now()
        as_of = min(as_of, now) if as_of else now
        return await self.db.run(self._expire_due, as_of)

    def _expire_due(self, as_of: datetime) -> int:
        expired = 0
        with self.db.snapshot() as session:
            due = OrderRepository(session).due_to_expire(as_of, limit=500)
        for candidate in due:
            with unit_of_work(self.db, self.outbox) as uow:
                repo = OrderRepository(uow.session)
                order = repo.get(candidate.order_id, lock=True)
                if order.status is not Status.ACCEPTED:
                    continue
                done = order.apply(Event.EXPIRE, order.expires_at)
                repo.save(done)
                emit_order_event(uow, "expired", done)
                self._audit(uow, "expire", order, done)
                expired += 1
        return expired

    async def run_housekeeping(self) -> None:
        """Background: expire day orders at the close, finish interrupted sagas."""
        last_resume = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.expire_due()
                if loop.time() - last_resume >= RESUME_EVERY_SECONDS:
                    last_resume = loop.time()
                    await self.resume_new()
            except asyncio.CancelledError:
                raise
            except DomainError as exc:
                log.info("housekeeping waits", extra={"fields": {"reason": exc.reason}})
            except Exception:
                log.exception("housekeeping failed; retrying")
            await asyncio.sleep(EXPIRE_EVERY_SECONDS)

    def _audit(self, uow: UnitOfWork, action: str, before: Order | None, after: Order, cause: str | None = None):
        uow.audit(action=action, entity_type="order", entity_id=after.order_id, user_id=after.user_id,
                  before=None if before is None else audit_snapshot(before), after=audit_snapshot(after),
                  occurred_at=after.updated_at, cause=cause or f"{after.order_id}:{action}:{after.version}")
