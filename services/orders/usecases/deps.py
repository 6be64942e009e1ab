"""What every orders use case works with (wired by ``app.build``)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime

from services.common.clock import Clock
from services.common.config import Settings
from services.common.errors import DomainError
from services.common.persistence.db import Database
from services.common.persistence.uow import UnitOfWork
from services.common.spreads import LegQuote, Structure
from services.common.trading import AssetClass, OrderType
from services.orders.clients import AccountsClient, MarketClient
from services.orders.domain.model import OrderSpec
from services.orders.domain.options import check_limit_sign


@dataclass(frozen=True)
class LegMarket:
    """What a multi-leg order's legs are quoted at now, in leg order: ``quotes`` for the legs
    quoted on both sides, ``usable`` when every leg is (usable, bid and ask set), and the
    time of the oldest leg quote (None when a leg has none)."""

    quotes: tuple[LegQuote, ...]
    usable: bool
    oldest: datetime | None


@dataclass(frozen=True)
class Deps:
    settings: Settings
    db: Database
    # A new unit of work (its events published by ``orders.events.publish``).
    uow: Callable[[], AbstractAsyncContextManager[UnitOfWork]]
    clock: Clock
    # Wall time, for leases (replace) that must run out whatever the simulated clock does.
    wall: Clock
    market: MarketClient
    accounts: AccountsClient

    @property
    def timeout(self) -> float:
        return self.settings.rpc_timeout_seconds

    def check_switches(self, *, new_exposure: bool) -> None:
        """The kill switches: MBT_TRADING_DISABLED stops every change, MBT_NEW_ORDERS_DISABLED
        the ones that can add exposure (submit, replace)."""
        if self.settings.trading_disabled:
            raise DomainError("TRADING_DISABLED", "trading is disabled; the account is read-only for now")
        if new_exposure and self.settings.new_orders_disabled:
            raise DomainError("NEW_ORDERS_DISABLED", "new orders are disabled for now; cancels still work")

    async def last_trades(self, spec: OrderSpec, *, expired_too: bool = False) -> list[datetime | None]:
        """Market data's last trading time of each option contract ``spec`` names (its legs,
        or its symbol); empty for stock. The rule lives in market data, never here. A contract
        that has expired is refused (``CONTRACT_EXPIRED``: submit, replace) unless
        ``expired_too``: then its last trading time is the one market data's refusal names
        (expiring an order accepted before, by an orders service that restarted since)."""
        if spec.asset_class is not AssetClass.US_OPTION:
            return []
        symbols = [leg.symbol for leg in spec.legs] if spec.is_multileg else [spec.symbol]
        return [await self._last_trade(symbol, expired_too) for symbol in symbols]

    async def _last_trade(self, symbol: str, expired_too: bool) -> datetime | None:
        try:
            return (await self.market.instrument(symbol)).last_trade_at
        except DomainError as refusal:
            named = refusal.metadata.get("last_trade_time")
            if expired_too and refusal.reason == "CONTRACT_EXPIRED" and named:
                return datetime.fromisoformat(named)
            raise

    async def checked_spread_limit(self, spec: OrderSpec, structure: Structure) -> LegMarket:
        """The legs' quotes now, and a limit spread's sign checked on them at submit and at
        replace alike (``check_limit_sign``: ``limit_price_sign``), when every leg is usable
        (otherwise there is nothing to contradict)."""
        snapshots = [await self.market.quote(leg.symbol) for leg in spec.legs]
        market = LegMarket(
            quotes=tuple(
                LegQuote(leg.side, leg.ratio, q.bid, q.ask)
                for leg, q in zip(spec.legs, snapshots, strict=True)
                if q is not None and q.bid is not None and q.ask is not None
            ),
            usable=all(q is not None and q.usable and q.bid and q.ask for q in snapshots),
            oldest=None if None in snapshots else min(q.quote_at for q in snapshots if q is not None),
        )
        if spec.order_type is OrderType.LIMIT and market.usable and spec.limit_price is not None:
            check_limit_sign(structure, spec.limit_price, market.quotes)
        return market


# Refusals from accounts that end a saga (anything else leaves it to be resumed).
DEFINITIVE_REFUSALS = frozenset(
    {
        "INSUFFICIENT_BUYING_POWER",
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "FAILED_PRECONDITION",
        "IDEMPOTENCY_KEY_REUSED",
        "UNCOVERED_OPTION_NOT_ALLOWED",
    }
)
