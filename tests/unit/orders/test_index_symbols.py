"""An order on an index (^VIX) is refused as an index: market data describes it with
asset class index, which the orders service reads (it answered an internal error before)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from mbt.common.v1 import trading_pb2
from mbt.marketdata.v1 import marketdata_pb2
from services.common.errors import DomainError
from services.common.trading import AssetClass, OrderType, Side, TimeInForce
from services.orders.clients import MarketClient
from services.orders.domain.model import OrderSpec
from services.orders.usecases.submit import checked_for

NOW = datetime(2021, 4, 26, 14, 0, tzinfo=UTC)


class IndexSymbols:
    """GetSymbol as market data answers it for the Cboe dataset's ^VIX."""

    async def GetSymbol(self, request, timeout=None, metadata=None):
        return marketdata_pb2.GetSymbolResponse(
            symbol=marketdata_pb2.SymbolInfo(
                symbol=request.symbol, asset_class=trading_pb2.ASSET_CLASS_INDEX, multiplier="1", tradable=False
            )
        )


async def test_an_order_on_an_index_is_refused_as_an_index():
    instrument = await MarketClient(IndexSymbols(), timeout=1).instrument("^VIX")
    assert (instrument.asset_class, instrument.tradable) == (AssetClass.INDEX, False)
    spec = OrderSpec(
        client_order_id="c1",
        symbol="^VIX",
        asset_class=AssetClass.US_EQUITY,
        side=Side.BUY,
        qty=Decimal(1),
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.DAY,
        limit_price=Decimal("17.00"),
        stop_price=None,
    )
    with pytest.raises(DomainError) as refused:
        checked_for(spec, instrument, NOW)
    assert (refused.value.reason, refused.value.metadata) == ("INVALID_ARGUMENT", {"field": "symbol"})
    assert "^VIX is an index: it is never traded" in str(refused.value)
