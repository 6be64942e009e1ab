"""The fill function (DESIGN §6): what one working order does on one NBBO quote.

Pure: no I/O, no clock, no randomness. Everything a decision depends on is an argument,
so the same inputs give the same Decision byte for byte and a fill can be replayed and
explained later. v1 fills the whole quantity of a single-instrument order at the touch.
Multi-leg options orders are a later addition: their own order type carrying legs,
priced from one quote per leg, with per-leg prices on the decision; nothing below assumes
more than that a single-instrument order has one symbol and one tick.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum

from services.common.ids import derived_id
from services.common.trading import OrderType, Side, TimeInForce


class Action(Enum):
    FILL = "fill"  # the whole quantity fills at `price`
    TRIGGER = "trigger"  # the stop was reached without a fill: persist `triggered`, keep working
    CANCEL = "cancel"  # an ioc/fok order that could not fill on its deciding tick
    EXPIRE = "expire"  # a day order at its session close
    WAIT = "wait"  # nothing happens; the order keeps working as it is


TERMINAL_ACTIONS = frozenset({Action.FILL, Action.CANCEL, Action.EXPIRE})

# Every rule id decide() and replay() can return. Stable: fills store them. A fill rule reads
# <order type>_<side>_at_<touch>, with "triggered_market"/"triggered_limit" after the side
# when the same tick reached the stop.
RULES = frozenset(
    {
        "day_order_expired",
        "before_acceptance",
        "market_closed",
        "unusable_quote",
        "stale_quote",
        "collar_breached",
        "no_quote",
        "ioc_not_marketable",
        "fok_not_marketable",
        "fok_size_not_displayed",
        "market_buy_at_ask",
        "market_sell_at_bid",
        "limit_buy_at_ask",
        "limit_sell_at_bid",
        "limit_buy_not_marketable",
        "limit_sell_not_marketable",
        "stop_buy_not_reached",
        "stop_sell_not_reached",
        "stop_buy_triggered_market_at_ask",
        "stop_sell_triggered_market_at_bid",
        "stop_buy_triggered",
        "stop_sell_triggered",
        "stop_buy_at_ask",
        "stop_sell_at_bid",
        "stop_limit_buy_not_reached",
        "stop_limit_sell_not_reached",
        "stop_limit_buy_triggered_limit_at_ask",
        "stop_limit_sell_triggered_limit_at_bid",
        "stop_limit_buy_triggered",
        "stop_limit_sell_triggered",
        "stop_limit_buy_at_ask",
        "stop_limit_sell_at_bid",
        "stop_limit_buy_not_marketable",
        "stop_limit_sell_not_marketable",
    }
)

_NEEDS_LIMIT = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})
_NEEDS_STOP = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})
_DECIDED_ON_FIRST_TICK = frozenset({TimeInForce.IOC, TimeInForce.FOK})


@dataclass(frozen=True)
class Tick:
    """One NBBO quote; (symbol, at_ns, sequence) names it."""

    symbol: str
    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal
    at_ns: int  # quote time, UTC epoch nanoseconds
    sequence: int  # market-data feed sequence

    def __post_init__(self) -> None:
        # Zero, negative, locked or crossed quotes are data (unusable ticks); a float,
        # NaN or infinity is a bug upstream that would otherwise compare silently.
        for name in ("bid", "bid_size", "ask", "ask_size"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise ValueError(f"tick {name} must be a finite Decimal, got {value!r}")


@dataclass(frozen=True)
class MarketSession:
    """A regular session [open_ns, close_ns), early closes included."""

    open_ns: int
    close_ns: int

    def __post_init__(self) -> None:
        if self.close_ns <= self.open_ns:
            raise ValueError(f"session closes ({self.close_ns}) before it opens ({self.open_ns})")


@dataclass(frozen=True)
class WorkingOrder:
    """An accepted single-instrument order as the matcher works it (v1: full fills only)."""

    order_id: str
    symbol: str
    side: Side
    qty: Decimal
    order_type: OrderType
    time_in_force: TimeInForce
    limit_price: Decimal | None
    stop_price: Decimal | None
    # A buy never fills above it, a sell never below; None = no bound.
    collar_price: Decimal | None
    accepted_ns: int
    # The stop was reached (persisted by the orders service): a stop now works as a
    # market order, a stop-limit as a limit order.
    triggered: bool
    # Day orders: the session close they expire at.
    expires_ns: int | None
    # The exits of one bracket or oco order share it: once one fills, the others leave the
    # book (the orders service cancels them in the transaction that records the fill).
    exit_group: str = ""

    def __post_init__(self) -> None:
        if not _is_positive(self.qty):
            raise ValueError(f"{self.order_id}: qty must be a positive Decimal, got {self.qty!r}")
        for name, needed in (
            ("limit_price", self.order_type in _NEEDS_LIMIT),
            ("stop_price", self.order_type in _NEEDS_STOP),
        ):
            value = getattr(self, name)
            if needed and not _is_positive(value):
                raise ValueError(f"{self.order_id}: a {self.order_type.value} order needs a positive {name}")
            if not needed and value is not None:
                raise ValueError(f"{self.order_id}: a {self.order_type.value} order takes no {name}")
        if self.collar_price is not None and not _is_positive(self.collar_price):
            raise ValueError(f"{self.order_id}: collar_price must be a positive Decimal")
        if self.triggered and self.order_type not in _NEEDS_STOP:
            raise ValueError(f"{self.order_id}: only stop orders can be triggered")


@dataclass(frozen=True)
class Decision:
    action: Action
    rule: str  # one of RULES
    price: Decimal | None  # FILL only: the tick's bid or ask
    tick: Tick | None  # the quote decided on (None only when no quote was involved)
    explanation: str  # one sentence with the numbers compared


def _is_positive(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_finite() and value > 0


# --- predicates: each one comparison, named for what it means ---------------------------


def is_usable(tick: Tick) -> bool:
    """bid > 0 and ask > bid. Locked quotes (ask == bid) are skipped like crossed ones,
    stricter than DESIGN's ask >= bid, because market data flags them unusable too."""
    return tick.bid > 0 and tick.ask > tick.bid


def in_session(session: MarketSession | None, tick: Tick, evaluated_ns: int) -> bool:
    """The quote is from the regular session and the evaluation happens before its close."""
    return session is not None and session.open_ns <= tick.at_ns and evaluated_ns < session.close_ns


def is_stale(tick: Tick, evaluated_ns: int, max_quote_age_ns: int) -> bool:
    return evaluated_ns - tick.at_ns > max_quote_age_ns


def is_expired(order: WorkingOrder, evaluated_ns: int) -> bool:
    return order.expires_ns is not None and order.expires_ns <= evaluated_ns


def required_price(order: WorkingOrder, name: str, value: Decimal | None) -> Decimal:
    """A price the order's type guarantees (``WorkingOrder`` checks it when made)."""
    if value is None:
        raise ValueError(f"{order.order_id}: a {order.order_type.value} order without its {name}")
    return value


def touch(side: Side, tick: Tick) -> Decimal:
    """The price a marketable order of this side trades at: buys take the ask, sells hit the bid."""
    return tick.ask if side is Side.BUY else tick.bid


def within_bound(side: Side, price: Decimal, bound: Decimal) -> bool:
    """A limit or collar: a buy pays at most the bound, a sell receives at least it."""
    return price <= bound if side is Side.BUY else price >= bound


def stop_reached(side: Side, stop: Decimal, tick: Tick) -> bool:
    """A buy stop triggers when the ask rises to it, a sell stop when the bid falls to it."""
    return tick.ask >= stop if side is Side.BUY else tick.bid <= stop


def size_displayed(side: Side, qty: Decimal, tick: Tick) -> bool:
    return (tick.ask_size if side is Side.BUY else tick.bid_size) >= qty


# --- the fill function -----------------------------------------------------------------


def decide(
    order: WorkingOrder, tick: Tick, *, session: MarketSession | None, evaluated_ns: int, max_quote_age_ns: int
) -> Decision:
    """What `order` does on `tick`, evaluated at `evaluated_ns`: the tick's own time, or the
    acceptance time for the quote standing at acceptance (see evaluated_ticks).

    `session` is the regular session in force at `evaluated_ns`, None when the market is
    closed. The checks run in a fixed order, so the rule returned is the first that applies.
    """
    if tick.symbol != order.symbol:
        raise ValueError(f"tick for {tick.symbol} evaluated for a {order.symbol} order")
    if evaluated_ns < tick.at_ns:
        raise ValueError("a quote cannot be evaluated before its own time")
    if is_expired(order, evaluated_ns):
        return expiry_decision(order, evaluated_ns, tick)
    if evaluated_ns < order.accepted_ns:
        return _wait(
            "before_acceptance",
            tick,
            f"quote evaluated at {_utc(evaluated_ns)}, before the order was accepted at {_utc(order.accepted_ns)}",
        )
    if not in_session(session, tick, evaluated_ns):
        return _wait("market_closed", tick, _closed_words(session, tick, evaluated_ns))
    if not is_usable(tick):
        return _wait(
            "unusable_quote", tick, f"quote bid {tick.bid} ask {tick.ask} is unusable (needs bid > 0 and ask > bid)"
        )
    # Stricter than "market orders never fill on a stale quote": an old quote decides
    # nothing, so limits, stop triggers and ioc/fok also wait for a fresh one.
    if is_stale(tick, evaluated_ns, max_quote_age_ns):
        return _wait(
            "stale_quote",
            tick,
            f"quote from {_utc(tick.at_ns)} is {_seconds(evaluated_ns - tick.at_ns)} s old "
            f"at evaluation, older than the {_seconds(max_quote_age_ns)} s maximum",
        )
    return _apply_time_in_force(order, tick, _assess(order, tick))


def expiry_decision(order: WorkingOrder, evaluated_ns: int, tick: Tick | None = None) -> Decision:
    """EXPIRE for a day order whose close has come (the book uses it without a tick too)."""
    if order.expires_ns is None or not is_expired(order, evaluated_ns):
        raise ValueError(f"{order.order_id} has not expired at {evaluated_ns}")
    return Decision(
        Action.EXPIRE,
        "day_order_expired",
        None,
        tick,
        f"day order expired at its session close {_utc(order.expires_ns)}, evaluated at {_utc(evaluated_ns)}",
    )


def replay(
    order: WorkingOrder,
    ticks: Iterable[Tick],
    *,
    session_for: Callable[[int], MarketSession | None],
    max_quote_age_ns: int,
) -> tuple[Decision, int]:
    """Run decide over evaluated_ticks(order, ticks) as the live matcher would, tracking
    the trigger. Returns the first terminal decision, or else the last one, and how many
    ticks were evaluated including the deciding one."""
    working = order
    decision: Decision | None = None
    considered = 0
    for tick, evaluated_ns in evaluated_ticks(order, ticks):
        considered += 1
        decision = decide(
            working,
            tick,
            session=session_for(evaluated_ns),
            evaluated_ns=evaluated_ns,
            max_quote_age_ns=max_quote_age_ns,
        )
        if decision.action in TERMINAL_ACTIONS:
            break
        if decision.action is Action.TRIGGER:
            working = dataclasses.replace(working, triggered=True)
    if decision is None:
        return _wait("no_quote", None, f"no quote for {order.symbol} to evaluate"), 0
    return decision, considered


def evaluated_ticks(order: WorkingOrder, ticks: Iterable[Tick]) -> Iterator[tuple[Tick, int]]:
    """The ticks the matcher evaluates for `order`, in feed order, each with its evaluation
    time: of the ticks before acceptance only the last (the quote standing at acceptance,
    evaluated at the acceptance time), then every later tick at its own time. Ticks of
    other symbols are skipped; ticks going back in time are refused."""
    standing: Tick | None = None
    previous_ns: int | None = None
    for tick in ticks:
        if tick.symbol != order.symbol:
            continue
        if previous_ns is not None and tick.at_ns < previous_ns:
            raise ValueError(f"{tick.symbol} ticks out of feed order at sequence {tick.sequence}")
        previous_ns = tick.at_ns
        if tick.at_ns < order.accepted_ns:
            standing = tick
            continue
        if standing is not None:
            yield standing, order.accepted_ns
            standing = None
        yield tick, tick.at_ns
    if standing is not None:
        yield standing, order.accepted_ns


def fill_id(order_id: str, tick: Tick) -> str:
    """Deterministic: the same order filled by the same tick always gets the same id."""
    return derived_id("fill", order_id, tick.symbol, tick.at_ns, tick.sequence)


# --- how each order type reads a usable, fresh, in-session quote ----------------------


@dataclass(frozen=True)
class _Assessment:
    """The order type's verdict before its time in force applies."""

    action: Action  # FILL, TRIGGER or WAIT
    rule: str
    described: str  # the order, e.g. "buy limit 220.50"
    facts: tuple[str, ...]  # the comparisons, e.g. ("ask 220.31 <= limit",)
    outcome: str  # what follows for a day/gtc order, e.g. "filled at the ask"
    price: Decimal | None = None

    def words(self, outcome: str) -> str:
        return f"{self.described}: {', '.join(self.facts)}, {outcome}"


def _assess(order: WorkingOrder, tick: Tick) -> _Assessment:
    side, name = order.side.value, _touch_name(order.side)
    if order.order_type is OrderType.MARKET:
        return _at_market(
            order, tick, f"{side} market", (), f"market_{side}_at_{name}", blocked=(Action.WAIT, "collar_breached")
        )
    if order.order_type is OrderType.LIMIT:
        return _at_limit(order, tick, f"{side} limit {order.limit_price}", (), "limit")
    if order.order_type is OrderType.STOP:
        return _stop(order, tick)
    return _stop_limit(order, tick)


def _stop(order: WorkingOrder, tick: Tick) -> _Assessment:
    side, name = order.side.value, _touch_name(order.side)
    described = f"{side} stop {order.stop_price}"
    if order.triggered:
        return _at_market(
            order,
            tick,
            f"{described} (triggered earlier)",
            (),
            f"stop_{side}_at_{name}",
            blocked=(Action.WAIT, "collar_breached"),
        )
    reached = (_stop_fact(order, tick),)
    if not stop_reached(order.side, required_price(order, "stop_price", order.stop_price), tick):
        return _Assessment(Action.WAIT, f"stop_{side}_not_reached", described, reached, "not triggered")
    verdict = _at_market(
        order,
        tick,
        described,
        reached,
        f"stop_{side}_triggered_market_at_{name}",
        blocked=(Action.TRIGGER, f"stop_{side}_triggered"),
    )
    return dataclasses.replace(verdict, outcome=f"triggered, {verdict.outcome}")


def _stop_limit(order: WorkingOrder, tick: Tick) -> _Assessment:
    side, name = order.side.value, _touch_name(order.side)
    described = f"{side} stop-limit stop {order.stop_price} limit {order.limit_price}"
    if order.triggered:
        return _at_limit(order, tick, f"{described} (triggered earlier)", (), "stop_limit")
    reached = (_stop_fact(order, tick),)
    if not stop_reached(order.side, required_price(order, "stop_price", order.stop_price), tick):
        return _Assessment(Action.WAIT, f"stop_limit_{side}_not_reached", described, reached, "not triggered")
    verdict = _at_limit(order, tick, described, reached, "stop_limit")
    if verdict.action is Action.FILL:
        return dataclasses.replace(
            verdict, rule=f"stop_limit_{side}_triggered_limit_at_{name}", outcome=f"triggered, {verdict.outcome}"
        )
    return dataclasses.replace(
        verdict,
        action=Action.TRIGGER,
        rule=f"stop_limit_{side}_triggered",
        outcome="triggered, now working as a limit order",
    )


def _at_market(
    order: WorkingOrder,
    tick: Tick,
    described: str,
    facts: tuple[str, ...],
    fill_rule: str,
    *,
    blocked: tuple[Action, str],
) -> _Assessment:
    name, price = _touch_name(order.side), touch(order.side, tick)
    filled = f"filled at the {name}"
    if order.collar_price is None:
        return _Assessment(Action.FILL, fill_rule, described, facts or (f"{name} {price}",), filled, price)
    facts = (*facts, _collar_fact(order, tick))
    if within_bound(order.side, price, order.collar_price):
        return _Assessment(Action.FILL, fill_rule, described, facts, filled, price)
    action, rule = blocked
    outcome = "waiting for the price to come back within the collar"
    if action is Action.TRIGGER:
        outcome = f"working as a market order, {outcome}"
    return _Assessment(action, rule, described, facts, outcome)


def _at_limit(order: WorkingOrder, tick: Tick, described: str, facts: tuple[str, ...], kind: str) -> _Assessment:
    side, name, price = order.side.value, _touch_name(order.side), touch(order.side, tick)
    marketable = within_bound(order.side, price, required_price(order, "limit_price", order.limit_price))
    facts = (*facts, f"{name} {price} {_bound_op(order.side, marketable)} limit")
    if not marketable:
        return _Assessment(Action.WAIT, f"{kind}_{side}_not_marketable", described, facts, "waiting")
    if order.collar_price is not None and not within_bound(order.side, price, order.collar_price):
        return _Assessment(
            Action.WAIT,
            "collar_breached",
            described,
            (*facts, _collar_fact(order, tick)),
            "waiting for the price to come back within the collar",
        )
    return _Assessment(Action.FILL, f"{kind}_{side}_at_{name}", described, facts, f"filled at the {name}", price)


def _apply_time_in_force(order: WorkingOrder, tick: Tick, verdict: _Assessment) -> Decision:
    tif = order.time_in_force
    if verdict.action is Action.FILL:
        if tif is TimeInForce.FOK and not size_displayed(order.side, order.qty, tick):
            size = tick.ask_size if order.side is Side.BUY else tick.bid_size
            short = dataclasses.replace(
                verdict, facts=(*verdict.facts, f"{_touch_name(order.side)} size {size} < qty {order.qty}")
            )
            return Decision(
                Action.CANCEL,
                "fok_size_not_displayed",
                None,
                tick,
                f"fok {short.words('not filled on its deciding tick, canceled')}",
            )
        return Decision(Action.FILL, verdict.rule, verdict.price, tick, verdict.words(verdict.outcome))
    if tif in _DECIDED_ON_FIRST_TICK:
        return Decision(
            Action.CANCEL,
            f"{tif.value}_not_marketable",
            None,
            tick,
            f"{tif.value} {verdict.words('not filled on its deciding tick, canceled')}",
        )
    return Decision(verdict.action, verdict.rule, None, tick, verdict.words(verdict.outcome))


# --- words ------------------------------------------------------------------------------


def _wait(rule: str, tick: Tick | None, explanation: str) -> Decision:
    return Decision(Action.WAIT, rule, None, tick, explanation)


def _touch_name(side: Side) -> str:
    return "ask" if side is Side.BUY else "bid"


def _bound_op(side: Side, within: bool) -> str:
    if side is Side.BUY:
        return "<=" if within else ">"
    return ">=" if within else "<"


def _stop_fact(order: WorkingOrder, tick: Tick) -> str:
    reached = stop_reached(order.side, required_price(order, "stop_price", order.stop_price), tick)
    if order.side is Side.BUY:
        return f"ask {tick.ask} {'>=' if reached else '<'} stop"
    return f"bid {tick.bid} {'<=' if reached else '>'} stop"


def _collar_fact(order: WorkingOrder, tick: Tick) -> str:
    price = touch(order.side, tick)
    within = within_bound(order.side, price, required_price(order, "collar_price", order.collar_price))
    return f"{_touch_name(order.side)} {price} {_bound_op(order.side, within)} collar {order.collar_price}"


def _closed_words(session: MarketSession | None, tick: Tick, evaluated_ns: int) -> str:
    if session is None:
        return f"market closed at {_utc(evaluated_ns)}: no regular session"
    return (
        f"quote at {_utc(tick.at_ns)} evaluated at {_utc(evaluated_ns)} is outside the regular "
        f"session {_utc(session.open_ns)} to {_utc(session.close_ns)}"
    )


def _utc(ns: int) -> str:
    seconds, fraction = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


def _seconds(ns: int) -> str:
    return format(Decimal(ns).scaleb(-9).normalize(), "f")
