"""ExplainFill: replay the archived ticks of a fill through the same fill function and say
which rule fired, on which NBBO, at what time — "why did this fill at $X"."""

from __future__ import annotations

from decimal import Decimal

from mbt.matcher.v1 import matcher_pb2
from mbt.orders.v1 import orders_pb2
from services.common.wire.conv import timestamp_ns
from services.common.errors import not_found
from services.common.rpc.remote import call
from services.matcher.clients import archived_ticks
from services.matcher.clients import SessionCalendar
from services.matcher.domain import Action, Tick, replay
from services.matcher.usecases.matching import working_order


class Explainer:
    def __init__(self, orders_stub, marketdata_stub, calendar: SessionCalendar, max_quote_age_ns: int,
                 timeout: float) -> None:
        self.orders = orders_stub
        self.marketdata = marketdata_stub
        self.calendar = calendar
        self.max_quote_age_ns = max_quote_age_ns
        self.timeout = timeout

    async def explain(self, fill_id: str, user_id: str | None) -> matcher_pb2.FillExplanation:
        reply = await call(self.orders.GetFill, orders_pb2.GetFillRequest(fill_id=fill_id), timeout=self.timeout,
                           what="orders")
        fill, order = reply.fill, reply.order
        if user_id is not None and order.user_id != user_id:
            raise not_found("fill", fill_id)  # someone else's fill does not exist for this caller
        working = working_order(_as_working_at_fill(order))
        ticks = [tick async for tick in archived_ticks(
            self.marketdata, fill.symbol, from_ns=working.accepted_ns - self.max_quote_age_ns,
            to_ns=timestamp_ns(fill.quote_at), timeout=self.timeout)]
        if not any(t.sequence == fill.quote_sequence for t in ticks):
            ticks.append(_stored_tick(fill))  # archive retention passed: the fill's own NBBO still explains it
        for tick in ticks:
            await self.calendar.ensure(max(tick.at_ns, working.accepted_ns))
        decision, considered = replay(working, ticks, session_for=self.calendar.session_at,
                                      max_quote_age_ns=self.max_quote_age_ns)
        reproduced = (decision.action is Action.FILL and decision.tick is not None
                      and decision.tick.sequence == fill.quote_sequence and decision.price == Decimal(fill.price)
                      and decision.rule == fill.rule)
        text = decision.explanation
        if not reproduced:
            text = (f"recorded as {fill.rule} at {fill.price} on the quote of sequence {fill.quote_sequence}; "
                    f"the replay of the archived quotes gives: {decision.explanation}")
        return matcher_pb2.FillExplanation(
            fill_id=fill.fill_id, order_id=fill.order_id, symbol=fill.symbol, rule=fill.rule, explanation=text,
            fill_price=fill.price, bid_price=fill.bid_price, bid_size=fill.bid_size, ask_price=fill.ask_price,
            ask_size=fill.ask_size, quote_at=fill.quote_at, quote_sequence=fill.quote_sequence,
            reproduced=reproduced, ticks_considered=considered)


def _as_working_at_fill(order: orders_pb2.Order) -> orders_pb2.Order:
    """The order as the matcher worked it just before the fill: its terms at the time, and
    triggered only if the stop was reached before those terms took effect."""
    working = orders_pb2.Order()
    working.CopyFrom(order)
    terms_ns = max(timestamp_ns(order.accepted_at), timestamp_ns(order.replaced_at))
    if order.HasField("triggered_at") and timestamp_ns(order.triggered_at) > terms_ns:
        working.ClearField("triggered_at")
    return working


def _stored_tick(fill: orders_pb2.Fill) -> Tick:
    return Tick(symbol=fill.symbol, bid=Decimal(fill.bid_price), bid_size=Decimal(fill.bid_size or "0"),
                ask=Decimal(fill.ask_price), ask_size=Decimal(fill.ask_size or "0"),
                at_ns=timestamp_ns(fill.quote_at), sequence=fill.quote_sequence)
