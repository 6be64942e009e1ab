"""What the orders service does: the submit saga and every other state change of an order.

Each change is one local transaction: the order row, its audit message and the events it
causes (DESIGN §4). Calls to market data and accounts happen between transactions, never
inside one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.exc import IntegrityError

from mbt.accounts.v1 import accounts_pb2
from mbt.common.v1 import trading_pb2
from mbt.orders.v1 import orders_pb2
from services.common.persistence import pagination
from services.common.clock import Clock, WallClock
from services.common.config import Settings
from services.common.wire.conv import decimal_str, from_timestamp, money_str, parse_decimal
from services.common.persistence.db import Database
from services.common.errors import DomainError, not_found
from services.common.ids import new_id
from services.common.messaging.outbox import Outbox, UnitOfWork, unit_of_work
from services.common.rpc.remote import call
from services.orders import wire
from services.orders.domain import (Event, Fill, Order, OrderSpec, OrderType, Replacement, Side, Status, TimeInForce,
                                    check_fill, check_market_hours, collar_price, replacement, same_execution,
                                    spec_digest, validate_spec)
from services.orders.events import audit_snapshot, emit_filled, emit_order_event, emit_replaced
from services.orders.clients import MarketView, usable_reference
from services.orders.store import OrderRepository

log = logging.getLogger(__name__)

# Refusals from accounts that end the saga (anything else leaves the order new, to resume).
DEFINITIVE_REFUSALS = {"INSUFFICIENT_BUYING_POWER", "INVALID_ARGUMENT", "NOT_FOUND", "CONFLICT",
                       "IDEMPOTENCY_KEY_REUSED"}
RESUME_EVERY_SECONDS = 2.0
# A replace belongs to the request that started it (or to its resumer) for this many RPC
# timeouts of wall time; after that housekeeping or the next replace may finish it.
REPLACE_LEASE_TIMEOUTS = 2
EXPIRE_EVERY_SECONDS = 0.25


class Orders:
    def __init__(self, settings: Settings, db: Database, outbox: Outbox, clock: Clock, market: MarketView,
                 accounts, wall: Clock | None = None) -> None:
        self.settings = settings
        self.wall = wall or WallClock()
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
        digest = spec_digest(spec)
        existing = await self.db.run(self._by_client_order_id, user_id, client_order_id)
        if existing is not None:
            return await self._replay(existing, digest), True
        info = await self.market.symbol(spec.symbol)
        if info.asset_class != trading_pb2.ASSET_CLASS_US_EQUITY:
            raise DomainError("INVALID_ARGUMENT", "options orders are not supported yet; trade us_equity symbols",
                              field="symbol")
        if not info.tradable:
            raise DomainError("SYMBOL_NOT_TRADABLE", f"{spec.symbol} cannot be traded here: market data has no "
                                                     "quotes for it, so no order on it could ever fill")
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
            expires_at=session.close_at if spec.time_in_force is TimeInForce.DAY else None, request_digest=digest)
        self._in_saga.add(order_id)
        try:
            try:
                await self.db.run(self._insert_new, order)
            except IntegrityError:
                # A concurrent submit with the same client_order_id won the insert.
                winner = await self.db.run(self._by_client_order_id, user_id, client_order_id)
                return await self._replay(winner, digest), True
            return await self._complete_saga(order), False
        finally:
            self._in_saga.discard(order_id)

    async def _replay(self, order: Order, digest: str) -> Order:
        """A client_order_id sent again answers what its first submit answered: the same
        order, or the same refusal; with other terms it is refused. A submit a crash left
        unfinished is finished now."""
        if not order.submitted_with(digest):
            raise DomainError("IDEMPOTENCY_KEY_REUSED",
                              f"client_order_id {order.spec.client_order_id!r} was used for order {order.order_id} "
                              f"({order.spec.side.value} {order.spec.qty.normalize():f} {order.spec.symbol}) with "
                              "other terms; send a new client_order_id for a new order", order_id=order.order_id)
        if order.status is Status.REJECTED:
            raise DomainError(order.reject_reason.upper(),
                              order.reject_message or f"the order was rejected: {order.reject_reason}",
                              order_id=order.order_id)
        if order.status is Status.NEW and order.order_id not in self._in_saga:
            self._in_saga.add(order.order_id)
            try:
                return await self._complete_saga(order)
            finally:
                self._in_saga.discard(order.order_id)
        return order

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
            rejected = await self.db.run(self._reject, order.order_id, refusal)
            if rejected.status is Status.REJECTED:
                raise DomainError(refusal.reason, refusal.message, order_id=order.order_id) from None
            return rejected  # canceled meanwhile
        accepted = await self.db.run(self._accept, order.order_id, reply.reservation.account_id)
        if accepted.status is not Status.ACCEPTED:
            # Canceled while we reserved: hand the hold back.
            await call(self.accounts.ReleaseBuyingPower,
                       accounts_pb2.ReleaseBuyingPowerRequest(order_id=order.order_id, user_id=order.user_id),
                       timeout=self.timeout, what="accounts")
        return accepted

    def _accept(self, order_id: str, account_id: str) -> Order:
        return self._conclude_saga(order_id, Event.ACCEPT, "accepted", account_id=account_id)

    def _reject(self, order_id: str, refusal: DomainError) -> Order:
        return self._conclude_saga(order_id, Event.REJECT, "rejected", reject_reason=refusal.reason.lower(),
                                   reject_message=refusal.message[:500])

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
            canceled = order.apply(Event.CANCEL, self.clock.now(), cancel_reason=reason, pending=None)
            repo.save(canceled)
            self._abandon_pending(repo, order)
            emit_order_event(uow, "canceled", canceled)
            self._audit(uow, "cancel", order, canceled)
            return repo.with_fills(canceled)

    async def replace_order(self, user_id: str, order_id: str, request: orders_pb2.ReplaceOrderRequest) -> Order:
        """The replace saga: the new version's terms are recorded as pending, accounts holds
        buying power for them beside the current version's, then the order takes them
        (version +1, OrderReplaced, which releases the old version's hold). A replace cut
        short stays pending and is finished by the next replace or by housekeeping; one
        refused for good is abandoned and whatever it held is released."""
        self._check_switches(new_exposure=True)
        order = await self.get(user_id, order_id)
        if order.status is Status.ACCEPTED and order.pending is not None:
            order = await self._settle_interrupted(order)
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
        expires_at = session.close_at if spec.time_in_force is TimeInForce.DAY else None
        pending = await self.db.run(self._begin_replace, order, spec, collar, expires_at)
        return await self._run_replacement(order, pending, resumed=False)

    async def _settle_interrupted(self, order: Order) -> Order:
        """Finish (or abandon) a replace that was cut short, before a new one starts."""
        pending = await self.db.run(self._take_over, order.order_id, order.pending.version)
        if pending is None:
            raise DomainError("CONFLICT", f"order {order.order_id} is being replaced right now; retry in a few "
                                          "seconds")
        try:
            await self._run_replacement(order, pending, resumed=True)
        except DomainError as exc:
            if exc.reason not in DEFINITIVE_REFUSALS | {"ORDER_NOT_REPLACEABLE"}:
                raise
        return await self.get(order.user_id, order.order_id)

    def _lease_until(self) -> datetime:
        return self.wall.now() + timedelta(seconds=REPLACE_LEASE_TIMEOUTS * self.timeout)

    def _begin_replace(self, before: Order, spec: OrderSpec, collar: Decimal | None,
                       expires_at: datetime | None) -> Replacement:
        with unit_of_work(self.db, self.outbox) as uow:
            repo = OrderRepository(uow.session)
            order = repo.get(before.order_id, lock=True)
            if order.version != before.version or order.status is not Status.ACCEPTED:
                raise DomainError("ORDER_NOT_REPLACEABLE", "the order changed while it was being replaced; "
                                                           "fetch it and try again")
            if order.pending is not None:
                raise DomainError("CONFLICT", f"order {order.order_id} is being replaced right now; retry in a few "
                                              "seconds")
            if spec.time_in_force is order.spec.time_in_force:
                expires_at = order.expires_at
            # A version an abandoned attempt used is never used again: accounts may still
            # hear of that attempt, and must not mistake it for this one.
            version = max(order.version, repo.last_replacement_version(order.order_id)) + 1
            pending = Replacement(version=version, spec=spec, collar_price=collar, expires_at=expires_at,
                                  requested_at=self.clock.now(), lease_until=self._lease_until())
            repo.add_replacement(order.order_id, pending)
            return pending

    def _take_over(self, order_id: str, version: int) -> Replacement | None:
        """Lease an interrupted replace to finish it; None while its owner may still be at work."""
        with self.db.transaction() as session:
            repo = OrderRepository(session)
            if not repo.lease_replacement(order_id, version, self.wall.now(), self._lease_until()):
                return None
            order = repo.get(order_id)
            return order.pending if order.pending is not None and order.pending.version == version else None

    async def _run_replacement(self, order: Order, pending: Replacement, *, resumed: bool) -> Order:
        candidate = replace(order, spec=pending.spec, collar_price=pending.collar_price)
        try:
            await call(self.accounts.ReserveBuyingPower,
                       self._reserve_request(candidate, pending.version, pending.spec), timeout=self.timeout,
                       what="accounts")
        except DomainError as refusal:
            if refusal.reason not in DEFINITIVE_REFUSALS:
                raise  # stays pending: finished later, by the next replace or by housekeeping
            if resumed:
                # An earlier attempt's request may have held something, or may still arrive:
                # release that version for good (a late reservation of it is then refused).
                await call(self.accounts.ReleaseBuyingPower, accounts_pb2.ReleaseBuyingPowerRequest(
                    order_id=order.order_id, order_version=pending.version, user_id=order.user_id),
                    timeout=self.timeout, what="accounts")
            await self.db.run(self._end_replacement, order.order_id, pending.version, resumed)
            raise
        return await self.db.run(self._commit_replace, order.order_id, pending)

    def _end_replacement(self, order_id: str, version: int, resumed: bool) -> None:
        with self.db.transaction() as session:
            repo = OrderRepository(session)
            if resumed:
                repo.close_replacement(order_id, version, "abandoned")
            else:  # refused on its only request: nothing was held, the version may serve again
                repo.forget_replacement(order_id, version)

    def _commit_replace(self, order_id: str, pending: Replacement) -> Order:
        with unit_of_work(self.db, self.outbox) as uow:
            repo = OrderRepository(uow.session)
            order = repo.get(order_id, lock=True)
            if order.version == pending.version:
                return repo.with_fills(order)  # a concurrent resume committed it
            if order.status is not Status.ACCEPTED or order.pending is None or order.pending.version != pending.version:
                raise DomainError("ORDER_NOT_REPLACEABLE", f"the order was {order.status.value} before the replace "
                                                           "took effect")
            replaced = order.apply(Event.REPLACE, self.clock.now(), spec=pending.spec,
                                   collar_price=pending.collar_price, version=pending.version,
                                   expires_at=pending.expires_at, pending=None)
            repo.save(replaced)
            repo.close_replacement(order_id, pending.version, "committed")
            emit_replaced(uow, replaced, order)
            self._audit(uow, "replace", order, replaced)
            return repo.with_fills(replaced)

    async def resume_replacements(self) -> int:
        """Finish (or abandon) replaces whose owner stopped: housekeeping, and tests."""
        resumed = 0
        for order_id, version in await self.db.run(self._unleased_replacements):
            pending = await self.db.run(self._take_over, order_id, version)
            if pending is None:
                continue
            order = await self.db.run(self._get_any, order_id)
            try:
                await self._run_replacement(order, pending, resumed=True)
                resumed += 1
            except DomainError as exc:
                log.info("replace not finished", extra={"fields": {"order_id": order_id, "version": version,
                                                                    "reason": exc.reason}})
        return resumed

    def _unleased_replacements(self) -> list[tuple[str, int]]:
        with self.db.snapshot() as session:
            return OrderRepository(session).unleased_replacements(self.wall.now(), limit=100)

    def _get_any(self, order_id: str) -> Order:
        with self.db.snapshot() as session:
            return OrderRepository(session).get(order_id)

    # -- changes decided by the platform ----------------------------------------------

    async def record_fill(self, fill: Fill) -> tuple[Order, bool]:
        return await self.db.run(self._record_fill, fill)

    def _record_fill(self, fill: Fill) -> tuple[Order, bool]:
        with unit_of_work(self.db, self.outbox) as uow:
            repo = OrderRepository(uow.session)
            recorded = repo.get_fill(fill.fill_id)
            if recorded is not None:
                if not same_execution(recorded, fill):
                    raise DomainError("IDEMPOTENCY_KEY_REUSED", f"fill {fill.fill_id} was recorded before with other "
                                                                "terms; it is not recorded again")
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
                                 triggered_at=order.triggered_at or (fill.filled_at if stop_reached else None),
                                 pending=None)
            repo.save(filled)
            self._abandon_pending(repo, order)
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
                done = order.apply(Event.EXPIRE, order.expires_at, pending=None)
                repo.save(done)
                self._abandon_pending(repo, order)
                emit_order_event(uow, "expired", done)
                self._audit(uow, "expire", order, done)
                expired += 1
        return expired

    async def run_housekeeping(self) -> None:
        """Background: expire day orders at the close, finish interrupted submits and replaces."""
        last_resume = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.expire_due()
                if loop.time() - last_resume >= RESUME_EVERY_SECONDS:
                    last_resume = loop.time()
                    await self.resume_new()
                    await self.resume_replacements()
            except asyncio.CancelledError:
                raise
            except DomainError as exc:
                log.info("housekeeping waits", extra={"fields": {"reason": exc.reason}})
            except Exception:
                log.exception("housekeeping failed; retrying")
            await asyncio.sleep(EXPIRE_EVERY_SECONDS)

    @staticmethod
    def _abandon_pending(repo: OrderRepository, order: Order) -> None:
        """The order ended while a replace was pending: the replace will never take effect
        (accounts releases every version's hold when it hears the order ended)."""
        if order.pending is not None:
            repo.close_replacement(order.order_id, order.pending.version, "abandoned")

    def _audit(self, uow: UnitOfWork, action: str, before: Order | None, after: Order, cause: str | None = None):
        uow.audit(action=action, entity_type="order", entity_id=after.order_id, user_id=after.user_id,
                  before=None if before is None else audit_snapshot(before), after=audit_snapshot(after),
                  occurred_at=after.updated_at, cause=cause or f"{after.order_id}:{action}:{after.version}")
