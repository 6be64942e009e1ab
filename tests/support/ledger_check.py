"""The mesh-wide ledger invariants, checked from the outside (what each service answers over
gRPC), computed independently of the accounts service's own arithmetic:

* cash = starting cash + the signed fills the orders service recorded (buy −, sell +,
  qty × price × multiplier; a multi-leg fill leg by leg, its legs' prices adding up to its
  net price) + the cash the option settlements moved (the ``expiration`` activities: the
  stock bought or sold at the strike, or the cash settlement); after a retention purge,
  the carried-forward cash (accounts' ``GetCarriedForward``: the folded movements, the
  opening deposit among them) + the signed fills and settlements that remain;
* open positions = the fills' signed quantities per symbol, each settled option position
  removed and the stock it delivered (contracts × multiplier, bought for a call, sold for
  a put; its cash exactly that stock at the strike) added, on top of the carried-forward
  positions after a purge;
* reserved = the requirement of the orders still working, from their terms (a cash
  account's buy: qty × its worst price — the limit, else the collar; a sell holds shares,
  not cash; the two exits of a bracket or oco pair once, the larger); with option
  positions or option orders working, at least that (their own holds — a put's strike, a
  spread's width — are asserted by the option tests, figure by figure); no order is left
  half-submitted (``new``) once the mesh has settled;
* a cash account never has negative cash nor a short stock position (short options there
  are covered or secured, the holds' business);
* the activities' amounts add up to the cash.

Call ``assert_ledger_consistent`` after a scenario has settled (events delivered, sagas
finished): ``await eventually(lambda: assert_ledger_consistent(trading, "alice"))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from mbt.accounts.v1 import accounts_pb2
from mbt.activities.v1 import activities_pb2
from mbt.common.v1 import trading_pb2
from mbt.orders.v1 import orders_pb2
from services.common.instruments import CALL, parse_symbol
from tests.support.identity import BULK_TIER, as_service, as_user

WORKING = (orders_pb2.ORDER_STATUS_ACCEPTED,)
PRICED_AT_LIMIT = (trading_pb2.ORDER_TYPE_LIMIT, trading_pb2.ORDER_TYPE_STOP_LIMIT)


def _d(text: str) -> Decimal:
    return Decimal(text) if text else Decimal(0)


@dataclass(frozen=True)
class LedgerState:
    cash: Decimal
    reserved: Decimal
    positions: dict[str, Decimal]
    orders: list


async def _all_orders(trading, metadata) -> list:
    orders, token = [], ""
    while True:
        reply = await trading.orders().ListOrders(
            orders_pb2.ListOrdersRequest(page_size=200, page_token=token), metadata=metadata
        )
        orders.extend(reply.orders)
        token = reply.next_page_token
        if not token:
            return orders


async def _all_activities(trading, metadata) -> list:
    activities, token = [], ""
    while True:
        reply = await trading.activities().ListActivities(
            activities_pb2.ListActivitiesRequest(page_size=200, page_token=token), metadata=metadata
        )
        activities.extend(reply.activities)
        token = reply.next_page_token
        if not token:
            return activities


def requirement(order, account_type: int) -> Decimal:
    """What a working order must hold in a cash account, from its own terms."""
    if account_type != accounts_pb2.ACCOUNT_TYPE_CASH or order.side != trading_pb2.ORDER_SIDE_BUY:
        return Decimal(0)
    worst = _d(order.limit_price) if order.order_type in PRICED_AT_LIMIT else _d(order.collar_price)
    return _d(order.qty) * worst * (_d(order.multiplier) or Decimal(1))


def _executions(fill) -> list[tuple[str, int, Decimal, Decimal, Decimal]]:
    """A fill as (symbol, side, qty, price, multiplier) executions: itself, or each leg of a
    multi-leg fill (whose legs' signed prices must add up to its net price)."""
    if not fill.legs:
        return [(fill.symbol, fill.side, _d(fill.qty), _d(fill.price), _d(fill.multiplier) or Decimal(1))]
    net = sum(
        (_d(leg.price) * leg.ratio * (1 if leg.side == trading_pb2.ORDER_SIDE_BUY else -1) for leg in fill.legs),
        Decimal(0),
    )
    assert net == _d(fill.price), f"{fill.fill_id}: legs add up to {net}, the net price is {fill.price}"
    return [
        (leg.symbol, leg.side, _d(leg.qty), _d(leg.price), parse_symbol(leg.symbol).multiplier) for leg in fill.legs
    ]


def _settled(settlement) -> dict[str, Decimal]:
    """What an ``expiration`` activity did to positions: the option's ``qty`` (signed
    contracts) gone and, when it settled into stock (exercised or assigned), the shares
    delivered — a call's holder buys, a put's sells, the writer the other way. Asserts its
    cash is exactly those shares at the strike (``price``)."""
    option = parse_symbol(settlement.symbol)
    qty = _d(settlement.qty)
    moved = {settlement.symbol: -qty}
    if settlement.subtype in ("exercised", "assigned"):
        shares = qty * option.multiplier * (1 if option.option_type == CALL else -1)
        moved[option.underlying] = shares
        assert _d(settlement.net_amount) == -shares * _d(settlement.price), (
            f"{settlement.activity_id}: {shares} {option.underlying} at the strike {settlement.price} "
            f"moved {settlement.net_amount} of cash"
        )
    return moved


async def assert_ledger_consistent(trading, user_id: str, *, settled: bool = True) -> LedgerState:
    """Raises AssertionError naming the first invariant that does not hold. ``settled``
    False: a submit or a replace may still be in flight (cut short and not yet finished), so
    the holds must cover the working orders' requirement rather than equal it."""
    metadata = as_user(user_id, BULK_TIER)
    account = (await trading.accounts().GetAccount(accounts_pb2.GetAccountRequest(), metadata=metadata)).account
    positions = (
        await trading.accounts().ListPositions(accounts_pb2.ListPositionsRequest(), metadata=metadata)
    ).positions
    orders = await _all_orders(trading, metadata)
    activities = await _all_activities(trading, metadata)

    cash = _d(account.cash)
    carried = await trading.accounts().GetCarriedForward(
        accounts_pb2.GetCarriedForwardRequest(user_id=user_id), metadata=as_service("tests")
    )
    base = _d(carried.cash_delta) if carried.cash_delta else _d(account.starting_cash)
    flows = Decimal(0)
    held: dict[str, Decimal] = {p.symbol: _d(p.qty) for p in carried.positions}
    for listed in orders:
        if listed.filled_qty in ("", "0"):
            continue
        order = (
            await trading.orders().GetOrder(orders_pb2.GetOrderRequest(order_id=listed.order_id), metadata=metadata)
        ).order
        for fill in order.fills:
            for symbol, side, qty, price, multiplier in _executions(fill):
                sign = Decimal(-1) if side == trading_pb2.ORDER_SIDE_BUY else Decimal(1)
                flows += sign * qty * price * multiplier
                held[symbol] = held.get(symbol, Decimal(0)) - sign * qty
    for settlement in activities:
        if settlement.activity_type != activities_pb2.ACTIVITY_TYPE_EXPIRATION:
            continue
        flows += _d(settlement.net_amount)
        for symbol, qty in _settled(settlement).items():
            held[symbol] = held.get(symbol, Decimal(0)) + qty
    assert cash == base + flows, (
        f"{user_id}: cash {cash} != starting or carried-forward cash {base} + signed fills and settlements {flows}"
    )

    stored = {p.symbol: _d(p.qty) for p in positions if _d(p.qty) != 0}
    expected = {symbol: qty for symbol, qty in held.items() if qty != 0}
    assert stored == expected, f"{user_id}: positions {stored} != fills {expected}"

    unsettled = [o.order_id for o in orders if o.status == orders_pb2.ORDER_STATUS_NEW]
    assert not settled or not unsettled, f"{user_id}: submits never finished: {unsettled}"
    working = [o for o in orders if o.status in WORKING]
    # The exits of one bracket or oco pair close the same position: they hold once, the larger.
    by_pair: dict[str, Decimal] = {}
    for o in working:
        key = o.exit_group or o.order_id
        by_pair[key] = max(by_pair.get(key, Decimal(0)), requirement(o, account.account_type))
    needed = sum(by_pair.values(), Decimal(0))
    options = any(parse_symbol(symbol).is_option for symbol in stored) or any(
        o.legs or o.asset_class == trading_pb2.ASSET_CLASS_US_OPTION for o in working
    )
    if not settled or options:
        assert _d(account.reserved) >= needed, (
            f"{user_id}: reserved {account.reserved} < the working orders' requirement {needed}"
        )
    elif account.account_type == accounts_pb2.ACCOUNT_TYPE_CASH or not working:
        assert _d(account.reserved) == needed, (
            f"{user_id}: reserved {account.reserved} != the working orders' requirement {needed} "
            f"({[(o.order_id, o.qty, o.limit_price or o.collar_price) for o in working]})"
        )

    if account.account_type == accounts_pb2.ACCOUNT_TYPE_CASH:
        assert cash >= 0, f"{user_id}: a cash account's cash is {cash}"
        shorts = {s: q for s, q in stored.items() if q < 0 and not parse_symbol(s).is_option}
        assert not shorts, f"{user_id}: a cash account is short {shorts}"

    activity_sum = sum((_d(a.net_amount) for a in activities), Decimal(0))
    assert activity_sum == cash, f"{user_id}: activities add up to {activity_sum}, cash is {cash}"
    return LedgerState(cash, _d(account.reserved), stored, orders)
