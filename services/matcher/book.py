"""The matcher's book: working orders per symbol, indexed so a tick costs O(log n + k).

k is the number of orders that can act on the tick. Resting orders sit in one of four
price indexes by the price a quote must cross (DESIGN §6):

    buy limits   keyed by limit, act when limit >= ask   (triggered buy stop-limits too)
    sell limits  keyed by limit, act when limit <= bid   (triggered sell stop-limits too)
    buy stops    keyed by stop,  act when stop <= ask    (untriggered stops and stop-limits)
    sell stops   keyed by stop,  act when stop >= bid

Market orders, triggered stops (working as market orders) and ioc/fok orders see every
usable tick. Day orders are also indexed by expiry. Each index caches its most reachable
price, so a tick that reaches none of them costs a handful of comparisons.

The book only selects candidates: decide() alone says what they do, so process() gives
exactly what decide() over every order would give, without the orders that would wait.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice

from sortedcontainers import SortedDict, SortedList

from services.matcher.domain import (
    TERMINAL_ACTIONS,
    Action,
    Decision,
    MarketSession,
    OrderType,
    Side,
    Tick,
    TimeInForce,
    WorkingOrder,
    decide,
    expiry_decision,
    in_session,
    is_usable,
    required_price,
)

_NEVER_NS = 2**63  # beyond any epoch-nanosecond time: "no expiry pending"
_SEES_EVERY_TICK = frozenset({TimeInForce.IOC, TimeInForce.FOK})
# Exit groups with a fill decided that the book remembers: a late event for a sibling comes
# within seconds (the orders service cancels it in the fill's transaction and refuses any fill
# of it after that), so the oldest are forgotten and the memory stays bounded.
FILLED_GROUPS_REMEMBERED = 100_000


@dataclass(frozen=True)
class Outcome:
    """A decision other than WAIT, with the order as it was when decided."""

    order: WorkingOrder
    decision: Decision


@dataclass(frozen=True)
class BookStats:
    orders: int
    symbols: int
    buy_limits: int
    sell_limits: int
    buy_stops: int
    sell_stops: int
    every_tick: int
    expiring: int


def _fairness(order: WorkingOrder) -> tuple[int, str]:
    """Price-time fairness between orders acting on the same tick: earliest accepted first."""
    return order.accepted_ns, order.order_id


class _PriceIndex:
    """Orders keyed by one price; they act on a tick price at or beyond their key.

    `acts_at_or_above`: an order acts when its key >= the price (else when key <= price).
    `best` is the key that acts first, or an infinity that no price reaches.
    """

    def __init__(self, acts_at_or_above: bool) -> None:
        self._acts_at_or_above = acts_at_or_above
        self._levels: SortedDict = SortedDict()  # price -> {order_id: order}
        self.count = 0
        self.best = self._unreachable()

    def add(self, price: Decimal, order: WorkingOrder) -> None:
        self._levels.setdefault(price, {})[order.order_id] = order
        self.count += 1
        self._refresh_best()

    def discard(self, price: Decimal, order_id: str) -> None:
        level = self._levels[price]
        del level[order_id]
        if not level:
            del self._levels[price]
        self.count -= 1
        self._refresh_best()

    def acting_at(self, price: Decimal) -> Iterator[WorkingOrder]:
        if self._acts_at_or_above:
            keys = self._levels.irange(minimum=price)
        else:
            keys = self._levels.irange(maximum=price)
        for key in keys:
            yield from self._levels[key].values()

    def _unreachable(self) -> Decimal:
        return Decimal("-Infinity") if self._acts_at_or_above else Decimal("Infinity")

    def _refresh_best(self) -> None:
        if not self._levels:
            self.best = self._unreachable()
        else:
            self.best = self._levels.peekitem(-1 if self._acts_at_or_above else 0)[0]


class _SymbolBook:
    def __init__(self) -> None:
        self.orders: dict[str, WorkingOrder] = {}
        self.buy_limits = _PriceIndex(acts_at_or_above=True)
        self.sell_limits = _PriceIndex(acts_at_or_above=False)
        self.buy_stops = _PriceIndex(acts_at_or_above=False)
        self.sell_stops = _PriceIndex(acts_at_or_above=True)
        self.every_tick: dict[str, WorkingOrder] = {}
        self.expiries = SortedList()  # (expires_ns, order_id)
        self.next_expiry_ns = _NEVER_NS

    def add(self, order: WorkingOrder) -> None:
        self.orders[order.order_id] = order
        index, price = self._placement(order)
        if index is None or price is None:  # (None, None): every tick
            self.every_tick[order.order_id] = order
        else:
            index.add(price, order)
        if order.expires_ns is not None:
            self.expiries.add((order.expires_ns, order.order_id))
            self.next_expiry_ns = self.expiries[0][0]

    def remove(self, order_id: str) -> WorkingOrder:
        order = self.orders.pop(order_id)
        index, price = self._placement(order)
        if index is None or price is None:  # (None, None): every tick
            del self.every_tick[order_id]
        else:
            index.discard(price, order_id)
        if order.expires_ns is not None:
            self.expiries.remove((order.expires_ns, order_id))
            self.next_expiry_ns = self.expiries[0][0] if self.expiries else _NEVER_NS
        return order

    def may_act(self, tick: Tick) -> bool:
        """The cheap test every tick pays: could any order here act on it at all? (Whether
        the quote is usable and in hours is asked only when it could.)"""
        ask, bid = tick.ask, tick.bid
        return bool(
            tick.at_ns >= self.next_expiry_ns
            or self.every_tick
            or self.buy_limits.best >= ask
            or self.sell_limits.best <= bid
            or self.buy_stops.best <= ask
            or self.sell_stops.best >= bid
        )

    def expiring_by(self, at_ns: int) -> Iterator[WorkingOrder]:
        # (at_ns + 1,) sorts after every (at_ns, order_id) and before any later expiry.
        due = self.expiries.bisect_left((at_ns + 1,))
        for _, order_id in islice(self.expiries, due):
            yield self.orders[order_id]

    def candidates(self, tick: Tick, trading: bool) -> list[WorkingOrder]:
        found: dict[str, WorkingOrder] = {}
        for order in self.expiring_by(tick.at_ns):
            found[order.order_id] = order
        if trading:
            for order in self._trading_candidates(tick):
                found[order.order_id] = order
        return sorted(found.values(), key=_fairness)

    def _trading_candidates(self, tick: Tick) -> Iterator[WorkingOrder]:
        yield from self.every_tick.values()
        yield from self.buy_limits.acting_at(tick.ask)
        yield from self.sell_limits.acting_at(tick.bid)
        yield from self.buy_stops.acting_at(tick.ask)
        yield from self.sell_stops.acting_at(tick.bid)

    def _placement(self, order: WorkingOrder) -> tuple[_PriceIndex | None, Decimal | None]:
        """Where an order rests: a price index and its key, or (None, None) for every tick."""
        buy = order.side is Side.BUY
        kind = order.order_type
        if (
            order.time_in_force in _SEES_EVERY_TICK
            or kind is OrderType.MARKET
            or (kind is OrderType.STOP and order.triggered)
        ):
            return None, None
        if kind is OrderType.LIMIT or order.triggered:  # a triggered stop-limit works as a limit
            return (self.buy_limits if buy else self.sell_limits), required_price(
                order, "limit_price", order.limit_price
            )
        return (self.buy_stops if buy else self.sell_stops), required_price(order, "stop_price", order.stop_price)


class OrderBook:
    """The working orders of every symbol. Not thread-safe: one matcher loop owns it."""

    def __init__(self) -> None:
        self._books: dict[str, _SymbolBook] = {}
        self._symbol_of: dict[str, str] = {}
        # Exit groups (bracket, oco): the orders of each in the book, and the groups one of
        # whose orders had a fill decided (its siblings never fill after it).
        self._groups: dict[str, set[str]] = {}
        self._filled_groups: dict[str, None] = {}  # insertion-ordered: the oldest first

    def __len__(self) -> int:
        return len(self._symbol_of)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._symbol_of

    def get(self, order_id: str) -> WorkingOrder | None:
        symbol = self._symbol_of.get(order_id)
        return None if symbol is None else self._books[symbol].orders[order_id]

    def add(self, order: WorkingOrder) -> None:
        """Start working `order`. Adding the very same order again changes nothing (a
        redelivered event); a different order under a known id is refused: use replace."""
        known = self.get(order.order_id)
        if known == order or self.sibling_filled(order):
            return
        if known is not None:
            raise ValueError(f"{order.order_id} is already in the book as a different order; use replace")
        book = self._books.get(order.symbol)
        if book is None:
            book = self._books[order.symbol] = _SymbolBook()
        book.add(order)
        self._symbol_of[order.order_id] = order.symbol
        if order.exit_group:
            self._groups.setdefault(order.exit_group, set()).add(order.order_id)

    def sibling_filled(self, order: WorkingOrder) -> bool:
        """Whether an order of ``order``'s exit group had a fill decided: ``order`` is never
        added (nor decided) after that, whatever event arrives late."""
        return bool(order.exit_group) and order.exit_group in self._filled_groups

    def fill_decided(self, order: WorkingOrder) -> list[WorkingOrder]:
        """``order`` had a fill decided: the other exits of its group leave the book at once,
        on the tick that decided it (the orders service cancels them with the fill's
        record). Returns the orders removed."""
        if not order.exit_group:
            return []
        self._filled_groups[order.exit_group] = None
        if len(self._filled_groups) > FILLED_GROUPS_REMEMBERED:
            del self._filled_groups[next(iter(self._filled_groups))]
        siblings = self._groups.pop(order.exit_group, set()) - {order.order_id}
        return [removed for sibling in sorted(siblings) if (removed := self.remove(sibling)) is not None]

    def remove(self, order_id: str) -> WorkingOrder | None:
        """Stop working an order; the removed order, or None if it was not in the book."""
        symbol = self._symbol_of.pop(order_id, None)
        if symbol is None:
            return None
        book = self._books[symbol]
        order = book.remove(order_id)
        if not book.orders:
            del self._books[symbol]
        group = self._groups.get(order.exit_group) if order.exit_group else None
        if group is not None:
            group.discard(order_id)
            if not group:
                del self._groups[order.exit_group]
        return order

    def replace(self, order: WorkingOrder) -> bool:
        """Swap in a new version of a working order (new prices, qty, trigger state).
        False, adding nothing, when the order is no longer in the book."""
        if self.remove(order.order_id) is None:
            return False
        self.add(order)
        return True

    def mark_triggered(self, order_id: str) -> WorkingOrder | None:
        """Record that a stop was reached: it moves to the index it now works from."""
        order = self.get(order_id)
        if order is None or order.triggered:
            return order
        triggered = dataclasses.replace(order, triggered=True)
        self.replace(triggered)
        return triggered

    def orders_for(self, symbol: str) -> list[WorkingOrder]:
        book = self._books.get(symbol)
        return [] if book is None else sorted(book.orders.values(), key=_fairness)

    def symbols(self) -> list[str]:
        return sorted(self._books)

    def stats(self) -> BookStats:
        books = self._books.values()
        return BookStats(
            orders=len(self),
            symbols=len(self._books),
            buy_limits=sum(b.buy_limits.count for b in books),
            sell_limits=sum(b.sell_limits.count for b in books),
            buy_stops=sum(b.buy_stops.count for b in books),
            sell_stops=sum(b.sell_stops.count for b in books),
            every_tick=sum(len(b.every_tick) for b in books),
            expiring=sum(len(b.expiries) for b in books),
        )

    def candidates(self, tick: Tick) -> list[WorkingOrder]:
        """The orders that may act on `tick` in regular hours, earliest accepted first."""
        book = self._books.get(tick.symbol)
        return [] if book is None else book.candidates(tick, trading=is_usable(tick))

    def process(self, tick: Tick, session: MarketSession | None, max_quote_age_ns: int) -> list[Outcome]:
        """Decide every candidate on a streamed tick (evaluated at its own time) and apply
        the result: filled, canceled and expired orders leave, triggered ones move."""
        book = self._books.get(tick.symbol)
        if book is None or not book.may_act(tick):
            return []
        trading = is_usable(tick) and in_session(session, tick, tick.at_ns)
        outcomes = []
        for order in book.candidates(tick, trading):
            if order.order_id not in self:
                continue  # a sibling's fill on this tick took it out
            decision = decide(order, tick, session=session, evaluated_ns=tick.at_ns, max_quote_age_ns=max_quote_age_ns)
            if decision.action is not Action.WAIT:
                outcomes.append(Outcome(order, decision))
                self._apply(order, decision)
        return outcomes

    def expire_due(self, now_ns: int) -> list[Outcome]:
        """Expire every day order whose close is at or before `now_ns`, whether or not its
        symbol still quotes (the loop calls this as the clock passes a close)."""
        due = [
            order
            for book in self._books.values()
            if book.next_expiry_ns <= now_ns
            for order in book.expiring_by(now_ns)
        ]
        outcomes = [Outcome(order, expiry_decision(order, now_ns)) for order in sorted(due, key=_fairness)]
        for outcome in outcomes:
            self.remove(outcome.order.order_id)
        return outcomes

    def _apply(self, order: WorkingOrder, decision: Decision) -> None:
        if decision.action is Action.FILL:
            self.fill_decided(order)
        if decision.action in TERMINAL_ACTIONS:
            self.remove(order.order_id)
        elif decision.action is Action.TRIGGER:
            self.mark_triggered(order.order_id)
