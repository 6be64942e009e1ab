"""ExplainFill: replay the archived ticks of a fill through the same fill function and say
which rule fired, on which NBBO, at what time — "why did this fill at $X". A multi-leg fill
is replayed through the multi-leg decision on its legs' archived quotes at the fill moment.
The deciding quote (every leg's, for a multi-leg fill) is shown with where it came from
(recorded, snapshot or model, with the model's inputs)."""

from __future__ import annotations

import dataclasses

from services.common.errors import not_found
from services.matcher.clients import MarketDataClient, OrdersClient, SessionCalendar
from services.matcher.domain import Action, WorkingOrder, replay
from services.matcher.multileg import reproduces
from services.matcher.usecases.matching import decide_spread_on
from services.matcher.views import ExplainedLeg, FilledOrder, FilledSpread, FillExplanation, RecordedFill


class Explainer:
    def __init__(
        self, orders: OrdersClient, marketdata: MarketDataClient, calendar: SessionCalendar, max_quote_age_ns: int
    ) -> None:
        self.orders = orders
        self.marketdata = marketdata
        self.calendar = calendar
        self.max_quote_age_ns = max_quote_age_ns

    async def explain(self, fill_id: str, user_id: str | None) -> FillExplanation:
        """Why ``fill_id`` filled; a user (``user_id``; None for a service) sees only their
        own fills: someone else's is not_found."""
        fill, order = await self.orders.fill(fill_id)
        if user_id is not None and order.user_id != user_id:
            raise not_found("fill", fill_id)  # someone else's fill does not exist for this caller
        if isinstance(order, FilledSpread):
            return await self._explain_spread(fill, order)
        working = _as_working_at_fill(order)
        archived = [
            quote
            async for quote in self.marketdata.archived_quotes(
                fill.tick.symbol, from_ns=working.accepted_ns - self.max_quote_age_ns, to_ns=fill.tick.at_ns
            )
        ]
        deciding = next((q for q in archived if q.tick.sequence == fill.tick.sequence), None)
        ticks = [quote.tick for quote in archived]
        if deciding is None:
            ticks.append(fill.tick)  # archive retention passed: the fill's own NBBO still explains it
        for tick in ticks:
            await self.calendar.ensure(max(tick.at_ns, working.accepted_ns))
        decision, considered = replay(
            working, ticks, session_for=self.calendar.session_at, max_quote_age_ns=self.max_quote_age_ns
        )
        reproduced = (
            decision.action is Action.FILL
            and decision.tick is not None
            and decision.tick.sequence == fill.tick.sequence
            and decision.price == fill.price
            and decision.rule == fill.rule
        )
        return FillExplanation(
            fill, _told(fill, reproduced, decision.explanation), reproduced, considered, quote=deciding
        )

    async def _explain_spread(self, fill: RecordedFill, order: FilledSpread) -> FillExplanation:
        """The legs' quotes of the fill moment, from the tick archive (the fill's own copy of
        a quote the archive no longer holds), decided once as the live matcher decided them
        (``decide_spread_on``)."""
        spread = order.spread
        legs = []
        for leg in fill.legs:
            archived = await self.marketdata.archived_quote(leg.symbol, leg.tick.sequence) if leg.tick.at_ns else None
            legs.append(ExplainedLeg(leg, archived))
        quotes = {leg.fill.symbol: leg.fill.tick if leg.quote is None else leg.quote.tick for leg in legs}
        decision = await decide_spread_on(spread, quotes, self.calendar, self.max_quote_age_ns)
        reproduced = reproduces(decision, spread.order_id, fill.fill_id, fill.price, fill.rule, fill.legs)
        return FillExplanation(
            fill,
            _told(fill, reproduced, decision.explanation),
            reproduced,
            len(quotes),
            legs=tuple(legs),
            natural=decision.natural,
            mid=decision.mid,
            fill_preference=spread.fill_preference,
        )


def _told(fill: RecordedFill, reproduced: bool, replayed: str) -> str:
    """The replay's words; when it did not reproduce the fill, what was recorded first."""
    if reproduced:
        return replayed
    return (
        f"recorded as {fill.rule} at {fill.price:f} on the quote of sequence {fill.tick.sequence}; "
        f"the replay of the archived quotes gives: {replayed}"
    )


def _as_working_at_fill(order: FilledOrder) -> WorkingOrder:
    """The order as the matcher worked it just before the fill: its terms at the time, and
    triggered only if the stop was reached before those terms took effect."""
    if order.triggered_ns is not None and order.triggered_ns > order.working.accepted_ns:
        return dataclasses.replace(order.working, triggered=False)
    return order.working
