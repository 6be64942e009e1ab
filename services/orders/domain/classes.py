"""Order classes (bracket, oco, oto) for equities and single-leg options: what a submission
must say, the exits it creates, and what happens to an order's linked orders when it
fills, is canceled, expires or is rejected. Pure: the use cases load an order's family
(``family``: the order the exits hang from, then its exits) and save what these rules
return in one transaction.

The rules follow Alpaca's order API (https://docs.alpaca.markets/docs/orders-at-alpaca,
"Bracket Orders", "OCO Orders", "OTO Orders"), and go beyond it for single-leg options,
which Alpaca refuses (issue 11: the income trader's exit at 50% of the credit or 2x):

- bracket: an entry (any order type, day or gtc), a take-profit limit and a stop-loss stop
  (or stop-limit) on the other side for the same quantity. The exits are ``held`` until
  the entry fills; then both are submitted (buying power, then working in the matcher).
- oto: an entry and one exit (take-profit or stop-loss), held the same way.
- oco: two exits of a position held already: the order itself is the take-profit limit
  (order_type limit, its limit the take-profit's), the stop-loss hangs from it. Both work
  at once.
- The exits of one bracket or oco share an ``exit_group``: the first to fill cancels the
  other in the transaction that records the fill, and buying power holds them once.
- Canceling (or the expiry or rejection of) an entry cancels its exits; canceling either
  exit of a pair cancels the pair (the position stays unprotected otherwise); an oto's
  single exit goes alone.
- v1 fills are whole (one fill ends an order), so "partially filled entry" cannot happen:
  an entry's exits activate on its one fill, for its whole quantity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from services.common.errors import DomainError, invalid_argument
from services.common.trading import OrderType, Side, TimeInForce
from services.orders.domain.model import FINAL, Order, OrderClass, OrderSpec, Status, StopLoss, TakeProfit
from services.orders.domain.rules import validate_price

LINKED = frozenset({OrderClass.BRACKET, OrderClass.OCO, OrderClass.OTO})
CLASS_TIMES_IN_FORCE = frozenset({TimeInForce.DAY, TimeInForce.GTC})
TICK = Decimal("0.01")

# Cancel reasons of orders canceled because a linked order ended.
SIBLING_FILLED = "sibling_filled"
SIBLING_CANCELED = "sibling_canceled"
PARENT_CANCELED = "parent_canceled"


def exit_side(spec: OrderSpec) -> Side:
    """The side of the exits: an entry's opposite; an oco's own (its orders are exits)."""
    if spec.order_class is OrderClass.OCO:
        return spec.side
    return Side.SELL if spec.side is Side.BUY else Side.BUY


def validate_class(spec: OrderSpec) -> OrderSpec:
    """The order class of a submission, checked before anything is stored: which exits it
    needs, their prices (positive, on the equity grid; an option's grid is checked on each
    exit's spec), day or gtc, and the take-profit beyond the stop-loss on the side that
    makes money. ``invalid_argument`` naming the field otherwise. An oco's limit_price,
    when sent, must be its take-profit's; it is set from it when omitted."""
    take, stop = spec.take_profit, spec.stop_loss
    if spec.order_class is OrderClass.SIMPLE:
        for name, value in (("take_profit", take), ("stop_loss", stop)):
            if value is not None:
                raise invalid_argument(f"{name} is for bracket, oco and oto orders: send order_class", name)
        return spec
    if spec.is_multileg:
        raise invalid_argument(
            f"order_class {spec.order_class.value} is for equities and single-leg options: a multi-leg order "
            "cannot carry take_profit or stop_loss",
            "order_class",
        )
    if spec.time_in_force not in CLASS_TIMES_IN_FORCE:
        raise invalid_argument(f"time_in_force of a {spec.order_class.value} order is day or gtc", "time_in_force")
    if spec.order_class is OrderClass.OTO:
        if (take is None) == (stop is None):
            raise invalid_argument("an oto order takes one exit: take_profit or stop_loss", "take_profit")
    else:
        if take is None:
            raise invalid_argument(f"a {spec.order_class.value} order needs take_profit.limit_price", "take_profit")
        if stop is None:
            raise invalid_argument(f"a {spec.order_class.value} order needs stop_loss.stop_price", "stop_loss")
    if take is not None:
        validate_price(take.limit_price, "take_profit.limit_price")
    if stop is not None:
        validate_price(stop.stop_price, "stop_loss.stop_price")
        validate_price(stop.limit_price, "stop_loss.limit_price")
    side = exit_side(spec)
    selling = side is Side.SELL
    if stop is not None and stop.limit_price is not None and _beyond(stop.limit_price, stop.stop_price, selling):
        raise invalid_argument(
            f"stop_loss.limit_price must be at or {'below' if selling else 'above'} stop_loss.stop_price for a "
            f"stop-loss that {side.value}s",
            "stop_loss.limit_price",
        )
    if take is not None and stop is not None and not _beyond(take.limit_price, stop.stop_price, selling):
        raise invalid_argument(
            f"take_profit.limit_price must be {'above' if selling else 'below'} stop_loss.stop_price "
            f"for exits that {side.value}",
            "take_profit.limit_price",
        )
    if spec.order_class is OrderClass.OCO:
        if spec.order_type is not OrderType.LIMIT:
            raise invalid_argument("order_type of an oco order is limit: its limit is the take-profit's", "order_type")
        assert take is not None
        if spec.limit_price is not None and spec.limit_price != take.limit_price:
            raise invalid_argument("an oco order's limit_price is its take_profit.limit_price", "limit_price")
        return replace(spec, limit_price=take.limit_price)
    return spec


def _beyond(price: Decimal, than: Decimal, selling: bool) -> bool:
    """Whether ``price`` is on the better side of ``than`` for an exit that sells (above)
    or buys (below)."""
    return price > than if selling else price < than


def check_against_entry(spec: OrderSpec, base: Decimal | None) -> None:
    """A bracket's or oto's exits against its entry's price ``base`` (its limit, its stop,
    or a market order's reference): for a buy entry the take-profit at least a cent above
    and the stop-loss at least a cent below; the reverse for a sell (Alpaca's rule).
    ``invalid_argument`` naming the exit's field."""
    if spec.order_class not in (OrderClass.BRACKET, OrderClass.OTO) or base is None:
        return
    buying = spec.side is Side.BUY
    take, stop = spec.take_profit, spec.stop_loss
    if take is not None and ((take.limit_price < base + TICK) if buying else (take.limit_price > base - TICK)):
        raise invalid_argument(
            f"take_profit.limit_price must be {'above' if buying else 'below'} the entry's price {base} "
            f"for a {spec.side.value} entry",
            "take_profit.limit_price",
        )
    if stop is not None and ((stop.stop_price > base - TICK) if buying else (stop.stop_price < base + TICK)):
        raise invalid_argument(
            f"stop_loss.stop_price must be {'below' if buying else 'above'} the entry's price {base} "
            f"for a {spec.side.value} entry",
            "stop_loss.stop_price",
        )


def entry_base(spec: OrderSpec, reference: Decimal | None) -> Decimal | None:
    """The entry price exits are checked against: a limit's limit, a stop's stop, a market
    order's ``reference`` (the touch it was submitted against)."""
    if spec.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return spec.limit_price
    if spec.order_type is OrderType.STOP:
        return spec.stop_price
    return reference


def _take_profit_spec(spec: OrderSpec, take: TakeProfit, client_order_id: str) -> OrderSpec:
    return replace(
        spec,
        client_order_id=client_order_id,
        side=exit_side(spec),
        order_type=OrderType.LIMIT,
        limit_price=take.limit_price,
        stop_price=None,
        position_intent=None,
        take_profit=None,
        stop_loss=None,
    )


def _stop_loss_spec(spec: OrderSpec, stop: StopLoss, client_order_id: str) -> OrderSpec:
    return replace(
        spec,
        client_order_id=client_order_id,
        side=exit_side(spec),
        order_type=OrderType.STOP if stop.limit_price is None else OrderType.STOP_LIMIT,
        limit_price=stop.limit_price,
        stop_price=stop.stop_price,
        position_intent=None,
        take_profit=None,
        stop_loss=None,
    )


def exit_specs(spec: OrderSpec, ids: Sequence[str]) -> list[OrderSpec]:
    """The exits hung from ``spec`` (take-profit first), each with the next of ``ids`` as its
    client_order_id: a bracket's two, an oto's one, an oco's stop-loss (its take-profit is
    the order itself). Their position intent is left to be inferred (closing)."""
    if spec.order_class not in LINKED:
        return []
    exits: list[OrderSpec] = []
    if spec.take_profit is not None and spec.order_class is not OrderClass.OCO:
        exits.append(_take_profit_spec(spec, spec.take_profit, ids[len(exits)]))
    if spec.stop_loss is not None:
        exits.append(_stop_loss_spec(spec, spec.stop_loss, ids[len(exits)]))
    return exits


def checked_exit(check: Callable[[OrderSpec], OrderSpec], spec: OrderSpec) -> OrderSpec:
    """``check(spec)`` for an exit, its refusals naming the submission's field: an exit's
    ``limit_price`` is ``take_profit.limit_price`` (a limit exit) or
    ``stop_loss.limit_price``, its ``stop_price`` ``stop_loss.stop_price``."""
    try:
        return check(spec)
    except DomainError as refusal:
        field = refusal.metadata.get("field", "")
        if field not in ("limit_price", "stop_price"):
            raise
        owner = "take_profit" if spec.order_type is OrderType.LIMIT else "stop_loss"
        named = f"{owner}.{field}"
        raise DomainError(refusal.reason, f"{named}: {refusal.message}", field=named) from None


def exit_group_of(spec: OrderSpec, root_id: str) -> str | None:
    """The exit group of the exits of a bracket or oco (the root's id); None for an oto."""
    return root_id if spec.order_class in (OrderClass.BRACKET, OrderClass.OCO) else None


def exits_of(family: Sequence[Order]) -> tuple[Order, ...]:
    """The exits of a family (``family`` its first order, then the rest), take-profit first."""
    return tuple(sorted(family[1:], key=lambda o: o.spec.order_type is not OrderType.LIMIT))


def family_id(order: Order) -> str:
    """The id of the order an order's family hangs from (its own when it is that order)."""
    return order.parent_order_id or order.order_id


def linked_changes(changed: Order, family: Sequence[Order], at: datetime) -> list[Order]:
    """What ``changed`` (after a fill, cancel, expiry or rejection) does to the rest of its
    ``family``: a filled entry activates its held exits; an entry that ended otherwise
    cancels its exits (``parent_canceled``); an exit of a pair that ended — filled or not —
    cancels its working siblings (``sibling_filled`` / ``sibling_canceled``); an oto's exit
    ends alone. Orders already final are left as they are. Returns the changed orders."""
    if changed.status not in FINAL:
        return []
    others = [o for o in family if o.order_id != changed.order_id and o.status not in FINAL]
    if changed.is_entry:
        children = [o for o in others if o.parent_order_id == changed.order_id]
        if changed.status is Status.FILLED:
            return [child.activate(at) for child in children if child.status is Status.HELD]
        return [child.cancel(PARENT_CANCELED, at) for child in children]
    if changed.exit_group is None:
        return []
    reason = SIBLING_FILLED if changed.status is Status.FILLED else SIBLING_CANCELED
    return [o.cancel(reason, at) for o in others if o.exit_group == changed.exit_group]
