"""What the orders service answers: a user's orders and fills, and the working orders the
matcher rebuilds its book from."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from services.common.errors import not_found
from services.common.persistence.pagination import page
from services.orders.domain.classes import exits_of
from services.orders.domain.model import Fill, Order, OrderClass, Status
from services.orders.store import OrderRepository
from services.orders.usecases.deps import Deps


class OrderReads:
    def __init__(self, deps: Deps) -> None:
        self.db = deps.db

    async def get(self, user_id: str, order_id: str) -> Order:
        """A user's order with its fills (another user's is not_found); a bracket's, oco's or
        oto's first order with its exits (``leg_orders``, take-profit first), as Alpaca shows
        a parent order's legs."""
        async with self.db.reading() as session:
            repo = OrderRepository(session)
            order = await repo.get(order_id, user_id=user_id, with_fills=True)
            if order is None:
                raise not_found("order", order_id)
            if order.order_class is OrderClass.SIMPLE or order.parent_order_id is not None:
                return order
            family = await repo.family(order_id, with_fills=True)
        return replace(order, leg_orders=exits_of(family))

    async def list_for(
        self, user_id: str, status: Status | None, symbol: str, size: int, token: str
    ) -> tuple[list[Order], str]:
        """A user's orders, newest first, optionally of one status and symbol."""

        async def fetch(after: tuple[datetime, str] | None, limit: int) -> list[Order]:
            async with self.db.reading() as session:
                return await OrderRepository(session).list_for_user(
                    user_id, status=status, symbol=symbol, after=after, limit=limit
                )

        return await page(size, token, (user_id, status, symbol), fetch, lambda o: (o.created_at, o.order_id))

    async def list_working(self, symbol: str, size: int, token: str) -> tuple[list[Order], str]:
        """Every working order (optionally of one symbol), by order id: the matcher's book."""

        async def fetch(after: tuple[datetime, str] | None, limit: int) -> list[Order]:
            async with self.db.reading() as session:
                return await OrderRepository(session).list_working(
                    symbol=symbol or None, after_id=after[1] if after else None, limit=limit
                )

        return await page(size, token, ("open", symbol), fetch, lambda o: (o.created_at, o.order_id))

    async def get_fill(self, fill_id: str) -> tuple[Fill, Order]:
        """A fill and its order (for explanations)."""
        async with self.db.reading() as session:
            repo = OrderRepository(session)
            fill = await repo.get_fill(fill_id)
            if fill is None:
                raise not_found("fill", fill_id)
            return fill, await repo.load(fill.order_id, with_fills=True)
