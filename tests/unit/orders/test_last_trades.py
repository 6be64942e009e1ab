"""The last trading time of an order's contracts (``Deps.last_trades``): a contract that has
expired is refused to submit and replace, but expiring an order accepted before reads the
time market data's refusal names — an orders service restarted after the contract's close has
no cached terms, and its housekeeping must still expire the order ``contract_expired``."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.common.errors import DomainError
from services.common.trading import AssetClass, OrderType, Side, TimeInForce
from services.orders.domain.model import OrderSpec
from services.orders.usecases.deps import Deps

EXPIRED, LISTED = "AMZN120622C00220000", "AMZN120629C00220000"
LAST_TRADE = datetime(2012, 6, 22, 20, 0, tzinfo=UTC)
NEXT_LAST_TRADE = datetime(2012, 6, 29, 20, 0, tzinfo=UTC)


class Market:
    async def instrument(self, symbol: str):
        if symbol == EXPIRED:
            raise DomainError(
                "CONTRACT_EXPIRED",
                f"option contract {symbol} has expired",
                symbol=symbol,
                last_trade_time=LAST_TRADE.isoformat(),
            )
        return type("Instrument", (), {"last_trade_at": NEXT_LAST_TRADE})()


def deps() -> Deps:
    return Deps(settings=None, db=None, uow=None, clock=None, wall=None, market=Market(), accounts=None)


def an_option_order(symbol: str) -> OrderSpec:
    return OrderSpec(
        client_order_id="c1",
        symbol=symbol,
        asset_class=AssetClass.US_OPTION,
        side=Side.SELL,
        qty=Decimal(1),
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        limit_price=Decimal("1.00"),
        stop_price=None,
    )


async def test_an_expired_contract_is_refused_to_submit_and_replace():
    with pytest.raises(DomainError) as refused:
        await deps().last_trades(an_option_order(EXPIRED))
    assert refused.value.reason == "CONTRACT_EXPIRED"


async def test_expiring_an_accepted_order_reads_the_time_the_refusal_names():
    assert await deps().last_trades(an_option_order(EXPIRED), expired_too=True) == [LAST_TRADE]
    assert await deps().last_trades(an_option_order(LISTED), expired_too=True) == [NEXT_LAST_TRADE]
