"""A change to one order of a bracket, oco or oto family, with what it does to the others
(``classes.linked_changes``), in the caller's unit of work."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.common.errors import not_found
from services.orders.domain.classes import family_id, linked_changes
from services.orders.domain.model import Order, OrderClass
from services.orders.store import OrderRepository


async def change_in_family(
    repo: OrderRepository, order_id: str, change: Callable[[Order], Order], at: datetime, *, user_id: str | None = None
) -> tuple[Order, list[Order]]:
    """Apply ``change`` to ``order_id`` and what it does to its linked orders
    (``classes.linked_changes``), saved in the caller's transaction: the family is locked
    first (its first order, then the rest by id), so the fill of one exit and the fill or
    cancel of its sibling are decided one after the other, never both. Returns the order
    and the linked orders it changed (activated exits among them)."""
    peek = await repo.get(order_id, user_id=user_id)
    if peek is None:
        raise not_found("order", order_id)
    if peek.order_class is OrderClass.SIMPLE:
        order = await repo.load(order_id, lock=True, with_fills=True)
        return await repo.save(change(order)), []
    family = await repo.family(family_id(peek), lock=True, with_fills=True)
    order = next(o for o in family if o.order_id == order_id)
    changed = change(order)
    linked = linked_changes(changed, family, at) if changed.status is not order.status else []
    saved = await repo.save(changed)
    return saved, [await repo.save(other) for other in linked]
