"""The trading vocabulary on the wire: ``mbt.common.v1`` enums <-> ``services.common.trading``
(one table each way, for every service)."""

from __future__ import annotations

from mbt.common.v1 import trading_pb2
from services.common.trading import AssetClass, FillPreference, OrderType, PositionIntent, Side, TimeInForce

SIDES = {trading_pb2.ORDER_SIDE_BUY: Side.BUY, trading_pb2.ORDER_SIDE_SELL: Side.SELL}
ORDER_TYPES = {
    trading_pb2.ORDER_TYPE_MARKET: OrderType.MARKET,
    trading_pb2.ORDER_TYPE_LIMIT: OrderType.LIMIT,
    trading_pb2.ORDER_TYPE_STOP: OrderType.STOP,
    trading_pb2.ORDER_TYPE_STOP_LIMIT: OrderType.STOP_LIMIT,
}
TIMES_IN_FORCE = {
    trading_pb2.TIME_IN_FORCE_DAY: TimeInForce.DAY,
    trading_pb2.TIME_IN_FORCE_GTC: TimeInForce.GTC,
    trading_pb2.TIME_IN_FORCE_IOC: TimeInForce.IOC,
    trading_pb2.TIME_IN_FORCE_FOK: TimeInForce.FOK,
}
ASSET_CLASSES = {
    trading_pb2.ASSET_CLASS_US_EQUITY: AssetClass.US_EQUITY,
    trading_pb2.ASSET_CLASS_US_OPTION: AssetClass.US_OPTION,
}
# What market data's GetSymbol can describe: the traded classes and an index (never traded).
INSTRUMENT_CLASSES = {**ASSET_CLASSES, trading_pb2.ASSET_CLASS_INDEX: AssetClass.INDEX}
POSITION_INTENTS = {
    trading_pb2.POSITION_INTENT_BUY_TO_OPEN: PositionIntent.BUY_TO_OPEN,
    trading_pb2.POSITION_INTENT_BUY_TO_CLOSE: PositionIntent.BUY_TO_CLOSE,
    trading_pb2.POSITION_INTENT_SELL_TO_OPEN: PositionIntent.SELL_TO_OPEN,
    trading_pb2.POSITION_INTENT_SELL_TO_CLOSE: PositionIntent.SELL_TO_CLOSE,
}
FILL_PREFERENCES = {
    trading_pb2.FILL_PREFERENCE_CONSERVATIVE: FillPreference.CONSERVATIVE,
    trading_pb2.FILL_PREFERENCE_MID: FillPreference.MID,
    trading_pb2.FILL_PREFERENCE_AGGRESSIVE: FillPreference.AGGRESSIVE,
}

SIDE_WIRE = {value: number for number, value in SIDES.items()}
ORDER_TYPE_WIRE = {value: number for number, value in ORDER_TYPES.items()}
TIME_IN_FORCE_WIRE = {value: number for number, value in TIMES_IN_FORCE.items()}
ASSET_CLASS_WIRE = {value: number for number, value in ASSET_CLASSES.items()}
POSITION_INTENT_WIRE = {value: number for number, value in POSITION_INTENTS.items()}
FILL_PREFERENCE_WIRE = {value: number for number, value in FILL_PREFERENCES.items()}
