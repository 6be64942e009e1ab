"""Accounts' proto <-> domain conversions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from mbt.accounts.v1 import accounts_pb2
from mbt.common.v1 import trading_pb2
from services.accounts.domain import (AccountType, FillTerms, OrderRequest, Profile, Side, Tier, Valuation, mark_price,
                                      market_value, unrealized_pl)
from services.accounts.clients import Mark
from services.accounts.store import AccountRow, LedgerEntryRow, PositionRow, UserRow
from services.common.wire.conv import (amount_str, money_str, parse_decimal, parse_enum, price_str, qty_str,
                                  ratio_str, to_timestamp)
from services.common.errors import invalid_argument

BUY = trading_pb2.ORDER_SIDE_BUY
SIDES = {trading_pb2.ORDER_SIDE_BUY: Side.BUY, trading_pb2.ORDER_SIDE_SELL: Side.SELL}
TIERS = {accounts_pb2.TIER_FREE: Tier.FREE, accounts_pb2.TIER_PRO: Tier.PRO,
         accounts_pb2.TIER_PRO_PLUS: Tier.PRO_PLUS}
PROFILES = {accounts_pb2.INVESTOR_PROFILE_TRIAL: Profile.TRIAL,
            accounts_pb2.INVESTOR_PROFILE_INCOME_BUILDER: Profile.INCOME_BUILDER,
            accounts_pb2.INVESTOR_PROFILE_DIVERSIFIER: Profile.DIVERSIFIER}
ACCOUNT_TYPES = {accounts_pb2.ACCOUNT_TYPE_CASH: AccountType.CASH, accounts_pb2.ACCOUNT_TYPE_MARGIN: AccountType.MARGIN}
TIER_WIRE = {v.value: k for k, v in TIERS.items()}
PROFILE_WIRE = {v.value: k for k, v in PROFILES.items()}
ACCOUNT_TYPE_WIRE = {v.value: k for k, v in ACCOUNT_TYPES.items()}
PRICED_AT_LIMIT = (trading_pb2.ORDER_TYPE_LIMIT, trading_pb2.ORDER_TYPE_STOP_LIMIT)


def order_request(request: accounts_pb2.ReserveBuyingPowerRequest) -> OrderRequest:
    """The order's worst price: its limit, else the bound the orders service sent (collar or touch)."""
    side = parse_enum(SIDES, request.side, "side")
    bound = parse_decimal(request.limit_price if request.order_type in PRICED_AT_LIMIT else request.reference_price,
                          "price")
    if bound is None or bound <= 0:
        raise invalid_argument("the order has no price to hold buying power against", "reference_price")
    return OrderRequest(symbol=request.symbol, side=side,
                        qty=parse_decimal(request.qty, "qty", required=True), price_bound=bound,
                        multiplier=parse_decimal(request.multiplier, "multiplier") or Decimal(1))


def fill_terms(order, fill) -> FillTerms:
    """The ledger's view of an OrderFilled event's fill."""
    return FillTerms(order_id=order.order_id, symbol=fill.symbol, side=Side.BUY if fill.side == BUY else Side.SELL,
                     qty=parse_decimal(fill.qty, "qty", required=True),
                     price=parse_decimal(fill.price, "price", required=True),
                     multiplier=parse_decimal(fill.multiplier, "multiplier") or Decimal(1))


def ledger_fill_terms(entry: LedgerEntryRow) -> FillTerms:
    return FillTerms(order_id=entry.order_id or "", symbol=entry.symbol, side=Side(entry.side), qty=entry.qty,
                     price=entry.price, multiplier=entry.multiplier)


def account_to_proto(account: AccountRow, value: Valuation, power: Decimal, now: datetime) -> accounts_pb2.Account:
    return accounts_pb2.Account(
        account_id=account.account_id, account_type=ACCOUNT_TYPE_WIRE[account.account_type],
        status=accounts_pb2.ACCOUNT_STATUS_ACTIVE, currency=account.currency,
        investor_profile=PROFILE_WIRE[account.investor_profile], starting_cash=amount_str(account.starting_cash),
        cash=amount_str(account.cash), buying_power=amount_str(power), reserved=amount_str(value.held),
        long_market_value=amount_str(value.long_market_value),
        short_market_value=amount_str(value.short_market_value), equity=amount_str(value.equity),
        created_at=to_timestamp(account.created_at), updated_at=to_timestamp(account.updated_at),
        valued_at=to_timestamp(now))


def position_to_proto(row: PositionRow, mark: Mark | None) -> accounts_pb2.Position:
    position = row.as_position()
    message = accounts_pb2.Position(
        symbol=row.symbol, asset_class=trading_pb2.ASSET_CLASS_US_EQUITY, qty=qty_str(row.qty),
        multiplier=qty_str(row.multiplier), avg_entry_price=price_str(row.avg_entry_price),
        realized_pl=amount_str(row.realized_pl), opened_at=to_timestamp(row.opened_at),
        closed_at=to_timestamp(row.closed_at), updated_at=to_timestamp(row.updated_at))
    if not position.is_open:
        return message
    price = mark_price(position, mark and mark.bid, mark and mark.ask)
    cost = abs(position.qty) * position.avg_entry_price * position.multiplier
    gain = unrealized_pl(position, price)
    message.side = accounts_pb2.POSITION_SIDE_LONG if position.qty > 0 else accounts_pb2.POSITION_SIDE_SHORT
    message.cost_basis = amount_str(cost)
    message.current_price = price_str(price)
    message.market_value = amount_str(market_value(position, price))
    message.unrealized_pl = amount_str(gain)
    message.unrealized_plpc = ratio_str(gain / cost if cost else Decimal(0))
    if mark is not None and mark.quote_at is not None:
        message.priced_at.CopyFrom(to_timestamp(mark.quote_at))
    return message


def pnl_to_proto(start: datetime, end: datetime, realized: dict[str, Decimal],
                 unrealized: dict[str, Decimal]) -> accounts_pb2.Pnl:
    symbols = sorted(set(realized) | set(unrealized))
    total_realized = sum(realized.values(), Decimal(0))
    total_unrealized = sum(unrealized.values(), Decimal(0))
    return accounts_pb2.Pnl(
        from_time=to_timestamp(start), to_time=to_timestamp(end), realized_pl=amount_str(total_realized),
        unrealized_pl=amount_str(total_unrealized), total_pl=amount_str(total_realized + total_unrealized),
        lines=[accounts_pb2.PnlLine(symbol=s, realized_pl=amount_str(realized.get(s, Decimal(0))),
                                    unrealized_pl=amount_str(unrealized.get(s, Decimal(0)))) for s in symbols])


def user_to_proto(user: UserRow) -> accounts_pb2.User:
    return accounts_pb2.User(user_id=user.user_id, tier=TIER_WIRE[user.tier],
                             investor_profile=PROFILE_WIRE[user.investor_profile],
                             created_at=to_timestamp(user.created_at), updated_at=to_timestamp(user.updated_at))


def user_snapshot(user: UserRow) -> dict:
    return {"user_id": user.user_id, "tier": user.tier, "investor_profile": user.investor_profile}


def reservation_to_proto(row) -> accounts_pb2.Reservation:
    """For the orders service (an internal answer): the amount exactly as held."""
    return accounts_pb2.Reservation(order_id=row.order_id, order_version=row.order_version,
                                    amount=money_str(row.amount), account_id=row.account_id,
                                    qty=qty_str(row.qty), created_at=to_timestamp(row.created_at),
                                    updated_at=to_timestamp(row.updated_at))
