"""Domain values to and from mbt.marketdata.v1 messages.

A streamed tick is encoded once, whatever the number of subscribers: ``Tick.wire``
caches its ``Quote`` bytes without the age (which depends on when it is sent), and a
stream message is assembled from those bytes plus each quote's age.
"""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from mbt.common.v1 import trading_pb2
from mbt.marketdata.v1 import marketdata_pb2 as pb
from services.common.conv import decimal_str, money_str, timestamp_from_ns, to_date, to_timestamp
from services.marketdata import clockfeed
from services.marketdata.clockfeed import ClockState
from services.marketdata.domain.reference import Dividend, OptionChain
from services.marketdata.domain.symbols import CALL, SymbolSpec
from services.marketdata.domain.ticks import Condition, Source, Tick
from services.marketdata.hub import Gap
from services.marketdata.market_calendar import TradingSession

CONDITIONS = {Condition.USABLE: pb.QUOTE_CONDITION_USABLE, Condition.CROSSED: pb.QUOTE_CONDITION_CROSSED,
              Condition.LOCKED: pb.QUOTE_CONDITION_LOCKED, Condition.EMPTY: pb.QUOTE_CONDITION_EMPTY}
SOURCES = {Source.REPLAY: pb.QUOTE_SOURCE_REPLAY, Source.ALPACA: pb.QUOTE_SOURCE_ALPACA,
           Source.SNAPSHOT: pb.QUOTE_SOURCE_SNAPSHOT, Source.SYNTHETIC: pb.QUOTE_SOURCE_SYNTHETIC}
CLOCK_MODES = {clockfeed.WALL: pb.CLOCK_MODE_WALL, clockfeed.REPLAY: pb.CLOCK_MODE_REPLAY,
               clockfeed.STEPPED: pb.CLOCK_MODE_STEPPED}
_BILLION = 1_000_000_000


def duration(ns: int) -> Duration:
    # A negative Duration carries the sign on both fields.
    sign = -1 if ns < 0 else 1
    seconds, nanos = divmod(abs(ns), _BILLION)
    return Duration(seconds=sign * seconds, nanos=sign * nanos)


def _static_quote(tick: Tick) -> pb.Quote:
    return pb.Quote(symbol=tick.symbol, bid_price=money_str(tick.bid), bid_size=decimal_str(tick.bid_size),
                    ask_price=money_str(tick.ask), ask_size=decimal_str(tick.ask_size),
                    quote_at=timestamp_from_ns(tick.quote_at_ns), sequence=tick.sequence,
                    condition=CONDITIONS[tick.condition], source=SOURCES[tick.source])


def quote(tick: Tick, age_ns: int, delayed: bool = False) -> pb.Quote:
    message = _static_quote(tick)
    message.age.CopyFrom(duration(age_ns))
    message.delayed = delayed
    return message


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_QUOTES_FIELD = b"\x0a"  # StreamQuotesResponse.quotes: field 1, length-delimited
_AGE_FIELD = b"\x4a"  # Quote.age: field 9, length-delimited


def _age_bytes(age_ns: int) -> bytes:
    encoded = duration(age_ns).SerializeToString()
    return _AGE_FIELD + _varint(len(encoded)) + encoded


def stream_response(ticks: list[Tick], now_ns: int) -> pb.StreamQuotesResponse:
    """One stream message from ticks, each encoded once and shared by every subscriber."""
    parts = []
    for tick in ticks:
        static = tick.wire
        if static is None:
            static = tick.wire = _static_quote(tick).SerializeToString()
        body = static + _age_bytes(now_ns - tick.quote_at_ns)
        parts.append(_QUOTES_FIELD + _varint(len(body)) + body)
    return pb.StreamQuotesResponse.FromString(b"".join(parts))


def gap_response(gap: Gap) -> pb.StreamQuotesResponse:
    return pb.StreamQuotesResponse(dropped=gap.count, dropped_from_sequence=gap.first_sequence,
                                   dropped_to_sequence=gap.last_sequence, dropped_symbol=gap.symbol)


def symbol_info(spec: SymbolSpec, tradable: bool) -> pb.SymbolInfo:
    info = pb.SymbolInfo(symbol=spec.symbol, underlying=spec.underlying, multiplier=decimal_str(spec.multiplier),
                         tradable=tradable)
    if spec.is_option:
        info.asset_class = trading_pb2.ASSET_CLASS_US_OPTION
        info.expiration_date.CopyFrom(to_date(spec.expiration))
        info.option_type = pb.OPTION_TYPE_CALL if spec.option_type == CALL else pb.OPTION_TYPE_PUT
        info.strike_price = money_str(spec.strike)
    else:
        info.asset_class = trading_pb2.ASSET_CLASS_US_EQUITY
    return info


def option_chain(chain: OptionChain, now_ns: int) -> pb.GetOptionChainResponse:
    response = pb.GetOptionChainResponse(underlying=chain.underlying, as_of=timestamp_from_ns(chain.as_of_ns),
                                         source=SOURCES[chain.source])
    if chain.underlying_tick is not None:
        response.underlying_quote.CopyFrom(quote(chain.underlying_tick, now_ns - chain.underlying_tick.quote_at_ns))
    for contract in chain.contracts:
        spec = contract.spec
        message = response.contracts.add(
            symbol=spec.symbol, underlying=spec.underlying, expiration_date=to_date(spec.expiration),
            option_type=pb.OPTION_TYPE_CALL if spec.option_type == CALL else pb.OPTION_TYPE_PUT,
            strike_price=money_str(spec.strike), open_interest=decimal_str(contract.open_interest),
            volume=decimal_str(contract.volume))
        if contract.tick is not None:
            message.quote.CopyFrom(quote(contract.tick, now_ns - contract.tick.quote_at_ns))
    return response


def clock_state(state: ClockState) -> pb.ClockState:
    return pb.ClockState(simulated_at=to_timestamp(state.simulated_at), wall_at=to_timestamp(state.wall_at),
                         speed=decimal_str(state.speed), mode=CLOCK_MODES[state.mode])


def trading_day(session: TradingSession) -> pb.TradingDay:
    return pb.TradingDay(date=to_date(session.date), open_at=timestamp_from_ns(session.open_ns),
                         close_at=timestamp_from_ns(session.close_ns), early_close=session.early_close)


def dividend(value: Dividend) -> pb.Dividend:
    return pb.Dividend(symbol=value.symbol, ex_date=to_date(value.ex_date), record_date=to_date(value.record_date),
                       pay_date=to_date(value.pay_date), cash_amount=money_str(value.cash_amount))
