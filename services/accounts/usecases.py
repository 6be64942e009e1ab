"""What the accounts service does: open accounts on first use, value them, hold and release
buying power, and apply fills to cash and positions (exactly once, via the inbox)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy.exc import IntegrityError

from mbt.accounts.v1 import accounts_pb2
from mbt.common.v1 import events_pb2
from mbt.orders.v1 import events_pb2 as order_events
from services.accounts import wire
from services.accounts.domain import (ABANDONED, DEFAULT_PROFILE, ENDED_REASONS, STARTING_CASH, SUPERSEDED,
                                      AccountType, Hold, OrderRequest, Position, Profile, Side, Tier, Valuation,
                                      apply_fill, buying_power, check_fits, check_reservable, effective_hold,
                                      hold_for, holds_by_order, ledger_breach, mark_price, market_value,
                                      uncovered_reason, unrealized_pl)
from services.accounts.events import emit_account_opened, emit_fill_applied
from services.accounts.clients import Mark, Pricing
from services.accounts.store import (AccountRepository, AccountRow, LedgerEntryRow, PositionRow, ReservationRow,
                                     UserRow)
from services.common.rpc import context
from services.common.clock import Clock
from services.common.wire.conv import from_timestamp
from services.common.persistence.db import Database
from services.common.errors import DomainError, invalid_argument, not_found
from services.common.ids import derived_id, new_id
from services.common.observability.metrics import LEDGER_REFUSALS
from services.common.messaging.outbox import Outbox, UnitOfWork, unit_of_work

log = logging.getLogger(__name__)


def valuation(account: AccountRow, positions: list[PositionRow], reservations: list[ReservationRow],
              marks: dict[str, Mark]) -> Valuation:
    long_value = short_value = Decimal(0)
    for row in positions:
        position = row.as_position()
        mark = marks.get(row.symbol)
        value = market_value(position, mark_price(position, mark and mark.bid, mark and mark.ask))
        if value >= 0:
            long_value += value
        else:
            short_value += value
    held = holds_by_order((r.order_id, Hold(r.amount, r.qty)) for r in reservations)
    return Valuation(account.cash, long_value, short_value, sum((h.amount for h in held.values()), Decimal(0)))


class _MarksNeeded(Exception):
    """A margin account's hold needs its positions priced first (outside the transaction)."""

    def __init__(self, symbols: set[str]) -> None:
        super().__init__("prices needed")
        self.symbols = symbols


class Accounts:
    def __init__(self, db: Database, outbox: Outbox, clock: Clock, pricing: Pricing) -> None:
        self.db = db
        self.outbox = outbox
        self.clock = clock
        self.pricing = pricing

    # -- opening ------------------------------------------------------------------------

    def _open(self, uow: UnitOfWork, user_id: str) -> AccountRow:
        """The user's account, created on first use from their investor profile."""
        repo = AccountRepository(uow.session)
        account = repo.account_of(user_id, lock=True)
        if account is not None:
            return account
        now = self.clock.now()
        user = repo.user(user_id)
        if user is None:
            user = UserRow(user_id=user_id, tier=Tier.FREE.value, investor_profile=DEFAULT_PROFILE.value,
                           created_at=now, updated_at=now)
            repo.add(user)
        profile = Profile(user.investor_profile)
        cash = STARTING_CASH[profile]
        account = AccountRow(account_id=new_id("acct"), user_id=user_id, account_type=AccountType.CASH.value,
                             status="active", currency="USD", investor_profile=profile.value, starting_cash=cash,
                             cash=cash, version=1, created_at=now, updated_at=now)
        repo.add(account)
        repo.add(LedgerEntryRow(entry_id=new_id("led"), account_id=account.account_id, kind="opening", fill_id=None,
                                order_id=None, symbol="", side="", qty=Decimal(0), price=Decimal(0),
                                multiplier=Decimal(1), cash_delta=cash, realized_pl=Decimal(0), cash_after=cash,
                                occurred_at=now))
        emit_account_opened(uow, account)
        uow.audit(action="open", entity_type="account", entity_id=account.account_id, user_id=user_id, before=None,
                  after={"account_type": account.account_type, "starting_cash": cash, "profile": profile.value},
                  occurred_at=now, cause=f"open:{user_id}")
        return account

    def _ensure(self, user_id: str) -> str:
        try:
            with unit_of_work(self.db, self.outbox) as uow:
                return self._open(uow, user_id).account_id
        except IntegrityError:  # a concurrent first request opened it
            with self.db.snapshot() as session:
                return AccountRepository(session).account_of(user_id).account_id

    def _state(self, user_id: str, include_closed: bool = False):
        with self.db.snapshot() as session:
            repo = AccountRepository(session)
            account = repo.account_of(user_id)
            if account is None:
                return None
            return (account, repo.positions(account.account_id, include_closed=include_closed),
                    repo.active_reservations(account.account_id))

    async def _load(self, user_id: str, include_closed: bool = False):
        state = await self.db.run(self._state, user_id, include_closed)
        if state is None:
            if context.identity().kind == "ops":
                raise not_found("account of user", user_id)  # reading never opens an account
            await self.db.run(self._ensure, user_id)
            state = await self.db.run(self._state, user_id, include_closed)
        account, positions, reservations = state
        marks = await self.pricing.latest({p.symbol for p in positions if p.closed_at is None})
        return account, positions, reservations, marks

    # -- reads --------------------------------------------------------------------------

    async def get_account(self, user_id: str) -> accounts_pb2.Account:
        account, positions, reservations, marks = await self._load(user_id)
        value = valuation(account, positions, reservations, marks)
        return wire.account_to_proto(account, value, buying_power(AccountType(account.account_type), value),
                                     self.clock.now())

    async def list_positions(self, user_id: str, include_closed: bool) -> list[accounts_pb2.Position]:
        _, positions, _, marks = await self._load(user_id, include_closed)
        return [wire.position_to_proto(row, marks.get(row.symbol)) for row in positions]

    async def get_position(self, user_id: str, symbol: str) -> accounts_pb2.Position:
        _, positions, _, marks = await self._load(user_id)
        for row in positions:
            if row.symbol == symbol:
                return wire.position_to_proto(row, marks.get(symbol))
        raise not_found("position", symbol)

    async def get_pnl(self, user_id: str, start: datetime | None,
                      end: datetime | None) -> accounts_pb2.GetPnlResponse:
        """P&L of the window [start, end]; an end after the simulated now is cut at now, and the
        answer says so (``to_time_clamped``): nothing is known about the future."""
        now = self.clock.now()
        clamped = end is not None and end > now
        end = now if end is None or clamped else end
        if start is not None and start > end:
            raise invalid_argument("from must not be after to", "from")
        account, *_ = await self._load(user_id)
        start = start or account.created_at
        ledger = await self.db.run(self._ledger, account.account_id, end)
        realized: dict[str, Decimal] = {}
        held: dict[str, Position] = {}
        for entry in ledger:
            if entry.kind != "fill":
                continue
            effect = apply_fill(held.get(entry.symbol), entry.symbol, Side(entry.side), entry.qty, entry.price,
                                entry.multiplier)
            held[entry.symbol] = effect.position
            if start <= entry.occurred_at <= end:
                realized[entry.symbol] = realized.get(entry.symbol, Decimal(0)) + effect.realized_pl
        open_positions = {s: p for s, p in held.items() if p.is_open}
        marks = await (self.pricing.latest(set(open_positions)) if end >= now
                       else self.pricing.at(set(open_positions), end))
        unrealized = {s: unrealized_pl(p, mark_price(p, (m := marks.get(s)) and m.bid, m and m.ask))
                      for s, p in open_positions.items()}
        return accounts_pb2.GetPnlResponse(pnl=wire.pnl_to_proto(start, end, realized, unrealized),
                                           to_time_clamped=clamped)

    def _ledger(self, account_id: str, until: datetime) -> list[LedgerEntryRow]:
        with self.db.snapshot() as session:
            return AccountRepository(session).ledger(account_id, until=until)

    # -- users ----------------------------------------------------------------------------

    async def get_user(self, user_id: str) -> accounts_pb2.User:
        return await self.db.run(self._get_user, user_id)

    def _get_user(self, user_id: str) -> accounts_pb2.User:
        with self.db.snapshot() as session:
            user = AccountRepository(session).user(user_id)
        if user is None:
            raise not_found("user", user_id)
        return wire.user_to_proto(user)

    async def update_user(self, request: accounts_pb2.UpdateUserRequest) -> accounts_pb2.User:
        if not request.user_id:
            raise invalid_argument("user_id is required", "user_id")
        return await self.db.run(self._update_user, request)

    def _update_user(self, request: accounts_pb2.UpdateUserRequest) -> accounts_pb2.User:
        with unit_of_work(self.db, self.outbox) as uow:
            repo = AccountRepository(uow.session)
            now = self.clock.now()
            user = repo.user(request.user_id)
            if user is None:
                user = UserRow(user_id=request.user_id, tier=Tier.FREE.value,
                               investor_profile=DEFAULT_PROFILE.value, created_at=now, updated_at=now)
                repo.add(user)
            before = wire.user_snapshot(user)
            if request.tier:
                user.tier = wire.TIERS[request.tier].value
            if request.investor_profile:
                user.investor_profile = wire.PROFILES[request.investor_profile].value
            if request.account_type:
                self._change_account_type(repo, request.user_id, wire.ACCOUNT_TYPES[request.account_type])
            user.updated_at = now
            uow.audit(action="update", entity_type="user", entity_id=user.user_id, user_id=user.user_id,
                      before=before, after=wire.user_snapshot(user), occurred_at=now)
            return wire.user_to_proto(user)

    def _change_account_type(self, repo: AccountRepository, user_id: str, account_type: AccountType) -> None:
        account = repo.account_of(user_id, lock=True)
        if account is None or account.account_type == account_type.value:
            return
        if repo.open_positions(account.account_id) or repo.active_reservations(account.account_id):
            raise DomainError("INVALID_ARGUMENT", "the account type can change only with no positions and no "
                                                  "working orders", field="account_type")
        account.account_type = account_type.value
        account.version += 1

    # -- buying power ---------------------------------------------------------------------

    async def reserve(self, request: accounts_pb2.ReserveBuyingPowerRequest) -> tuple[ReservationRow, Decimal]:
        order = wire.order_request(request)
        if not request.order_id or not request.user_id:
            raise invalid_argument("order_id and user_id are required")
        try:
            return await self._reserve_retrying(request, order, None)
        except _MarksNeeded as needed:  # a margin account: price its positions, then hold
            marks = await self.pricing.latest(needed.symbols | {order.symbol})
            return await self._reserve_retrying(request, order, marks)

    async def _reserve_retrying(self, request, order: OrderRequest, marks) -> tuple[ReservationRow, Decimal]:
        try:
            return await self.db.run(self._reserve, request, order, marks)
        except IntegrityError:  # a concurrent first request opened the account: hold against it
            return await self.db.run(self._reserve, request, order, marks)

    def _reserve(self, request, order: OrderRequest,
                 marks: dict[str, Mark] | None) -> tuple[ReservationRow, Decimal]:
        """One transaction: the account row is locked, so concurrent holds queue here.
        ``marks`` None: not priced yet, enough for a cash account."""
        with unit_of_work(self.db, self.outbox) as uow:
            repo = AccountRepository(uow.session)
            account = self._open(uow, request.user_id)
            account_type = AccountType(account.account_type)
            positions = repo.open_positions(account.account_id)
            if marks is None and account_type is AccountType.MARGIN:
                raise _MarksNeeded({p.symbol for p in positions})
            reservations = repo.active_reservations(account.account_id)
            value = valuation(account, positions, reservations, marks or {})
            versions = repo.holds_of(request.order_id)
            existing = check_reservable(request.order_id, request.order_version, order,
                                        [row.as_version_hold() for row in versions])
            if existing is not None:
                return next(r for r in versions if r.order_version == existing.version), \
                    buying_power(account_type, value)
            position = next((p for p in positions if p.symbol == order.symbol), None)
            others = holds_by_order((r.order_id, Hold(r.amount, r.qty)) for r in reservations
                                    if r.symbol == order.symbol and r.order_id != request.order_id)
            hold = hold_for(account_type, order, position.qty if position else Decimal(0),
                            sum((h.qty for h in others.values()), Decimal(0)))
            current = effective_hold(row.as_version_hold() for row in versions)
            after = Hold(max(current.amount, hold.amount), max(current.qty, hold.qty))
            check_fits(account_type, value, after, released=current.amount)
            now = self.clock.now()
            row = ReservationRow(order_id=request.order_id, order_version=request.order_version,
                                 account_id=account.account_id, symbol=order.symbol, side=order.side.value,
                                 order_qty=order.qty, price_bound=order.price_bound, multiplier=order.multiplier,
                                 amount=hold.amount, qty=hold.qty, created_at=now, updated_at=now, released_at=None,
                                 release_reason="")
            repo.add(row)
            account.version += 1
            held = Valuation(value.cash, value.long_market_value, value.short_market_value,
                             value.held - current.amount + after.amount)
            return row, buying_power(account_type, held)

    async def release(self, order_id: str, version: int, user_id: str) -> Decimal:
        """Internal: release one version's hold (``version`` > 0, a replace abandoned) or every
        version's (0: the order ended before it was accepted)."""
        return await self.db.run(self._release_now, order_id, version, user_id)

    def _release_now(self, order_id: str, version: int, user_id: str) -> Decimal:
        with unit_of_work(self.db, self.outbox) as uow:
            reason = ABANDONED if version else "canceled"
            return self._release(uow, order_id, user_id, reason=reason, version=version or None)

    def _release(self, uow: UnitOfWork, order_id: str, user_id: str | None, *, reason: str,
                 version: int | None = None, below: int | None = None) -> Decimal:
        """Release an order's holds: all of them, one ``version``, or those ``below`` a version
        (superseded by it). Idempotent: a repeat answers what the first release held.

        A release that finds nothing to release leaves a released marker (for ``user_id``'s
        account), so a reservation arriving late for that order or version is refused."""
        repo = AccountRepository(uow.session)
        rows = repo.holds_of(order_id)
        if version is not None:
            rows = [r for r in rows if r.order_version == version]
        if below is not None:
            rows = [r for r in rows if r.order_version < below]
        now = self.clock.now()
        if not rows:
            if below is None and user_id:
                account = self._open(uow, user_id)
                repo.add(ReservationRow(order_id=order_id, order_version=version or 0, account_id=account.account_id,
                                        symbol="", side=None, order_qty=None, price_bound=None, multiplier=None,
                                        amount=Decimal(0), qty=Decimal(0), created_at=now, updated_at=now,
                                        released_at=now, release_reason=reason))
            return Decimal(0)
        for row in rows:
            if row.released_at is None:
                row.released_at, row.updated_at, row.release_reason = now, now, reason
            elif reason in ENDED_REASONS and row.release_reason not in ENDED_REASONS:
                row.release_reason = reason  # the order ended: no version of it may be held again
        return effective_hold(replace(row.as_version_hold(), active=True) for row in rows).amount

    # -- events from orders ---------------------------------------------------------------

    def on_order_ended(self, uow: UnitOfWork, event: events_pb2.Event, payload) -> None:
        """OrderCanceled / OrderExpired: the hold goes back."""
        reason = "expired" if event.event_type.endswith("OrderExpired") else "canceled"
        self._release(uow, payload.order.order_id, payload.order.user_id, reason=reason)

    def on_order_replaced(self, uow: UnitOfWork, event: events_pb2.Event,
                          payload: order_events.OrderReplaced) -> None:
        """A replace took effect: the versions before it stop holding."""
        self._release(uow, payload.order.order_id, None, reason=SUPERSEDED, below=payload.order.version)

    def on_order_filled(self, uow: UnitOfWork, event: events_pb2.Event, payload: order_events.OrderFilled) -> None:
        order, fill = payload.order, payload.fill
        repo = AccountRepository(uow.session)
        terms = wire.fill_terms(order, fill)
        applied = repo.ledger_entry_of_fill(fill.fill_id)
        if applied is not None:
            if wire.ledger_fill_terms(applied) != terms:
                self._refuse_fill(uow, order, fill, "IDEMPOTENCY_KEY_REUSED",
                                  "the fill id was applied before with other terms")
            return
        account = repo.account(order.account_id, lock=True) or self._open(uow, order.user_id)
        account_type = AccountType(account.account_type)
        hold = next((r.as_version_hold() for r in repo.holds_of(order.order_id)
                     if r.order_version == order.version), None)
        row = repo.open_position(account.account_id, fill.symbol)
        effect = apply_fill(row.as_position() if row else None, fill.symbol, terms.side, terms.qty, terms.price,
                            terms.multiplier)
        breach = uncovered_reason(account_type, hold, terms) or \
            ledger_breach(account_type, account.cash + effect.cash_delta, effect.position.qty)
        if breach is not None:
            self._refuse_fill(uow, order, fill, "LEDGER_INVARIANT", breach)
            return
        filled_at = from_timestamp(fill.filled_at)
        account.cash += effect.cash_delta
        account.version += 1
        account.updated_at = filled_at
        self._move_position(repo, account, row, effect, filled_at)
        repo.add(LedgerEntryRow(entry_id=derived_id("led", fill.fill_id), account_id=account.account_id,
                                kind="fill", fill_id=fill.fill_id, order_id=order.order_id, symbol=fill.symbol,
                                side=terms.side.value, qty=terms.qty, price=terms.price, multiplier=terms.multiplier,
                                cash_delta=effect.cash_delta, realized_pl=effect.realized_pl,
                                cash_after=account.cash, occurred_at=filled_at))
        self._release(uow, order.order_id, None, reason="filled")
        emit_fill_applied(uow, account, fill, effect, order.user_id, filled_at)

    def _refuse_fill(self, uow: UnitOfWork, order, fill, reason: str, why: str) -> None:
        """The ledger does not apply a fill that would break it. Loud, never silent: an error
        log line, an audit row and a metric; the event is acknowledged (retrying cannot fix it)."""
        log.error("fill refused by the ledger", extra={"fields": {
            "reason": reason.lower(), "why": why, "fill_id": fill.fill_id, "order_id": order.order_id,
            "order_version": order.version, "user_id": order.user_id}})
        LEDGER_REFUSALS.labels(service="accounts", reason=reason.lower()).inc()
        uow.audit(action="refuse_fill", entity_type="fill", entity_id=fill.fill_id, user_id=order.user_id,
                  before=None, after={"reason": reason.lower(), "why": why, "order_id": order.order_id,
                                      "order_version": order.version, "qty": fill.qty, "price": fill.price},
                  occurred_at=from_timestamp(fill.filled_at), cause=f"refuse:{fill.fill_id}")

    def _move_position(self, repo: AccountRepository, account: AccountRow, row: PositionRow | None, effect,
                       at: datetime) -> None:
        after = effect.position
        if row is None:
            repo.add(PositionRow(position_id=new_id("pos"), account_id=account.account_id, symbol=after.symbol,
                                 asset_class="us_equity", qty=after.qty, multiplier=after.multiplier,
                                 avg_entry_price=after.avg_entry_price, realized_pl=after.realized_pl,
                                 opened_at=at, closed_at=None, updated_at=at))
            return
        row.updated_at = at
        if not effect.closed:
            row.qty, row.avg_entry_price, row.realized_pl = after.qty, after.avg_entry_price, after.realized_pl
            return
        row.realized_pl += effect.realized_pl
        row.qty = Decimal(0)
        row.closed_at = at
        repo.session.flush()
        if effect.reopened:
            repo.add(PositionRow(position_id=new_id("pos"), account_id=account.account_id, symbol=after.symbol,
                                 asset_class=row.asset_class, qty=after.qty, multiplier=after.multiplier,
                                 avg_entry_price=after.avg_entry_price, realized_pl=Decimal(0), opened_at=at,
                                 closed_at=None, updated_at=at))
