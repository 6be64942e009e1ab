"""Events the accounts service emits, and the ones it consumes (wired in app.py)."""

from __future__ import annotations

from datetime import datetime

from mbt.accounts.v1 import events_pb2
from services.accounts.domain import FillEffect
from services.accounts.store import AccountRow
from services.common.wire.conv import decimal_str, money_str, to_timestamp
from services.common.ids import derived_id
from services.common.messaging.outbox import UnitOfWork


def emit_account_opened(uow: UnitOfWork, account: AccountRow) -> None:
    uow.emit(events_pb2.AccountOpened(account_id=account.account_id, user_id=account.user_id,
                                      starting_cash=money_str(account.starting_cash),
                                      opened_at=to_timestamp(account.created_at)),
             aggregate_id=account.account_id, user_id=account.user_id, occurred_at=account.created_at,
             event_id=derived_id("evt", "opened", account.account_id))


def emit_fill_applied(uow: UnitOfWork, account: AccountRow, fill, effect: FillEffect, user_id: str,
                      at: datetime) -> None:
    uow.emit(events_pb2.FillApplied(fill_id=fill.fill_id, account_id=account.account_id, symbol=fill.symbol,
                                    cash_delta=money_str(effect.cash_delta), cash_after=money_str(account.cash),
                                    position_qty_after=decimal_str(effect.position.qty),
                                    realized_pl=money_str(effect.realized_pl)),
             aggregate_id=account.account_id, user_id=user_id, occurred_at=at,
             event_id=derived_id("evt", "applied", fill.fill_id))
    if effect.closed:
        uow.emit(events_pb2.PositionClosed(account_id=account.account_id, symbol=fill.symbol,
                                           realized_pl=money_str(effect.realized_pl), closed_at=to_timestamp(at)),
                 aggregate_id=account.account_id, user_id=user_id, occurred_at=at,
                 event_id=derived_id("evt", "closed", fill.fill_id))
