"""Accounts' events: what it tells others (``publish``: the domain events the Account
aggregate records, as outbox messages and audit rows in the transaction of the change) and
what it consumes from the orders service (``Handlers``, wired in ``app.py``)."""

from __future__ import annotations

import logging

from google.protobuf.message import Message

from mbt.accounts.v1 import events_pb2
from services.accounts import wire
from services.accounts.domain.account import (
    AccountEvent,
    AccountOpened,
    AccountTypeChanged,
    DividendPosted,
    FillApplied,
    FillRefused,
    HoldReleased,
    HoldTaken,
    InterestCharged,
    OptionSettled,
)
from services.accounts.domain.expiration import Outcome
from services.accounts.usecases.ledger import Ledger
from services.common.ids import derived_id
from services.common.observability.metrics import LEDGER_REFUSALS
from services.common.persistence.uow import UnitOfWork
from services.common.wire.conv import from_timestamp, money_str, qty_str, to_date, to_timestamp

log = logging.getLogger(__name__)


async def publish(uow: UnitOfWork, event: AccountEvent) -> None:
    match event:
        case AccountOpened(account_id=account_id, user_id=user_id, at=at):
            await uow.emit(
                events_pb2.AccountOpened(
                    account_id=account_id,
                    user_id=user_id,
                    starting_cash=money_str(event.starting_cash),
                    opened_at=to_timestamp(at),
                ),
                aggregate_id=account_id,
                user_id=user_id,
                occurred_at=at,
                event_id=derived_id("evt", "opened", account_id),
            )
            await uow.audit(
                action="open",
                entity_type="account",
                entity_id=account_id,
                user_id=user_id,
                before=None,
                after={
                    "account_type": event.account_type.value,
                    "starting_cash": event.starting_cash,
                    "profile": event.profile.value,
                },
                occurred_at=at,
                cause=f"open:{user_id}",
            )
        case FillRefused():
            await _refused(uow, event)
        case OptionSettled():
            await _settled(uow, event)
        case DividendPosted():
            await _dividend(uow, event)
        case InterestCharged():
            await _interest(uow, event)
        case FillApplied() | HoldTaken() | HoldReleased() | AccountTypeChanged():
            pass  # the ledger's own business: fills are audited by orders, a type change with its user update


# The audit action of each outcome.
SETTLEMENT_ACTIONS = {
    Outcome.EXPIRED_WORTHLESS: "expire",
    Outcome.EXERCISED: "exercise",
    Outcome.ASSIGNED: "assign",
    Outcome.CASH_SETTLED: "cash_settle",
}


async def _settled(uow: UnitOfWork, event: OptionSettled) -> None:
    """One OptionSettled message (activities writes the ``expiration`` activity) and one
    audit row per effect, in the transaction that moved the ledger."""
    effect = event.effect
    settlement_id = event.legs[0][0].entry_id
    stock = effect.stock
    stock_after = next((fill.position.qty for leg, fill in event.legs if stock and leg.symbol == stock.symbol), None)
    settlement = wire.settlement_to_proto(event.account_id, effect)
    await uow.emit(
        events_pb2.OptionSettled(
            account_id=event.account_id,
            user_id=event.user_id,
            settlement_id=settlement_id,
            settlement=settlement,
            early=event.early,
            cash_after=money_str(event.cash_after),
            stock_position_qty=qty_str(stock_after),
            occurred_at=to_timestamp(event.at),
        ),
        aggregate_id=event.account_id,
        user_id=event.user_id,
        occurred_at=event.at,
        event_id=derived_id("evt", "settled", settlement_id),
    )
    await uow.audit(
        action=SETTLEMENT_ACTIONS[effect.outcome],
        entity_type="option_position",
        entity_id=effect.contract.symbol,
        user_id=event.user_id,
        before={"qty": effect.qty},
        after={
            "outcome": effect.outcome.value,
            "early": event.early,
            "settlement_price": effect.settlement_price,
            "strike": effect.contract.strike,
            "stock": {"symbol": stock.symbol, "side": stock.side.value, "qty": stock.qty, "price": stock.price}
            if stock
            else None,
            "stock_position_qty": stock_after,
            "cash_delta": effect.cash_delta,
            "cash_after": event.cash_after,
            "reason": effect.reason,
            "shortfall": event.shortfall,
        },
        occurred_at=event.at,
        cause=f"settle:{settlement_id}",
    )


async def _dividend(uow: UnitOfWork, event: DividendPosted) -> None:
    message = events_pb2.DividendPosted(
        account_id=event.account_id,
        user_id=event.user_id,
        symbol=event.symbol,
        ex_date=to_date(event.ex_date),
        pay_date=to_date(event.pay_date),
        qty=qty_str(event.qty),
        cash_amount=money_str(event.cash_amount),
        net_amount=money_str(event.amount),
        posted_at=to_timestamp(event.at),
    )
    audited = {
        "symbol": event.symbol,
        "ex_date": event.ex_date.isoformat(),
        "qty": event.qty,
        "cash_amount": event.cash_amount,
        "amount": event.amount,
    }
    await _posted(uow, event, message, "post_dividend", audited)


async def _interest(uow: UnitOfWork, event: InterestCharged) -> None:
    message = events_pb2.MarginInterestCharged(
        account_id=event.account_id,
        user_id=event.user_id,
        session_date=to_date(event.session_date),
        debit_balance=money_str(event.debit_balance),
        rate_bps=event.rate_bps,
        days=event.days,
        amount=money_str(event.amount),
        investor_profile=event.profile.value,
        charged_at=to_timestamp(event.at),
    )
    audited = {
        "session_date": event.session_date.isoformat(),
        "debit_balance": event.debit_balance,
        "rate_bps": event.rate_bps,
        "days": event.days,
        "amount": event.amount,
    }
    await _posted(uow, event, message, "charge_interest", audited)


async def _posted(
    uow: UnitOfWork, event: DividendPosted | InterestCharged, message: Message, action: str, audited: dict
) -> None:
    """A cash posting's event (its id derived from the ledger entry's, so a rerun emits none
    again) and its audit row, with the cash it left."""
    await uow.emit(
        message,
        aggregate_id=event.account_id,
        user_id=event.user_id,
        occurred_at=event.at,
        event_id=derived_id("evt", event.entry_id),
    )
    await uow.audit(
        action=action,
        entity_type="account",
        entity_id=event.account_id,
        user_id=event.user_id,
        before=None,
        after={**audited, "cash_after": event.cash_after},
        occurred_at=event.at,
        cause=event.entry_id,
    )


async def _refused(uow: UnitOfWork, event: FillRefused) -> None:
    """Loud, never silent: an error log line, a metric and an audit row. The event that
    brought the fill is acknowledged: retrying cannot make it apply."""
    fill, reason = event.fill, event.reason.lower()
    log.error(
        "fill refused by the ledger",
        extra={
            "fields": {
                "reason": reason,
                "why": event.why,
                "fill_id": event.fill_id,
                "order_id": fill.order_id,
                "order_version": event.order_version,
                "user_id": event.user_id,
            }
        },
    )
    LEDGER_REFUSALS.labels(service="accounts", reason=reason).inc()
    await uow.audit(
        action="refuse_fill",
        entity_type="fill",
        entity_id=event.fill_id,
        user_id=event.user_id,
        before=None,
        after={
            "reason": reason,
            "why": event.why,
            "order_id": fill.order_id,
            "order_version": event.order_version,
            "qty": fill.qty,
            "price": fill.price,
        },
        occurred_at=event.at,
        cause=f"refuse:{event.fill_id}",
    )


class Handlers:
    """The events accounts consumes, as the topology routes them: each message turned into
    domain values (``wire``) and handed to the ledger's use cases."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def by_event_type(self) -> dict:
        return {
            "mbt.orders.v1.OrderFilled": self.on_order_filled,
            "mbt.orders.v1.OrderCanceled": self.on_order_ended,
            "mbt.orders.v1.OrderExpired": self.on_order_ended,
            "mbt.orders.v1.OrderReplaced": self.on_order_replaced,
        }

    async def on_order_filled(self, uow: UnitOfWork, event, payload) -> None:
        order, fill = payload.order, payload.fill
        if fill.legs:
            await self.ledger.apply_spread_fill(
                uow,
                order.user_id,
                order.version,
                fill.fill_id,
                wire.leg_fill_terms(order, fill),
                from_timestamp(fill.filled_at, "filled_at", required=True),
            )
            return
        await self.ledger.apply_fill(
            uow,
            order.user_id,
            order.version,
            fill.fill_id,
            wire.fill_terms(order, fill),
            from_timestamp(fill.filled_at, "filled_at", required=True),
        )

    async def on_order_ended(self, uow: UnitOfWork, event, payload) -> None:
        reason = "expired" if event.event_type.endswith("OrderExpired") else "canceled"
        await self.ledger.order_ended(uow, payload.order.user_id, payload.order.order_id, reason)

    async def on_order_replaced(self, uow: UnitOfWork, event, payload) -> None:
        order = payload.order
        await self.ledger.order_replaced(uow, order.user_id, order.order_id, order.version)
