"""The order book: where orders rest, which ones a tick reaches, and a model-based check
that process() decides exactly what decide() over every order would."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import services.matcher.book as book_module
from services.matcher.book import BookStats, OrderBook, Outcome
from services.matcher.domain import (
    TERMINAL_ACTIONS,
    Action,
    TimeInForce,
    decide,
    evaluated_ticks,
    expiry_decision,
)
from tests.support.matcher import (
    BUY,
    CLOSE_NS,
    LIMIT,
    MARKET,
    MAX_AGE_NS,
    MID_SESSION_NS,
    OPEN_NS,
    SECOND,
    SELL,
    SESSION,
    SHORT_SESSION,
    STOP,
    STOP_LIMIT,
    a_tick,
    an_order,
    run_live,
    seeded_day,
    session_for,
    ticks,
    working_orders,
)

QUOTE = a_tick("100.00", "100.10")


def _stats(**counts) -> BookStats:
    fields = {
        "orders": 1,
        "symbols": 1,
        "buy_limits": 0,
        "sell_limits": 0,
        "buy_stops": 0,
        "sell_stops": 0,
        "every_tick": 0,
        "expiring": 0,
    }
    return BookStats(**(fields | counts))


@pytest.mark.parametrize(
    "order, where",
    [
        (an_order(LIMIT, BUY, limit="99"), _stats(buy_limits=1)),
        (an_order(LIMIT, SELL, limit="101"), _stats(sell_limits=1)),
        (an_order(STOP, BUY, stop="101"), _stats(buy_stops=1)),
        (an_order(STOP, SELL, stop="99"), _stats(sell_stops=1)),
        (an_order(STOP_LIMIT, BUY, stop="101", limit="102"), _stats(buy_stops=1)),
        (an_order(STOP_LIMIT, SELL, stop="99", limit="98"), _stats(sell_stops=1)),
        (an_order(STOP_LIMIT, BUY, stop="101", limit="102", triggered=True), _stats(buy_limits=1)),
        (an_order(STOP_LIMIT, SELL, stop="99", limit="98", triggered=True), _stats(sell_limits=1)),
        (an_order(STOP, BUY, stop="101", triggered=True), _stats(every_tick=1)),
        (an_order(MARKET, SELL), _stats(every_tick=1)),
        (an_order(LIMIT, BUY, limit="99", tif=TimeInForce.IOC), _stats(every_tick=1)),
        (an_order(STOP, SELL, stop="99", tif=TimeInForce.FOK), _stats(every_tick=1)),
        (an_order(LIMIT, BUY, limit="99", tif=TimeInForce.DAY, expires_ns=CLOSE_NS), _stats(buy_limits=1, expiring=1)),
    ],
    ids=[
        "buy limit",
        "sell limit",
        "buy stop",
        "sell stop",
        "buy stop-limit",
        "sell stop-limit",
        "triggered buy stop-limit",
        "triggered sell stop-limit",
        "triggered stop",
        "market",
        "ioc",
        "fok",
        "day",
    ],
)
def test_each_order_rests_where_its_trigger_price_is_indexed(order, where):
    book = OrderBook()
    book.add(order)
    assert book.stats() == where


def _book(*orders) -> OrderBook:
    book = OrderBook()
    for order in orders:
        book.add(order)
    return book


def test_a_tick_reaches_only_the_orders_its_prices_cross_earliest_accepted_first():
    reached = [
        an_order(LIMIT, BUY, limit="100.10", order_id="ord_b", accepted_ns=OPEN_NS + 2),
        an_order(LIMIT, SELL, limit="100.00", order_id="ord_a", accepted_ns=OPEN_NS + 2),
        an_order(STOP, BUY, stop="100.10", order_id="ord_c", accepted_ns=OPEN_NS + 1),
        an_order(STOP_LIMIT, SELL, stop="100.00", limit="99", order_id="ord_d", accepted_ns=OPEN_NS + 3),
        an_order(MARKET, BUY, order_id="ord_e", accepted_ns=OPEN_NS),
    ]
    beyond = [
        an_order(LIMIT, BUY, limit="100.09", order_id="ord_f"),
        an_order(LIMIT, SELL, limit="100.01", order_id="ord_g"),
        an_order(STOP, BUY, stop="100.11", order_id="ord_h"),
        an_order(STOP_LIMIT, SELL, stop="99.99", limit="99", order_id="ord_i"),
    ]
    book = _book(*beyond, *reached)
    assert [o.order_id for o in book.candidates(QUOTE)] == ["ord_e", "ord_c", "ord_a", "ord_b", "ord_d"]
    assert book.candidates(a_tick("100.00", "100.10", symbol="ABC")) == []


@pytest.mark.parametrize(
    "order, rule",
    [
        (an_order(LIMIT, BUY, limit="100.10"), "limit_buy_at_ask"),
        (an_order(LIMIT, SELL, limit="100.00"), "limit_sell_at_bid"),
        (an_order(STOP, BUY, stop="100.10"), "stop_buy_triggered_market_at_ask"),
        (an_order(STOP, SELL, stop="100.00"), "stop_sell_triggered_market_at_bid"),
        (an_order(STOP_LIMIT, BUY, stop="100.10", limit="100.10", triggered=True), "stop_limit_buy_at_ask"),
        (an_order(STOP_LIMIT, SELL, stop="100.00", limit="100.00"), "stop_limit_sell_triggered_limit_at_bid"),
        (an_order(LIMIT, BUY, limit="100.50", tif=TimeInForce.DAY, expires_ns=QUOTE.at_ns), "day_order_expired"),
    ],
    ids=[
        "buy limit",
        "sell limit",
        "buy stop",
        "sell stop",
        "triggered buy stop-limit",
        "sell stop-limit",
        "day order",
    ],
)
def test_an_order_alone_acts_on_a_tick_exactly_at_its_price(order, rule):
    """Each index's cheap test must let through a tick at exactly the order's price or time."""
    outcomes = _book(order).process(QUOTE, SESSION, MAX_AGE_NS)
    assert [(o.order, o.decision.rule) for o in outcomes] == [(order, rule)]


def test_an_unusable_tick_reaches_only_expiring_orders():
    expiring = an_order(LIMIT, BUY, limit="100.50", tif=TimeInForce.DAY, expires_ns=MID_SESSION_NS, order_id="ord_day")
    book = _book(expiring, an_order(MARKET, BUY, order_id="ord_market"))
    assert book.candidates(a_tick("100.10", "100.00")) == [expiring]


def test_process_asks_decide_only_about_the_orders_a_tick_reaches(monkeypatch):
    asked = []
    monkeypatch.setattr(
        book_module, "decide", lambda order, *a, **k: asked.append(order.order_id) or decide(order, *a, **k)
    )
    far = [
        an_order(LIMIT, side, limit=price, order_id=f"ord_far_{side.value}_{n:04d}")
        for n in range(500)
        for side, price in ((BUY, "90.00"), (SELL, "110.00"))
    ]
    book = _book(*far, an_order(LIMIT, BUY, limit="100.20", order_id="ord_near"))
    assert (
        book.process(a_tick("100.00", "100.15", at_ns=MID_SESSION_NS), SESSION, MAX_AGE_NS)[0].order.order_id
        == "ord_near"
    )
    assert book.process(a_tick("100.00", "100.15", at_ns=MID_SESSION_NS + 1), SESSION, MAX_AGE_NS) == []
    assert asked == ["ord_near"]
    assert len(book) == 1000


def test_a_triggered_stop_limit_moves_to_the_limit_index_and_fills_later_at_its_limit():
    order = an_order(STOP_LIMIT, BUY, stop="100.05", limit="100.08")
    book = _book(order)
    triggered = book.process(a_tick("100.00", "100.10", at_ns=MID_SESSION_NS), SESSION, MAX_AGE_NS)
    assert [(o.decision.action, o.decision.rule) for o in triggered] == [(Action.TRIGGER, "stop_limit_buy_triggered")]
    assert book.get(order.order_id) == dataclasses.replace(order, triggered=True)
    assert book.stats() == _stats(buy_limits=1)
    # The ask falls below the stop: an untriggered order would not act, a triggered one fills.
    filled = book.process(a_tick("99.98", "100.02", at_ns=MID_SESSION_NS + SECOND), SESSION, MAX_AGE_NS)
    assert [(o.decision.rule, o.decision.price) for o in filled] == [
        ("stop_limit_buy_at_ask", a_tick("0", "100.02").ask)
    ]
    assert len(book) == 0 and book.symbols() == []


def test_a_stop_triggered_beyond_its_collar_then_sees_every_tick():
    book = _book(an_order(STOP, SELL, stop="100.05", collar="99.99"))
    book.process(a_tick("99.98", "100.00", at_ns=MID_SESSION_NS), SESSION, MAX_AGE_NS)
    assert book.stats() == _stats(every_tick=1)
    filled = book.process(a_tick("100.20", "100.30", at_ns=MID_SESSION_NS + 1), SESSION, MAX_AGE_NS)
    assert [o.decision.rule for o in filled] == ["stop_sell_at_bid"]


def test_day_orders_expire_on_a_late_tick_or_when_the_clock_passes_their_close():
    day_aaa = an_order(LIMIT, BUY, limit="90", tif=TimeInForce.DAY, expires_ns=CLOSE_NS, order_id="ord_1", symbol="AAA")
    day_bbb = an_order(LIMIT, BUY, limit="90", tif=TimeInForce.DAY, expires_ns=CLOSE_NS, order_id="ord_2", symbol="BBB")
    later = an_order(
        LIMIT,
        BUY,
        limit="90",
        tif=TimeInForce.DAY,
        expires_ns=CLOSE_NS + 86_400 * SECOND,
        order_id="ord_3",
        symbol="BBB",
    )
    book = _book(day_aaa, day_bbb, later)
    after_close = a_tick("100.10", "100.00", at_ns=CLOSE_NS + 5, symbol="AAA")  # crossed, and no session
    assert book.process(after_close, None, MAX_AGE_NS) == [
        Outcome(day_aaa, expiry_decision(day_aaa, CLOSE_NS + 5, after_close))
    ]
    assert book.expire_due(CLOSE_NS + 10) == [Outcome(day_bbb, expiry_decision(day_bbb, CLOSE_NS + 10))]
    assert book.expire_due(CLOSE_NS + 10) == []
    assert [o.order_id for o in book.orders_for("BBB")] == ["ord_3"]


def test_adding_is_idempotent_for_the_same_order_and_refused_for_a_different_one():
    order = an_order(LIMIT, BUY, limit="99")
    book = _book(order)
    book.add(order)
    assert len(book) == 1 and book.stats() == _stats(buy_limits=1)
    with pytest.raises(ValueError):
        book.add(dataclasses.replace(order, limit_price=order.limit_price + 1))


def test_remove_replace_and_mark_triggered_on_known_and_unknown_orders():
    order = an_order(STOP, BUY, stop="101")
    book = _book(order)
    assert book.mark_triggered("ord_unknown") is None
    assert book.replace(an_order(LIMIT, BUY, limit="99", order_id="ord_unknown")) is False
    assert "ord_unknown" not in book
    moved = dataclasses.replace(order, stop_price=order.stop_price + 1)
    assert book.replace(moved) is True
    assert book.get(order.order_id) == moved
    assert book.mark_triggered(order.order_id) == dataclasses.replace(moved, triggered=True)
    assert book.stats() == _stats(every_tick=1)
    assert book.remove(order.order_id) == dataclasses.replace(moved, triggered=True)
    assert book.remove(order.order_id) is None
    assert (len(book), book.symbols(), book.orders_for("XYZ")) == (0, [], [])


SYMBOLS = ("AAA", "BBB")
ANY_ORDER = working_orders(symbols=st.sampled_from(SYMBOLS))
STEPS = st.sampled_from([SECOND // 2, SECOND, 0, 2 * SECOND])


class BookAgainstBruteForce(RuleBasedStateMachine):
    """The book and a plain dict of orders see the same operations; on every tick the book's
    outcomes must equal decide() run over every order of the symbol, in price-time order."""

    def __init__(self) -> None:
        super().__init__()
        self.book = OrderBook()
        self.model: dict[str, object] = {}
        self.now_ns = OPEN_NS - 2 * SECOND
        self.sequence = 0
        self.issued = 0

    def _new_id(self) -> str:
        self.issued += 1
        return f"ord_{self.issued:04d}"

    def _pick(self, data) -> str:
        return data.draw(st.sampled_from([*sorted(self.model), "ord_unknown"]))

    @rule(data=st.data())
    def add(self, data):
        order = dataclasses.replace(data.draw(ANY_ORDER), order_id=self._new_id())
        self.book.add(order)
        self.model[order.order_id] = order

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove(self, data):
        order_id = self._pick(data)
        assert self.book.remove(order_id) == self.model.pop(order_id, None)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def replace(self, data):
        order_id = self._pick(data)
        order = dataclasses.replace(data.draw(ANY_ORDER), order_id=order_id)
        assert self.book.replace(order) is (order_id in self.model)
        if order_id in self.model:
            self.model[order_id] = order

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def mark_triggered(self, data):
        order_id = data.draw(st.sampled_from(sorted(self.model)))
        if self.model[order_id].order_type in (STOP, STOP_LIMIT):
            self.model[order_id] = dataclasses.replace(self.model[order_id], triggered=True)
            assert self.book.mark_triggered(order_id) == self.model[order_id]

    @rule(data=st.data(), step=STEPS, session=st.sampled_from([SHORT_SESSION, SHORT_SESSION, None]))
    def tick(self, data, step, session):
        self.now_ns += step
        tick = data.draw(ticks(self.now_ns, st.sampled_from(SYMBOLS), self._next_sequence()))
        expected = []
        for order in sorted(self.model.values(), key=lambda o: (o.accepted_ns, o.order_id)):
            if order.symbol == tick.symbol:
                decision = decide(order, tick, session=session, evaluated_ns=tick.at_ns, max_quote_age_ns=MAX_AGE_NS)
                if decision.action is not Action.WAIT:
                    expected.append(Outcome(order, decision))
        assert self.book.process(tick, session, MAX_AGE_NS) == expected
        self._apply(expected)

    @rule(step=STEPS)
    def clock_passes(self, step):
        self.now_ns += step
        due = sorted(
            (o for o in self.model.values() if o.expires_ns is not None and o.expires_ns <= self.now_ns),
            key=lambda o: (o.accepted_ns, o.order_id),
        )
        expected = [Outcome(order, expiry_decision(order, self.now_ns)) for order in due]
        assert self.book.expire_due(self.now_ns) == expected
        self._apply(expected)

    @invariant()
    def holds_the_same_orders(self):
        for symbol in SYMBOLS:
            assert self.book.orders_for(symbol) == sorted(
                (o for o in self.model.values() if o.symbol == symbol), key=lambda o: (o.accepted_ns, o.order_id)
            )
        stats = self.book.stats()
        assert len(self.book) == stats.orders == len(self.model)
        assert stats.orders == (
            stats.buy_limits + stats.sell_limits + stats.buy_stops + stats.sell_stops + stats.every_tick
        )

    def _next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def _apply(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.decision.action in TERMINAL_ACTIONS:
                del self.model[outcome.order.order_id]
            elif outcome.decision.action is Action.TRIGGER:
                self.model[outcome.order.order_id] = dataclasses.replace(outcome.order, triggered=True)


BookAgainstBruteForce.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_the_book_decides_what_brute_force_over_every_order_decides = BookAgainstBruteForce.TestCase


def _brute_force_live(orders, feed) -> list[Outcome]:
    """run_live without the book: every working order of the symbol is decided on every tick."""
    working: dict[str, object] = {}
    outcomes = []
    standing = {}
    arrivals = sorted(orders, key=lambda o: (o.accepted_ns, o.order_id))
    for tick in feed:
        decided = []
        while arrivals and arrivals[0].accepted_ns <= tick.at_ns:
            order = arrivals.pop(0)
            working[order.order_id] = order
            quotes = [standing[order.symbol]] if order.symbol in standing else []
            decided += [
                (order, quote, evaluated_ns, session_for(evaluated_ns))
                for quote, evaluated_ns in evaluated_ticks(order, quotes)
            ]
        decided += [
            (order, tick, tick.at_ns, session_for(tick.at_ns))
            for order in sorted(working.values(), key=lambda o: (o.accepted_ns, o.order_id))
            if order.symbol == tick.symbol and order.accepted_ns <= tick.at_ns
        ]
        for order, quote, evaluated_ns, session in decided:
            order = working.get(order.order_id)
            if order is None:
                continue
            decision = decide(order, quote, session=session, evaluated_ns=evaluated_ns, max_quote_age_ns=MAX_AGE_NS)
            if decision.action is Action.WAIT:
                continue
            outcomes.append(Outcome(order, decision))
            if decision.action in TERMINAL_ACTIONS:
                del working[order.order_id]
            else:
                working[order.order_id] = dataclasses.replace(order, triggered=True)
        standing[tick.symbol] = tick
    return outcomes


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_whole_session_through_the_book_equals_brute_force(seed):
    orders, feed = seeded_day(seed)
    outcomes = run_live(orders, feed)
    assert outcomes == _brute_force_live(orders, feed)
    assert {o.decision.action for o in outcomes} == {Action.FILL, Action.TRIGGER, Action.CANCEL, Action.EXPIRE}


def test_a_fill_decided_for_one_exit_takes_its_siblings_out_of_the_book_for_good():
    """Bracket and oco exits share an exit group: the tick that fills one removes the other
    at once, so no later tick fills it before the orders service's cancel arrives, and a
    late or redelivered admission of it is ignored (README "Order classes")."""
    book = OrderBook()
    take = dataclasses.replace(an_order(LIMIT, SELL, limit="101.00", order_id="ord_tp"), exit_group="grp")
    stop = dataclasses.replace(an_order(STOP, SELL, stop="99.00", order_id="ord_sl"), exit_group="grp")
    other = an_order(STOP, SELL, stop="99.00", order_id="ord_other")
    for order in (take, stop, other):
        book.add(order)
    [outcome] = book.process(a_tick("101.00", "101.10"), SESSION, MAX_AGE_NS)
    assert (outcome.order.order_id, outcome.decision.action) == ("ord_tp", Action.FILL)
    assert "ord_sl" not in book and "ord_other" in book
    # The price collapses: the stop that was the take-profit's sibling never acts.
    later = book.process(a_tick("90.00", "90.10", sequence=2), SESSION, MAX_AGE_NS)
    assert [o.order.order_id for o in later] == ["ord_other"]
    book.add(stop)
    assert "ord_sl" not in book and book.sibling_filled(stop)


def test_exits_of_one_group_on_the_same_tick_never_both_act():
    book = OrderBook()
    first = dataclasses.replace(
        an_order(MARKET, SELL, collar="90", order_id="ord_a", accepted_ns=OPEN_NS), exit_group="g"
    )
    second = dataclasses.replace(
        an_order(MARKET, SELL, collar="90", order_id="ord_b", accepted_ns=OPEN_NS + 1), exit_group="g"
    )
    book.add(first)
    book.add(second)
    outcomes = book.process(a_tick("100.00", "100.10"), SESSION, MAX_AGE_NS)
    assert [(o.order.order_id, o.decision.action) for o in outcomes] == [("ord_a", Action.FILL)]
    assert len(book) == 0


def test_the_book_remembers_the_latest_filled_exit_groups_and_forgets_the_oldest(monkeypatch):
    """Memory stays bounded in a long-running matcher: past FILLED_GROUPS_REMEMBERED groups,
    the oldest is forgotten (the orders service refuses a fill of a canceled sibling anyway)."""
    monkeypatch.setattr(book_module, "FILLED_GROUPS_REMEMBERED", 3)
    book = OrderBook()
    exits = [
        dataclasses.replace(an_order(LIMIT, SELL, limit="101.00", order_id=f"ord_tp{n}"), exit_group=f"grp{n}")
        for n in range(4)
    ]
    for exit_order in exits:
        book.fill_decided(exit_order)
    assert [book.sibling_filled(exit_order) for exit_order in exits] == [False, True, True, True]
