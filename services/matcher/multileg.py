"""The multi-leg fill decision (DESIGN §6): what one working multi-leg options order does on
its legs' quotes at one moment. It sits beside ``decide`` (domain.py) and keeps its shape:
pure, no I/O, clock or randomness; the same inputs give the same SpreadDecision, whose rule
and sentence say why it filled at its price.

- All legs fill on the legs' quotes at one moment (``evaluated_ns``), or none do. v1 fills
  the whole quantity; quote sizes are not consulted, as for day and gtc single orders.
- Each leg's quote must be from the regular session, usable (bid > 0, ask > bid), fresh
  (``is_stale``, as ``decide``) and in whole cents; otherwise the order waits.
- Net prices are per spread and per share, positive a debit (``services.common.spreads``);
  the complex-order grid is $0.01 at every price (Cboe Rules 5.4(b)): one tick is one cent.
- Fill preference: conservative fills when the limit reaches the natural (buy legs at the
  ask, sell legs at the bid), at the natural; mid fills when the limit reaches the net mid,
  at the net mid rounded up to the cent — toward the customer's limit, so never past it nor
  past the natural; aggressive fills as mid, and also on touch: a limit below the net mid by
  at most one tick fills at the limit. Market orders fill at once at the natural
  (conservative) or the rounded mid (mid, aggressive), within their collar if any.
- Leg prices (``allocate``) add up to the net exactly, each inside its leg's NBBO and in
  whole cents, on-touch fills included: a limit within a cent of the mid is never below the
  net bid, so it needs no leg outside its quote.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from services.common.ids import derived_id
from services.common.instruments import COMPLEX_TICK
from services.common.spreads import LegQuote, natural, net_mid
from services.common.trading import FillPreference, OrderType, Side, TimeInForce
from services.matcher.domain import Action, MarketSession, Tick, in_session, is_stale, is_usable

# Every rule id decide_spread can return. Stable: fills store them.
RULES = frozenset(
    {
        "day_order_expired",
        "before_acceptance",
        "no_quote",
        "market_closed",
        "unusable_quote",
        "stale_quote",
        "collar_breached",
        "mleg_not_allocatable",
        "mleg_market_at_natural",
        "mleg_market_at_mid",
        "mleg_limit_at_natural",
        "mleg_limit_not_marketable",
        "mleg_limit_at_mid",
        "mleg_limit_below_mid",
        "mleg_limit_on_touch",
        "mleg_limit_below_touch",
    }
)


@dataclass(frozen=True)
class SpreadLeg:
    symbol: str
    side: Side
    ratio: int  # contracts per spread


@dataclass(frozen=True)
class WorkingSpread:
    """An accepted multi-leg order as the matcher works it (v1: full fills only)."""

    order_id: str
    legs: tuple[SpreadLeg, ...]
    qty: Decimal  # spreads
    order_type: OrderType  # market or limit
    time_in_force: TimeInForce  # day or gtc
    limit_price: Decimal | None  # net per spread, either sign, limit orders only
    collar_price: Decimal | None  # market orders: the worst net they take; None = no bound
    fill_preference: FillPreference
    accepted_ns: int
    expires_ns: int | None  # day orders: the session close they expire at

    def __post_init__(self) -> None:
        name = self.order_id
        if not 2 <= len(self.legs) <= 4 or len({leg.symbol for leg in self.legs}) != len(self.legs):
            raise ValueError(f"{name}: a spread has 2 to 4 legs on distinct symbols")
        if any(leg.ratio < 1 for leg in self.legs):
            raise ValueError(f"{name}: leg ratios must be positive")
        if not _is_whole(self.qty):
            raise ValueError(f"{name}: qty must be a whole positive number of spreads, got {self.qty!r}")
        if self.order_type not in (OrderType.MARKET, OrderType.LIMIT):
            raise ValueError(f"{name}: a spread is a market or limit order, not {self.order_type.value}")
        if self.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
            raise ValueError(f"{name}: a spread is day or gtc, not {self.time_in_force.value}")
        limited = self.order_type is OrderType.LIMIT
        if limited != (self.limit_price is not None):
            raise ValueError(
                f"{name}: a {self.order_type.value} spread {'needs' if limited else 'takes no'} limit_price"
            )
        if limited and self.collar_price is not None:
            raise ValueError(f"{name}: a limit spread carries its own bound; it takes no collar_price")
        for value in (self.limit_price, self.collar_price):
            if value is not None and (not isinstance(value, Decimal) or not value.is_finite()):
                raise ValueError(f"{name}: net prices must be finite Decimals, got {value!r}")


@dataclass(frozen=True)
class LegFill:
    symbol: str
    side: Side
    ratio: int
    qty: Decimal  # contracts: ratio × the order's qty
    price: Decimal  # per share, inside the leg's NBBO
    tick: Tick  # the leg's quote it was priced from


@dataclass(frozen=True)
class SpreadDecision:
    action: Action  # FILL, WAIT or EXPIRE
    rule: str  # one of RULES
    net_price: Decimal | None  # FILL only: the net per spread, the signed sum of the legs' prices
    legs: tuple[LegFill, ...]  # FILL only, in leg order
    ticks: tuple[Tick, ...]  # the legs' quotes decided on, in leg order (those there were)
    natural: Decimal | None  # once the quotes were usable: the structure's natural and net mid
    mid: Decimal | None
    explanation: str  # one sentence with the numbers compared


def decide_spread(
    order: WorkingSpread,
    quotes: Mapping[str, Tick],
    *,
    session: MarketSession | None,
    evaluated_ns: int,
    max_quote_age_ns: int,
) -> SpreadDecision:
    """What ``order`` does on ``quotes`` (each leg's latest quote by symbol) at
    ``evaluated_ns``. ``session`` is the regular session in force then, None when the market
    is closed. The checks run in a fixed order; the rule returned is the first that applies."""
    ticks = tuple(quotes[leg.symbol] for leg in order.legs if leg.symbol in quotes)
    if any(tick.at_ns > evaluated_ns for tick in ticks):
        raise ValueError("a quote cannot be evaluated before its own time")
    if order.expires_ns is not None and order.expires_ns <= evaluated_ns:
        return SpreadDecision(
            Action.EXPIRE,
            "day_order_expired",
            None,
            (),
            ticks,
            None,
            None,
            "day spread order expired at its session close",
        )
    if evaluated_ns < order.accepted_ns:
        return _wait("before_acceptance", ticks, "quotes evaluated before the order was accepted")
    missing = [leg.symbol for leg in order.legs if leg.symbol not in quotes]
    if missing:
        return _wait("no_quote", ticks, f"no quote yet for {', '.join(missing)}; all legs fill together or none")
    closed = [t.symbol for t in ticks if not in_session(session, t, evaluated_ns)]
    if closed:
        return _wait(
            "market_closed",
            ticks,
            f"market closed for {', '.join(closed)}: no quote from the regular session, or evaluated outside it",
        )
    unusable = [t for t in ticks if not is_usable(t) or not (_in_cents(t.bid) and _in_cents(t.ask))]
    if unusable:
        words = ", ".join(f"{t.symbol} bid {t.bid} ask {t.ask}" for t in unusable)
        return _wait("unusable_quote", ticks, f"unusable leg quote {words} (needs bid > 0, ask > bid, whole cents)")
    stale = [t for t in ticks if is_stale(t, evaluated_ns, max_quote_age_ns)]
    if stale:
        words = ", ".join(f"{t.symbol} {_seconds(evaluated_ns - t.at_ns)} s" for t in stale)
        return _wait(
            "stale_quote",
            ticks,
            f"leg quote too old at evaluation ({words}; the maximum is {_seconds(max_quote_age_ns)} s)",
        )
    return _price(order, ticks)


def spread_fill_id(order_id: str, ticks: Sequence[Tick]) -> str:
    """Deterministic: the same order filled on the same leg quotes always gets the same id."""
    return derived_id("fill", order_id, *((t.symbol, t.at_ns, t.sequence) for t in ticks))


def reproduces(
    decision: SpreadDecision, order_id: str, fill_id: str, price: Decimal, rule: str, legs: Sequence[LegFill]
) -> bool:
    """Whether ``decision`` (a replay) is the spread fill recorded as ``fill_id`` of
    ``order_id`` at net ``price`` by ``rule`` with ``legs``: a FILL on the same leg quotes
    (the same fill id, so the same symbols, times and sequences, and the same NBBOs), by the
    same rule, at the same net, every leg at the same price."""

    def priced(fills: Sequence[LegFill]) -> list[tuple[str, Decimal, Decimal, Decimal]]:
        return [(leg.symbol, leg.price, leg.tick.bid, leg.tick.ask) for leg in fills]

    return (
        decision.action is Action.FILL
        and spread_fill_id(order_id, decision.ticks) == fill_id
        and (decision.rule, decision.net_price) == (rule, price)
        and priced(decision.legs) == priced(legs)
    )


def allocate(net: Decimal, quotes: Sequence[LegQuote]) -> tuple[Decimal, ...] | None:
    """Leg prices, in leg order, whose net (``net_price``) is exactly ``net``, each inside
    its leg's NBBO and in whole cents; None when the net is outside the structure's market
    or its cents do not split.

    From the natural (every leg at its far side), the improvement natural − net is shared in
    proportion to the legs' quoted widths: every leg moves the same fraction of the way from
    its far side toward its near side, so a fill at the net mid prices each leg at its own
    mid. The cents the rounding leaves over go to the legs with the largest remainders, then
    in leg order. With ratios of 1 every net from the net bid to the natural is met; with
    other ratios the leftover cents may not split (2×a + 3×b never makes 1) and the answer
    is None."""
    improvement = _cents(natural(quotes) - net)
    widths = [_cents(q.ask - q.bid) for q in quotes]
    total = sum(q.ratio * w for q, w in zip(quotes, widths, strict=True))
    if not 0 <= improvement <= total:
        return None
    moved = [improvement * w // total for w in widths]
    left = improvement - sum(q.ratio * m for q, m in zip(quotes, moved, strict=True))
    by_remainder = sorted(range(len(quotes)), key=lambda i: (-(improvement * widths[i] % total), i))
    extra = _share(left, tuple((quotes[i].ratio, widths[i] - moved[i]) for i in by_remainder))
    if extra is None:
        return None
    for i, cents in zip(by_remainder, extra, strict=True):
        moved[i] += cents
    return tuple(
        q.ask - m * COMPLEX_TICK if q.side is Side.BUY else q.bid + m * COMPLEX_TICK
        for q, m in zip(quotes, moved, strict=True)
    )


def _share(left: int, legs: tuple[tuple[int, int], ...]) -> tuple[int, ...] | None:
    """Cents per contract for each (ratio, room) so that the ratios times them make ``left``,
    as many as possible to the first legs; None when no split exists."""

    @functools.cache
    def split(index: int, rest: int) -> tuple[int, ...] | None:
        if index == len(legs):
            return () if rest == 0 else None
        ratio, room = legs[index]
        for cents in range(min(room, rest // ratio), -1, -1):
            tail = split(index + 1, rest - ratio * cents)
            if tail is not None:
                return (cents, *tail)
        return None

    return split(0, left)


# --- pricing a usable, fresh, in-session set of leg quotes ------------------------------


@dataclass(frozen=True)
class _Market:
    """The order on its legs' quotes: the structure's natural and net mid, and its words."""

    order: WorkingSpread
    ticks: tuple[Tick, ...]
    quotes: tuple[LegQuote, ...]
    natural: Decimal
    mid: Decimal

    @property
    def rounded_mid(self) -> Decimal:
        return self.mid.quantize(COMPLEX_TICK, rounding=ROUND_CEILING)

    def words(self, fact: str | None) -> str:
        order = self.order
        limit = "" if order.limit_price is None else f" limit {order.limit_price}"
        facts = [f"natural {self.natural}", f"mid {_plain(self.mid)}", *([fact] if fact else [])]
        return f"{order.fill_preference.value} {order.order_type.value} spread{limit}: {', '.join(facts)}"

    def wait(self, rule: str, fact: str) -> SpreadDecision:
        return _wait(rule, self.ticks, f"{self.words(fact)}, waiting", self.natural, self.mid)

    def fill(self, rule: str, target: Decimal, worst: Decimal, fact: str | None, outcome: str) -> SpreadDecision:
        """FILL at ``target``, or at the nearest net toward ``worst`` (the customer's bound)
        that whole-cent leg prices make (only ratios other than 1 ever need it)."""
        net, prices = target, allocate(target, self.quotes)
        while prices is None and net < worst:
            net += COMPLEX_TICK
            prices = allocate(net, self.quotes)
        if prices is None:
            return self.wait(
                "mleg_not_allocatable",
                f"{fact + ', ' if fact else ''}no whole-cent leg prices inside the quotes make {target} up to {worst}",
            )
        legs = tuple(
            LegFill(leg.symbol, leg.side, leg.ratio, leg.ratio * self.order.qty, price, tick)
            for leg, price, tick in zip(self.order.legs, prices, self.ticks, strict=True)
        )
        if net != target:
            outcome = f"{outcome} {target} moved to {net} so that whole-cent leg prices make it"
        priced = "; ".join(
            f"{leg.side.value} {leg.ratio} {leg.symbol} at {leg.price} (bid {leg.tick.bid} ask {leg.tick.ask})"
            for leg in legs
        )
        return SpreadDecision(
            Action.FILL,
            rule,
            net,
            legs,
            self.ticks,
            self.natural,
            self.mid,
            f"{self.words(fact)}, filled {outcome}: {net} ({priced})",
        )


def _price(order: WorkingSpread, ticks: tuple[Tick, ...]) -> SpreadDecision:
    quotes = tuple(LegQuote(leg.side, leg.ratio, t.bid, t.ask) for leg, t in zip(order.legs, ticks, strict=True))
    market = _Market(order, ticks, quotes, natural(quotes), net_mid(quotes))
    nat, mid, limit = market.natural, market.mid, order.limit_price
    conservative = order.fill_preference is FillPreference.CONSERVATIVE
    if limit is None:
        rule, target, outcome = (
            ("mleg_market_at_natural", nat, "at the natural")
            if conservative
            else ("mleg_market_at_mid", market.rounded_mid, "at the mid rounded up to the cent")
        )
        collar = order.collar_price
        if collar is not None and target > collar:
            return market.wait("collar_breached", f"{target} beyond the collar {collar}")
        return market.fill(rule, target, nat if collar is None else min(collar, nat), None, outcome)
    if conservative:
        if limit >= nat:
            return market.fill("mleg_limit_at_natural", nat, nat, "limit >= natural", "at the natural")
        return market.wait("mleg_limit_not_marketable", "limit < natural")
    if limit >= mid:
        return market.fill(
            "mleg_limit_at_mid",
            market.rounded_mid,
            min(limit, nat),
            "limit >= mid",
            "at the mid rounded up to the cent",
        )
    if order.fill_preference is FillPreference.MID:
        return market.wait("mleg_limit_below_mid", "limit < mid")
    if limit >= mid - COMPLEX_TICK:
        return market.fill(
            "mleg_limit_on_touch", limit, limit, f"limit within {COMPLEX_TICK} of the mid", "on touch at the limit"
        )
    return market.wait("mleg_limit_below_touch", f"limit more than {COMPLEX_TICK} below the mid")


def _wait(
    rule: str, ticks: tuple[Tick, ...], explanation: str, nat: Decimal | None = None, mid: Decimal | None = None
) -> SpreadDecision:
    return SpreadDecision(Action.WAIT, rule, None, (), ticks, nat, mid, explanation)


def _cents(value: Decimal) -> int:
    return int(value / COMPLEX_TICK)


def _in_cents(value: Decimal) -> bool:
    return value % COMPLEX_TICK == 0


def _is_whole(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_finite() and value > 0 and value == value.to_integral_value()


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _seconds(ns: int) -> str:
    return _plain(Decimal(ns).scaleb(-9))
