"""The services the orders service calls, one named client each, speaking domain values:
market data (validated symbols, the quote an order is priced against, the trading sessions;
symbols and calendars cached) and accounts (holds of buying power). Their refusals come back
as ``DomainError`` with the callee's reason."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from mbt.accounts.v1 import accounts_pb2
from mbt.marketdata.v1 import marketdata_pb2
from services.common.errors import DomainError
from services.common.rpc.remote import call
from services.common.trading import FillPreference, PositionIntent
from services.common.wire.conv import decimal_str, from_timestamp, money_str, parse_decimal, parse_enum, to_date
from services.common.wire.trading import (
    ASSET_CLASS_WIRE,
    FILL_PREFERENCE_WIRE,
    FILL_PREFERENCES,
    INSTRUMENT_CLASSES,
    ORDER_TYPE_WIRE,
    POSITION_INTENT_WIRE,
    POSITION_INTENTS,
    SIDE_WIRE,
)
from services.orders.domain.model import Instrument, Order, OrderClass, OrderSpec
from services.orders.domain.rules import QuoteSnapshot, Session
from services.orders.wire import legs_to_proto

CALENDAR_DAYS = 14
# Classes whose exits wait for their entry's fill (an oco's stop-loss hangs from an exit).
ENTRY_CLASSES = frozenset({OrderClass.BRACKET, OrderClass.OTO})


class MarketClient:
    def __init__(self, stub, timeout: float) -> None:
        self.stub = stub
        self.timeout = timeout
        self._instruments: dict[str, Instrument] = {}
        self._sessions: list[Session] = []

    async def instrument(self, symbol: str) -> Instrument:
        """Validated by market data: invalid_argument or not_found pass through unchanged."""
        if symbol not in self._instruments:
            reply = await self._call(self.stub.GetSymbol, marketdata_pb2.GetSymbolRequest(symbol=symbol))
            info = reply.symbol
            self._instruments[symbol] = Instrument(
                symbol=info.symbol,
                asset_class=INSTRUMENT_CLASSES[info.asset_class],
                multiplier=parse_decimal(info.multiplier, "multiplier") or Decimal(1),
                tradable=info.tradable,
                last_trade_at=from_timestamp(info.last_trade_time) if info.HasField("last_trade_time") else None,
            )
        return self._instruments[symbol]

    async def quote(self, symbol: str) -> QuoteSnapshot | None:
        """The latest quote, None when market data has none for the symbol."""
        try:
            reply = await self._call(self.stub.GetLatestQuote, marketdata_pb2.GetLatestQuoteRequest(symbol=symbol))
        except DomainError as exc:
            if exc.reason == "NOT_FOUND":
                return None
            raise
        quote = reply.quote
        return QuoteSnapshot(
            bid=parse_decimal(quote.bid_price, "bid_price"),
            ask=parse_decimal(quote.ask_price, "ask_price"),
            quote_at=from_timestamp(quote.quote_at, "quote_at", required=True),
            usable=quote.condition == marketdata_pb2.QUOTE_CONDITION_USABLE,
        )

    async def session(self, now: datetime) -> Session:
        """The first regular session that closes after ``now``."""
        for _ in range(2):
            for session in self._sessions:
                if session.close_at > now:
                    return session
            await self._load_calendar(now)
        raise DomainError("UNAVAILABLE", "the market calendar has no session ahead")

    async def _load_calendar(self, now: datetime) -> None:
        start: date = now.date() - timedelta(days=1)
        reply = await self._call(
            self.stub.ListCalendar,
            marketdata_pb2.ListCalendarRequest(
                from_date=to_date(start), to_date=to_date(start + timedelta(days=CALENDAR_DAYS))
            ),
        )
        self._sessions = [
            Session(
                from_timestamp(day.open_at, "open_at", required=True),
                from_timestamp(day.close_at, "close_at", required=True),
            )
            for day in reply.days
        ]

    async def _call(self, method, request):
        return await call(method, request, timeout=self.timeout, what="market data")


@dataclass(frozen=True)
class Reservation:
    """What accounts answered a hold with: the account, and for an option order what it
    resolved from the account (the intent, each leg's intent, the profile's fill preference)."""

    account_id: str
    position_intent: PositionIntent | None = None
    leg_intents: tuple[PositionIntent | None, ...] = ()
    fill_preference: FillPreference | None = None

    def resolve(self, spec: OrderSpec) -> OrderSpec:
        """``spec`` with what was resolved (what was sent is kept where nothing was)."""
        legs = tuple(
            replace(leg, position_intent=intent or leg.position_intent)
            for leg, intent in zip(spec.legs, self.leg_intents or (None,) * len(spec.legs), strict=True)
        )
        return replace(
            spec,
            position_intent=self.position_intent or spec.position_intent,
            legs=legs,
            fill_preference=self.fill_preference or spec.fill_preference,
        )


class AccountsClient:
    def __init__(self, stub, timeout: float) -> None:
        self.stub = stub
        self.timeout = timeout

    async def hold(self, order: Order, version: int, spec: OrderSpec, worst_price: Decimal) -> Reservation:
        """Hold buying power for ``version`` of ``order`` with ``spec``'s terms, priced at
        ``worst_price`` (dollars per share; a multi-leg order's net per spread, either sign);
        returns what accounts resolved (``Reservation``). Idempotent for the same
        terms; refusals (insufficient_buying_power, idempotency_key_reused…) raise."""
        reply = await call(
            self.stub.ReserveBuyingPower,
            accounts_pb2.ReserveBuyingPowerRequest(
                order_id=order.order_id,
                order_version=version,
                user_id=order.user_id,
                symbol=spec.symbol,
                asset_class=ASSET_CLASS_WIRE[spec.asset_class],
                side=SIDE_WIRE[spec.side],
                qty=decimal_str(spec.qty),
                order_type=ORDER_TYPE_WIRE[spec.order_type],
                limit_price=money_str(spec.limit_price),
                stop_price=money_str(spec.stop_price),
                worst_price=money_str(worst_price),
                multiplier=decimal_str(order.multiplier),
                position_intent=POSITION_INTENT_WIRE[spec.position_intent] if spec.position_intent else None,
                legs=legs_to_proto(spec.legs),
                fill_preference=FILL_PREFERENCE_WIRE[spec.fill_preference] if spec.fill_preference else None,
                exit_group=order.exit_group or "",
                parent_order_id=order.parent_order_id if order.order_class in ENTRY_CLASSES else "",
            ),
            timeout=self.timeout,
            what="accounts",
        )
        held = reply.reservation
        return Reservation(
            held.account_id,
            parse_enum(POSITION_INTENTS, held.position_intent, "position_intent", required=False),
            tuple(parse_enum(POSITION_INTENTS, intent, "leg_intents") for intent in held.leg_intents),
            parse_enum(FILL_PREFERENCES, held.fill_preference, "fill_preference", required=False),
        )

    async def release(self, order: Order, version: int = 0) -> Decimal:
        """Release one version's hold (a replace abandoned) or, with 0, every version's (an
        order that ended before it was accepted); idempotent. Returns what was held."""
        reply = await call(
            self.stub.ReleaseBuyingPower,
            accounts_pb2.ReleaseBuyingPowerRequest(
                order_id=order.order_id, order_version=version, user_id=order.user_id
            ),
            timeout=self.timeout,
            what="accounts",
        )
        return parse_decimal(reply.released, "released") or Decimal(0)
