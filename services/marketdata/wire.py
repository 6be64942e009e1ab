"""Domain values to and from mbt.marketdata.v1 messages.

A streamed tick is encoded once, whatever the number of subscribers: ``Tick.wire``
caches its ``Quote`` bytes without the age (which depends on when it is sent), and a
stream message is assembled from those bytes plus each quote's age.
"""

from __future__ import annotations

import functools
from decimal import Decimal

from google.protobuf.duration_pb2 import Duration

from mbt.common.v1 import trading_pb2
from mbt.marketdata.v1 import marketdata_pb2 as pb
from services.common.instruments import AM, CALL, ExerciseStyle, Settlement, SymbolSpec, contract_terms, parse_symbol
from services.common.wire.conv import (
    decimal_str,
    money_str,
    price_str,
    qty_str,
    symbol_price_str,
    timestamp_from_ns,
    to_date,
    to_timestamp,
)
from services.marketdata import clockfeed
from services.marketdata.barfeed import BarClose
from services.marketdata.clockfeed import ClockState
from services.marketdata.domain.bars import Bar, Basis
from services.marketdata.domain.calendar import TradingSession
from services.marketdata.domain.gating import Entitlement
from services.marketdata.domain.option_model import Greeks, ModelInputs
from services.marketdata.domain.reference import Dividend, OptionChain
from services.marketdata.domain.ticks import Condition, Source, Tick
from services.marketdata.hub import Gap

CONDITIONS = {
    Condition.USABLE: pb.QUOTE_CONDITION_USABLE,
    Condition.CROSSED: pb.QUOTE_CONDITION_CROSSED,
    Condition.LOCKED: pb.QUOTE_CONDITION_LOCKED,
    Condition.EMPTY: pb.QUOTE_CONDITION_EMPTY,
    Condition.INDEX: pb.QUOTE_CONDITION_INDEX,
}
SOURCES = {
    Source.REPLAY: pb.QUOTE_SOURCE_REPLAY,
    Source.ALPACA: pb.QUOTE_SOURCE_ALPACA,
    Source.SNAPSHOT: pb.QUOTE_SOURCE_SNAPSHOT,
    Source.MODEL: pb.QUOTE_SOURCE_MODEL,
}
BASES = {Basis.TRADES: pb.BAR_BASIS_TRADES, Basis.QUOTE_MID: pb.BAR_BASIS_QUOTE_MID}
CLOCK_MODES = {
    clockfeed.WALL: pb.CLOCK_MODE_WALL,
    clockfeed.REPLAY: pb.CLOCK_MODE_REPLAY,
    clockfeed.STEPPED: pb.CLOCK_MODE_STEPPED,
}
_BILLION = 1_000_000_000


def duration(ns: int) -> Duration:
    # A negative Duration carries the sign on both fields.
    sign = -1 if ns < 0 else 1
    seconds, nanos = divmod(abs(ns), _BILLION)
    return Duration(seconds=sign * seconds, nanos=sign * nanos)


@functools.lru_cache(maxsize=65536)
def _is_option(symbol: str) -> bool:
    return parse_symbol(symbol).is_option


def model_inputs(inputs: ModelInputs) -> pb.ModelInputs:
    return pb.ModelInputs(
        model=inputs.model,
        underlying_symbol=inputs.underlying_symbol,
        underlying_sequence=inputs.underlying_sequence,
        underlying_price=decimal_str(inputs.underlying_price),
        volatility=decimal_str(inputs.volatility),
        risk_free_rate=decimal_str(inputs.risk_free_rate),
        dividend_yield=decimal_str(inputs.dividend_yield),
        time_to_expiry=decimal_str(inputs.time_to_expiry),
        model_price=decimal_str(inputs.model_price),
        half_spread=decimal_str(inputs.half_spread),
    )


def greeks_message(value: Greeks) -> pb.Greeks:
    return pb.Greeks(
        delta=decimal_str(value.delta),
        gamma=decimal_str(value.gamma),
        theta=decimal_str(value.theta),
        vega=decimal_str(value.vega),
        implied_volatility=decimal_str(value.implied_volatility),
    )


def _static_quote(tick: Tick) -> pb.Quote:
    message = pb.Quote(
        symbol=tick.symbol,
        bid_price=symbol_price_str(tick.bid, tick.symbol),
        bid_size=qty_str(tick.bid_size),
        ask_price=symbol_price_str(tick.ask, tick.symbol),
        ask_size=qty_str(tick.ask_size),
        quote_at=timestamp_from_ns(tick.quote_at_ns),
        sequence=tick.sequence,
        condition=CONDITIONS[tick.condition],
        source=SOURCES[tick.source],
    )
    if tick.model is not None:
        message.model.CopyFrom(model_inputs(tick.model))
    return message


def quote(tick: Tick, age_ns: int, delayed: bool = False) -> pb.Quote:
    message = _static_quote(tick)
    message.age.CopyFrom(duration(age_ns))
    message.delayed = delayed
    return message


# Hand-encoded Quote fields for streaming (protobuf wire format: a tag byte, then a
# varint or a length-prefixed body; fields may come in any order).
_QUOTES = b"\x0a"  # StreamQuotesResponse.quotes (1)
_SYMBOL, _BID, _BID_SIZE, _ASK, _ASK_SIZE = b"\x0a", b"\x12", b"\x1a", b"\x22", b"\x2a"  # Quote fields 1-5
_QUOTE_AT = b"\x32"  # Quote.quote_at (6)
_SEQUENCE = b"\x38"  # Quote.sequence (7)
_CONDITION = b"\x40"  # Quote.condition (8)
_AGE = b"\x4a"  # Quote.age (9)
_SOURCE = b"\x58"  # Quote.source (11)
_MODEL = b"\x62"  # Quote.model (12)
_TEXT_CACHE_LIMIT = 100_000


_SMALL = [bytes((n,)) for n in range(0x80)]


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _text_field(tag: bytes, text: str) -> bytes:
    if not text:
        return b""
    raw = text.encode()
    return tag + _varint(len(raw)) + raw


_seconds_fields: dict[int, bytes] = {}


def _seconds_field(seconds: int) -> bytes:
    """``seconds`` (field 1) of a Timestamp or Duration; ticks and ages repeat the same few."""
    encoded = _seconds_fields.get(seconds)
    if encoded is None:
        if len(_seconds_fields) > _TEXT_CACHE_LIMIT:
            _seconds_fields.clear()
        encoded = _seconds_fields[seconds] = b"\x08" + _varint(seconds) if seconds else b""
    return encoded


class _Texts:
    """Encoded decimal fields by value: a session repeats few distinct prices and sizes."""

    def __init__(self, tag: bytes, render) -> None:
        self.tag = tag
        self.render = render
        self.cache: dict[Decimal | None, bytes] = {}

    def __call__(self, value: Decimal | None) -> bytes:
        encoded = self.cache.get(value)
        if encoded is None:
            if len(self.cache) > _TEXT_CACHE_LIMIT:
                self.cache.clear()
            encoded = self.cache[value] = _text_field(self.tag, self.render(value))
        return encoded


_BIDS, _ASKS = _Texts(_BID, price_str), _Texts(_ASK, price_str)
_OPTION_BIDS = _Texts(_BID, functools.partial(price_str, option=True))
_OPTION_ASKS = _Texts(_ASK, functools.partial(price_str, option=True))
_BID_SIZES, _ASK_SIZES = _Texts(_BID_SIZE, qty_str), _Texts(_ASK_SIZE, qty_str)
_CONDITION_FIELDS = {c: _CONDITION + _varint(n) for c, n in CONDITIONS.items()}
_SOURCE_FIELDS = {s: _SOURCE + _varint(n) for s, n in SOURCES.items()}


def _seconds_nanos(tag: bytes, ns: int) -> bytes:
    """A Timestamp or a non-negative Duration field."""
    seconds, nanos = divmod(ns, _BILLION)
    body = _seconds_field(seconds) + (b"\x10" + _varint(nanos) if nanos else b"")
    return tag + _SMALL[len(body)] + body


def _age(age_ns: int) -> bytes:
    if age_ns >= 0:
        return _seconds_nanos(_AGE, age_ns)
    encoded = duration(age_ns).SerializeToString()
    return _AGE + _varint(len(encoded)) + encoded


def _encoded(tick: Tick) -> bytes:
    """The tick's Quote without its age: prices, sizes and quality encoded once per
    recorded quote, time and sequence once per tick."""
    if tick.encoded is None:
        origin = tick.origin
        if origin.content is None:
            bids, asks = (_OPTION_BIDS, _OPTION_ASKS) if _is_option(tick.symbol) else (_BIDS, _ASKS)
            origin.content = b"".join(
                (
                    _text_field(_SYMBOL, tick.symbol),
                    bids(tick.bid),
                    _BID_SIZES(tick.bid_size),
                    asks(tick.ask),
                    _ASK_SIZES(tick.ask_size),
                    _CONDITION_FIELDS[tick.condition],
                    _SOURCE_FIELDS[tick.source],
                )
            )
            if tick.model is not None:
                inputs = model_inputs(tick.model).SerializeToString()
                origin.content += _MODEL + _varint(len(inputs)) + inputs
        tick.encoded = (
            origin.content
            + _seconds_nanos(_QUOTE_AT, tick.quote_at_ns)
            + (_SEQUENCE + _varint(tick.sequence) if tick.sequence else b"")
        )
    return tick.encoded


def stream_response(ticks: list[Tick], now_ns: int) -> pb.StreamQuotesResponse:
    """One stream message; each tick is encoded once whatever the number of subscribers."""
    parts = []
    for tick in ticks:
        body = _encoded(tick) + _age(now_ns - tick.quote_at_ns)
        parts.append(_QUOTES + _varint(len(body)) + body)
    return pb.StreamQuotesResponse.FromString(b"".join(parts))


class StreamMessages:
    """Stream messages shared by subscribers that are sent the same run of ticks at the
    same clock time — the usual case when a stepped replay (whose clock stands still
    between steps) feeds several subscribers of the same symbols.

    A run is identified by the subscription's symbols, its first and last tick objects
    and its length: runs are contiguous parts of one feed, so for the same symbols these
    pin down every tick in between. The recent entries keep their ticks alive, so object
    identities cannot be reused while cached."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._recent: dict[tuple, tuple[Tick, Tick, pb.StreamQuotesResponse]] = {}

    def response(self, symbols: frozenset[str], ticks: list[Tick], now_ns: int) -> pb.StreamQuotesResponse:
        key = (symbols, id(ticks[0]), id(ticks[-1]), len(ticks), now_ns)
        cached = self._recent.get(key)
        if cached is not None:
            return cached[2]
        message = stream_response(ticks, now_ns)
        if len(self._recent) >= self.size:
            del self._recent[next(iter(self._recent))]
        self._recent[key] = (ticks[0], ticks[-1], message)
        return message


def gap_response(gap: Gap) -> pb.StreamQuotesResponse:
    return pb.StreamQuotesResponse(
        dropped=gap.count,
        dropped_from_sequence=gap.first_sequence,
        dropped_to_sequence=gap.last_sequence,
        dropped_symbol=gap.symbol,
    )


def bar(value: Bar, source: Source) -> pb.Bar:
    return pb.Bar(
        symbol=value.symbol,
        timeframe=value.timeframe.value,
        start_time=timestamp_from_ns(value.start_ns),
        end_time=timestamp_from_ns(value.end_ns),
        open=money_str(value.open),
        high=money_str(value.high),
        low=money_str(value.low),
        close=money_str(value.close),
        volume=decimal_str(value.volume),
        trade_count=value.trade_count,
        vwap=money_str(value.vwap),
        basis=BASES[value.basis],
        source=SOURCES[source],
    )


def bar_close(close: BarClose, source: Source) -> pb.StreamBarsResponse:
    return pb.StreamBarsResponse(
        start_time=timestamp_from_ns(close.start_ns),
        end_time=timestamp_from_ns(close.end_ns),
        bars=[bar(b, source) for b in close.bars],
    )


def symbol_info(spec: SymbolSpec, tradable: bool, last_trade_ns: int | None = None) -> pb.SymbolInfo:
    info = pb.SymbolInfo(
        symbol=spec.symbol, underlying=spec.underlying, multiplier=qty_str(spec.multiplier), tradable=tradable
    )
    if spec.is_option:
        terms = contract_terms(spec)
        info.asset_class = trading_pb2.ASSET_CLASS_US_OPTION
        info.expiration_date.CopyFrom(to_date(spec.expiration))
        info.option_type = pb.OPTION_TYPE_CALL if spec.option_type == CALL else pb.OPTION_TYPE_PUT
        info.strike_price = money_str(spec.strike)
        info.root = spec.root
        info.exercise_style = (
            pb.EXERCISE_STYLE_AMERICAN if terms.exercise_style is ExerciseStyle.AMERICAN else pb.EXERCISE_STYLE_EUROPEAN
        )
        info.settlement_type = (
            pb.SETTLEMENT_TYPE_CASH if terms.settlement_type is Settlement.CASH else pb.SETTLEMENT_TYPE_PHYSICAL
        )
        if terms.settlement_time:
            info.settlement_time = pb.SETTLEMENT_TIME_AM if terms.settlement_time == AM else pb.SETTLEMENT_TIME_PM
        if last_trade_ns is not None:
            info.last_trade_time.CopyFrom(timestamp_from_ns(last_trade_ns))
    elif spec.is_index:
        info.asset_class = trading_pb2.ASSET_CLASS_INDEX
    else:
        info.asset_class = trading_pb2.ASSET_CLASS_US_EQUITY
    return info


def option_chain(
    chain: OptionChain, now_ns: int, risk_free_rate: Decimal, caller: Entitlement
) -> pb.GetOptionChainResponse:
    """The chain as answered to ``caller``: each quote in it (the underlying's and every
    contract's) labelled ``delayed`` as ``GetLatestQuote`` labels it (``labels_delayed``)."""
    response = pb.GetOptionChainResponse(
        underlying=chain.underlying,
        as_of=timestamp_from_ns(chain.as_of_ns),
        source=SOURCES[chain.source],
        risk_free_rate=decimal_str(risk_free_rate),
    )
    if chain.underlying_tick is not None:
        tick = chain.underlying_tick
        response.underlying_quote.CopyFrom(quote(tick, now_ns - tick.quote_at_ns, caller.labels_delayed(tick)))
    for contract in chain.contracts:
        spec = contract.spec
        message = response.contracts.add(
            symbol=spec.symbol,
            underlying=spec.underlying,
            expiration_date=to_date(spec.expiration),
            option_type=pb.OPTION_TYPE_CALL if spec.option_type == CALL else pb.OPTION_TYPE_PUT,
            strike_price=money_str(spec.strike),
            open_interest=qty_str(contract.open_interest),
            volume=qty_str(contract.volume),
            root=spec.root,
        )
        if contract.tick is not None:
            age = now_ns - contract.tick.quote_at_ns
            message.quote.CopyFrom(quote(contract.tick, age, caller.labels_delayed(contract.tick)))
        if contract.greeks is not None:
            message.greeks.CopyFrom(greeks_message(contract.greeks))
    return response


def clock_state(state: ClockState) -> pb.ClockState:
    return pb.ClockState(
        simulated_at=to_timestamp(state.simulated_at),
        wall_at=to_timestamp(state.wall_at),
        speed=decimal_str(state.speed),
        mode=CLOCK_MODES[state.mode],
    )


def trading_day(session: TradingSession) -> pb.TradingDay:
    return pb.TradingDay(
        date=to_date(session.date),
        open_at=timestamp_from_ns(session.open_ns),
        close_at=timestamp_from_ns(session.close_ns),
        early_close=session.early_close,
    )


def dividend(value: Dividend) -> pb.Dividend:
    return pb.Dividend(
        symbol=value.symbol,
        ex_date=to_date(value.ex_date),
        record_date=to_date(value.record_date),
        pay_date=to_date(value.pay_date),
        cash_amount=money_str(value.cash_amount),
    )
