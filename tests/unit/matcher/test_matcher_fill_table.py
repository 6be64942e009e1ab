"""The fill function, table-driven: every order type and time in force on both sides, then
the quote, session, age and expiry rules that gate them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.matcher.domain import (
    RULES,
    Action,
    Tick,
    WorkingOrder,
    decide,
    in_session,
    is_usable,
    size_displayed,
    stop_reached,
    within_bound,
)
from tests.support.matcher import (
    BUY,
    CLOSE_NS,
    DAY,
    EARLY_CLOSE_SESSION,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    MAX_AGE_NS,
    MID_SESSION_NS,
    OPEN_NS,
    SECOND,
    SELL,
    SESSION,
    STOP,
    STOP_LIMIT,
    a_tick,
    an_order,
)

FILL, TRIGGER, CANCEL, EXPIRE, WAIT = Action.FILL, Action.TRIGGER, Action.CANCEL, Action.EXPIRE, Action.WAIT


@pytest.mark.parametrize(
    "bid, ask, usable",
    [
        ("100.00", "100.10", True),
        ("0.01", "0.02", True),
        ("100.10", "100.00", False),
        ("100.05", "100.05", False),
        ("0", "100.10", False),
        ("-1", "100.10", False),
        ("100.00", "0", False),
    ],
)
def test_is_usable(bid, ask, usable):
    assert is_usable(a_tick(bid, ask)) is usable


@pytest.mark.parametrize(
    "side, price, bound, within",
    [
        (BUY, "100.10", "100.10", True),
        (BUY, "100.11", "100.10", False),
        (BUY, "100.09", "100.10", True),
        (SELL, "100.00", "100.00", True),
        (SELL, "99.99", "100.00", False),
        (SELL, "100.01", "100.00", True),
    ],
)
def test_within_bound(side, price, bound, within):
    assert within_bound(side, Decimal(price), Decimal(bound)) is within


@pytest.mark.parametrize(
    "side, stop, reached",
    [
        (BUY, "100.10", True),
        (BUY, "100.11", False),
        (BUY, "99.00", True),
        (SELL, "100.00", True),
        (SELL, "99.99", False),
        (SELL, "101.00", True),
    ],
)
def test_stop_reached_against_bid_100_00_ask_100_10(side, stop, reached):
    assert stop_reached(side, Decimal(stop), a_tick("100.00", "100.10")) is reached


@pytest.mark.parametrize(
    "side, qty, shown",
    [
        (BUY, "300", True),
        (BUY, "301", False),
        (SELL, "200", True),
        (SELL, "201", False),
    ],
)
def test_size_displayed_against_bid_size_200_ask_size_300(side, qty, shown):
    assert size_displayed(side, Decimal(qty), a_tick("100.00", "100.10", bid_size="200", ask_size="300")) is shown


@pytest.mark.parametrize(
    "tick_ns, evaluated_ns, inside",
    [
        (OPEN_NS, OPEN_NS, True),
        (OPEN_NS - 1, OPEN_NS - 1, False),
        (CLOSE_NS - 1, CLOSE_NS - 1, True),
        (CLOSE_NS, CLOSE_NS, False),
        (OPEN_NS - 1, OPEN_NS + 1, False),
        (CLOSE_NS - 1, CLOSE_NS, False),
    ],
)
def test_in_session(tick_ns, evaluated_ns, inside):
    assert in_session(SESSION, a_tick("100", "100.10", at_ns=tick_ns), evaluated_ns) is inside
    assert in_session(None, a_tick("100", "100.10", at_ns=tick_ns), evaluated_ns) is False


# Every order case sees this in-session, fresh quote: bid 100.00 x 200, ask 100.10 x 300.
QUOTE = a_tick("100.00", "100.10", bid_size="200", ask_size="300")

ORDER_CASES = [
    # market: buy at the ask, sell at the bid, within the collar
    ("market buy day", an_order(MARKET, BUY, tif=DAY, expires_ns=CLOSE_NS), FILL, "market_buy_at_ask", "100.10"),
    ("market sell gtc", an_order(MARKET, SELL), FILL, "market_sell_at_bid", "100.00"),
    ("market buy at its collar", an_order(MARKET, BUY, collar="100.10"), FILL, "market_buy_at_ask", "100.10"),
    ("market buy above its collar", an_order(MARKET, BUY, collar="100.09"), WAIT, "collar_breached", None),
    ("market sell below its collar", an_order(MARKET, SELL, collar="100.01"), WAIT, "collar_breached", None),
    ("market buy ioc", an_order(MARKET, BUY, tif=IOC), FILL, "market_buy_at_ask", "100.10"),
    (
        "market buy ioc beyond collar",
        an_order(MARKET, BUY, tif=IOC, collar="100.05"),
        CANCEL,
        "ioc_not_marketable",
        None,
    ),
    ("market buy fok, size shown", an_order(MARKET, BUY, tif=FOK, qty="300"), FILL, "market_buy_at_ask", "100.10"),
    ("market buy fok, size short", an_order(MARKET, BUY, tif=FOK, qty="301"), CANCEL, "fok_size_not_displayed", None),
    (
        "market sell fok, bid size short",
        an_order(MARKET, SELL, tif=FOK, qty="201"),
        CANCEL,
        "fok_size_not_displayed",
        None,
    ),
    (
        "market sell fok beyond collar",
        an_order(MARKET, SELL, tif=FOK, collar="100.05"),
        CANCEL,
        "fok_not_marketable",
        None,
    ),
    # limit: buy when ask <= limit, at the ask; sell when bid >= limit, at the bid
    ("limit buy at the ask", an_order(LIMIT, BUY, limit="100.10"), FILL, "limit_buy_at_ask", "100.10"),
    (
        "limit buy above the ask fills at the ask",
        an_order(LIMIT, BUY, tif=DAY, limit="100.50", expires_ns=CLOSE_NS),
        FILL,
        "limit_buy_at_ask",
        "100.10",
    ),
    ("limit buy below the ask", an_order(LIMIT, BUY, limit="100.09"), WAIT, "limit_buy_not_marketable", None),
    ("limit sell at the bid", an_order(LIMIT, SELL, limit="100.00"), FILL, "limit_sell_at_bid", "100.00"),
    (
        "limit sell below the bid fills at the bid",
        an_order(LIMIT, SELL, limit="99.00"),
        FILL,
        "limit_sell_at_bid",
        "100.00",
    ),
    ("limit sell above the bid", an_order(LIMIT, SELL, limit="100.01"), WAIT, "limit_sell_not_marketable", None),
    ("limit buy ioc not marketable", an_order(LIMIT, BUY, tif=IOC, limit="100.09"), CANCEL, "ioc_not_marketable", None),
    ("limit sell ioc marketable", an_order(LIMIT, SELL, tif=IOC, limit="99.00"), FILL, "limit_sell_at_bid", "100.00"),
    (
        "limit buy fok, size shown",
        an_order(LIMIT, BUY, tif=FOK, limit="100.20", qty="300"),
        FILL,
        "limit_buy_at_ask",
        "100.10",
    ),
    (
        "limit buy fok, size short",
        an_order(LIMIT, BUY, tif=FOK, limit="100.20", qty="1000"),
        CANCEL,
        "fok_size_not_displayed",
        None,
    ),
    (
        "limit sell fok not marketable",
        an_order(LIMIT, SELL, tif=FOK, limit="100.05"),
        CANCEL,
        "fok_not_marketable",
        None,
    ),
    (
        "limit buy marketable but beyond collar",
        an_order(LIMIT, BUY, limit="100.50", collar="100.05"),
        WAIT,
        "collar_breached",
        None,
    ),
    # stop: buy triggers when ask >= stop, sell when bid <= stop, then fills as market
    ("stop buy at its stop", an_order(STOP, BUY, stop="100.10"), FILL, "stop_buy_triggered_market_at_ask", "100.10"),
    (
        "stop buy below the ask",
        an_order(STOP, BUY, tif=DAY, stop="99.50", expires_ns=CLOSE_NS),
        FILL,
        "stop_buy_triggered_market_at_ask",
        "100.10",
    ),
    ("stop buy not reached", an_order(STOP, BUY, stop="100.11"), WAIT, "stop_buy_not_reached", None),
    ("stop sell at its stop", an_order(STOP, SELL, stop="100.00"), FILL, "stop_sell_triggered_market_at_bid", "100.00"),
    ("stop sell not reached", an_order(STOP, SELL, stop="99.99"), WAIT, "stop_sell_not_reached", None),
    (
        "stop buy triggered beyond collar",
        an_order(STOP, BUY, stop="100.05", collar="100.08"),
        TRIGGER,
        "stop_buy_triggered",
        None,
    ),
    (
        "stop sell triggered beyond collar",
        an_order(STOP, SELL, stop="100.05", collar="100.02"),
        TRIGGER,
        "stop_sell_triggered",
        None,
    ),
    (
        "stop buy triggered earlier fills as market",
        an_order(STOP, BUY, stop="101.00", triggered=True),
        FILL,
        "stop_buy_at_ask",
        "100.10",
    ),
    (
        "stop sell triggered earlier fills as market",
        an_order(STOP, SELL, stop="99.00", triggered=True),
        FILL,
        "stop_sell_at_bid",
        "100.00",
    ),
    (
        "stop buy triggered earlier, still beyond collar",
        an_order(STOP, BUY, stop="100.00", triggered=True, collar="100.05"),
        WAIT,
        "collar_breached",
        None,
    ),
    ("stop buy ioc not reached", an_order(STOP, BUY, tif=IOC, stop="100.11"), CANCEL, "ioc_not_marketable", None),
    (
        "stop buy fok reached, size shown",
        an_order(STOP, BUY, tif=FOK, stop="100.00"),
        FILL,
        "stop_buy_triggered_market_at_ask",
        "100.10",
    ),
    (
        "stop sell fok reached, size short",
        an_order(STOP, SELL, tif=FOK, stop="100.00", qty="1000"),
        CANCEL,
        "fok_size_not_displayed",
        None,
    ),
    # stop-limit: triggers like a stop, then works as a limit (the same tick may fill it)
    (
        "stop-limit buy triggers and fills",
        an_order(STOP_LIMIT, BUY, stop="100.05", limit="100.10"),
        FILL,
        "stop_limit_buy_triggered_limit_at_ask",
        "100.10",
    ),
    (
        "stop-limit buy triggers, limit not marketable",
        an_order(STOP_LIMIT, BUY, stop="100.05", limit="100.08"),
        TRIGGER,
        "stop_limit_buy_triggered",
        None,
    ),
    (
        "stop-limit buy not reached",
        an_order(STOP_LIMIT, BUY, stop="100.20", limit="100.30"),
        WAIT,
        "stop_limit_buy_not_reached",
        None,
    ),
    (
        "stop-limit sell triggers and fills",
        an_order(STOP_LIMIT, SELL, tif=DAY, stop="100.05", limit="100.00", expires_ns=CLOSE_NS),
        FILL,
        "stop_limit_sell_triggered_limit_at_bid",
        "100.00",
    ),
    (
        "stop-limit sell triggers, limit not marketable",
        an_order(STOP_LIMIT, SELL, stop="100.05", limit="100.02"),
        TRIGGER,
        "stop_limit_sell_triggered",
        None,
    ),
    (
        "stop-limit sell not reached",
        an_order(STOP_LIMIT, SELL, stop="99.90", limit="99.80"),
        WAIT,
        "stop_limit_sell_not_reached",
        None,
    ),
    (
        "stop-limit buy triggered earlier fills at limit",
        an_order(STOP_LIMIT, BUY, stop="100.50", limit="100.10", triggered=True),
        FILL,
        "stop_limit_buy_at_ask",
        "100.10",
    ),
    (
        "stop-limit sell triggered earlier fills at limit",
        an_order(STOP_LIMIT, SELL, stop="99.00", limit="100.00", triggered=True),
        FILL,
        "stop_limit_sell_at_bid",
        "100.00",
    ),
    (
        "stop-limit buy triggered earlier, not marketable",
        an_order(STOP_LIMIT, BUY, stop="99.00", limit="100.00", triggered=True),
        WAIT,
        "stop_limit_buy_not_marketable",
        None,
    ),
    (
        "stop-limit sell triggered earlier, not marketable",
        an_order(STOP_LIMIT, SELL, stop="101.00", limit="100.05", triggered=True),
        WAIT,
        "stop_limit_sell_not_marketable",
        None,
    ),
    (
        "stop-limit buy triggered earlier, beyond collar",
        an_order(STOP_LIMIT, BUY, stop="99.00", limit="100.20", collar="100.05", triggered=True),
        WAIT,
        "collar_breached",
        None,
    ),
    (
        "stop-limit buy ioc triggers, not marketable",
        an_order(STOP_LIMIT, BUY, tif=IOC, stop="100.05", limit="100.08"),
        CANCEL,
        "ioc_not_marketable",
        None,
    ),
    (
        "stop-limit sell fok fills, size short",
        an_order(STOP_LIMIT, SELL, tif=FOK, stop="100.05", limit="100.00", qty="201"),
        CANCEL,
        "fok_size_not_displayed",
        None,
    ),
    (
        "stop-limit buy fok not reached",
        an_order(STOP_LIMIT, BUY, tif=FOK, stop="100.20", limit="100.30"),
        CANCEL,
        "fok_not_marketable",
        None,
    ),
]


@pytest.mark.parametrize("order, action, rule, price", [pytest.param(*row[1:], id=row[0]) for row in ORDER_CASES])
def test_order_types_and_times_in_force(order, action, rule, price):
    decision = decide(order, QUOTE, session=SESSION, evaluated_ns=QUOTE.at_ns, max_quote_age_ns=MAX_AGE_NS)
    assert (decision.action, decision.rule, decision.price) == (action, rule, _price(price))
    assert decision.tick == QUOTE


GTC_MARKET_BUY = an_order(MARKET, BUY, accepted_ns=OPEN_NS - 3600 * SECOND)  # waiting for the open
GTC_LIMIT_BUY = an_order(LIMIT, BUY, limit="100.50")
IOC_MARKET_BUY = an_order(MARKET, BUY, tif=IOC)
FOK_LIMIT_SELL = an_order(LIMIT, SELL, tif=FOK, limit="99.00")
REACHED_STOP_BUY = an_order(STOP, BUY, stop="100.00")
DAY_LIMIT_BUY = an_order(LIMIT, BUY, tif=DAY, limit="100.50", expires_ns=CLOSE_NS)
EARLY_DAY_LIMIT_BUY = an_order(
    LIMIT,
    BUY,
    tif=DAY,
    limit="100.50",
    accepted_ns=EARLY_CLOSE_SESSION.open_ns,
    expires_ns=EARLY_CLOSE_SESSION.close_ns,
)
EARLY_GTC_MARKET_BUY = an_order(MARKET, BUY, accepted_ns=EARLY_CLOSE_SESSION.open_ns)
ACCEPTED_LATER = an_order(MARKET, BUY, accepted_ns=MID_SESSION_NS + 1)


def _at(ns: int, bid: str = "100.00", ask: str = "100.10") -> Tick:
    return a_tick(bid, ask, at_ns=ns)


CONTEXT_CASES = [
    # (id, order, tick, session, evaluated_ns (None: the tick's time), max age, action, rule)
    # unusable quotes: crossed, locked, zero, negative — never fill, trigger or decide an ioc/fok
    (
        "crossed",
        GTC_MARKET_BUY,
        _at(MID_SESSION_NS, "100.10", "100.00"),
        SESSION,
        None,
        MAX_AGE_NS,
        WAIT,
        "unusable_quote",
    ),
    (
        "locked",
        GTC_LIMIT_BUY,
        _at(MID_SESSION_NS, "100.05", "100.05"),
        SESSION,
        None,
        MAX_AGE_NS,
        WAIT,
        "unusable_quote",
    ),
    ("zero bid", GTC_MARKET_BUY, _at(MID_SESSION_NS, "0", "100.10"), SESSION, None, MAX_AGE_NS, WAIT, "unusable_quote"),
    (
        "zero ask",
        an_order(MARKET, SELL),
        _at(MID_SESSION_NS, "100.00", "0"),
        SESSION,
        None,
        MAX_AGE_NS,
        WAIT,
        "unusable_quote",
    ),
    (
        "negative bid",
        GTC_MARKET_BUY,
        _at(MID_SESSION_NS, "-1", "100.10"),
        SESSION,
        None,
        MAX_AGE_NS,
        WAIT,
        "unusable_quote",
    ),
    (
        "ioc waits out a crossed quote",
        IOC_MARKET_BUY,
        _at(MID_SESSION_NS, "100.10", "100.00"),
        SESSION,
        None,
        MAX_AGE_NS,
        WAIT,
        "unusable_quote",
    ),
    (
        "fok waits out a locked quote",
        FOK_LIMIT_SELL,
        _at(MID_SESSION_NS, "100.05", "100.05"),
        SESSION,
        None,
        MAX_AGE_NS,
        WAIT,
        "unusable_quote",
    ),
    (
        "a crossed quote never triggers a stop",
        REACHED_STOP_BUY,
        _at(MID_SESSION_NS, "100.50", "100.20"),
        SESSION,
        None,
        MAX_AGE_NS,
        WAIT,
        "unusable_quote",
    ),
    # quote age = evaluated_ns - tick time
    (
        "quote exactly at the maximum age",
        GTC_MARKET_BUY,
        _at(MID_SESSION_NS),
        SESSION,
        MID_SESSION_NS + MAX_AGE_NS,
        MAX_AGE_NS,
        FILL,
        "market_buy_at_ask",
    ),
    (
        "stale quote, market",
        GTC_MARKET_BUY,
        _at(MID_SESSION_NS),
        SESSION,
        MID_SESSION_NS + MAX_AGE_NS + 1,
        MAX_AGE_NS,
        WAIT,
        "stale_quote",
    ),
    (
        "stale quote, limit",
        GTC_LIMIT_BUY,
        _at(MID_SESSION_NS),
        SESSION,
        MID_SESSION_NS + 5 * SECOND,
        MAX_AGE_NS,
        WAIT,
        "stale_quote",
    ),
    (
        "stale quote, ioc waits for a fresh one",
        IOC_MARKET_BUY,
        _at(MID_SESSION_NS),
        SESSION,
        MID_SESSION_NS + 5 * SECOND,
        MAX_AGE_NS,
        WAIT,
        "stale_quote",
    ),
    (
        "stale quote never triggers a stop",
        REACHED_STOP_BUY,
        _at(MID_SESSION_NS),
        SESSION,
        MID_SESSION_NS + 5 * SECOND,
        MAX_AGE_NS,
        WAIT,
        "stale_quote",
    ),
    (
        "quote standing at acceptance, fresh",
        ACCEPTED_LATER,
        _at(MID_SESSION_NS),
        SESSION,
        MID_SESSION_NS + 1,
        MAX_AGE_NS,
        FILL,
        "market_buy_at_ask",
    ),
    (
        "tick evaluated before acceptance",
        ACCEPTED_LATER,
        _at(MID_SESSION_NS),
        SESSION,
        None,
        MAX_AGE_NS,
        WAIT,
        "before_acceptance",
    ),
    # regular hours: [open, close)
    (
        "no session (holiday, weekend)",
        GTC_MARKET_BUY,
        _at(MID_SESSION_NS),
        None,
        None,
        MAX_AGE_NS,
        WAIT,
        "market_closed",
    ),
    ("just before the open", GTC_MARKET_BUY, _at(OPEN_NS - 1), SESSION, None, MAX_AGE_NS, WAIT, "market_closed"),
    ("at the open", GTC_MARKET_BUY, _at(OPEN_NS), SESSION, None, MAX_AGE_NS, FILL, "market_buy_at_ask"),
    (
        "last nanosecond of the session",
        GTC_MARKET_BUY,
        _at(CLOSE_NS - 1),
        SESSION,
        None,
        MAX_AGE_NS,
        FILL,
        "market_buy_at_ask",
    ),
    ("at the close", GTC_MARKET_BUY, _at(CLOSE_NS), SESSION, None, MAX_AGE_NS, WAIT, "market_closed"),
    (
        "pre-open quote evaluated in session",
        GTC_MARKET_BUY,
        _at(OPEN_NS - 1),
        SESSION,
        OPEN_NS + 1,
        MAX_AGE_NS,
        WAIT,
        "market_closed",
    ),
    (
        "ioc outside hours waits",
        IOC_MARKET_BUY,
        _at(CLOSE_NS + SECOND),
        SESSION,
        None,
        MAX_AGE_NS,
        WAIT,
        "market_closed",
    ),
    (
        "early close: gtc waits after 13:00",
        EARLY_GTC_MARKET_BUY,
        _at(EARLY_CLOSE_SESSION.close_ns + SECOND),
        EARLY_CLOSE_SESSION,
        None,
        MAX_AGE_NS,
        WAIT,
        "market_closed",
    ),
    (
        "early close: gtc fills before 13:00",
        EARLY_GTC_MARKET_BUY,
        _at(EARLY_CLOSE_SESSION.close_ns - SECOND),
        EARLY_CLOSE_SESSION,
        None,
        MAX_AGE_NS,
        FILL,
        "market_buy_at_ask",
    ),
    (
        "early close: day order expires at 13:00",
        EARLY_DAY_LIMIT_BUY,
        _at(EARLY_CLOSE_SESSION.close_ns),
        EARLY_CLOSE_SESSION,
        None,
        MAX_AGE_NS,
        EXPIRE,
        "day_order_expired",
    ),
    (
        "early close: day order fills before 13:00",
        EARLY_DAY_LIMIT_BUY,
        _at(EARLY_CLOSE_SESSION.close_ns - 1),
        EARLY_CLOSE_SESSION,
        None,
        MAX_AGE_NS,
        FILL,
        "limit_buy_at_ask",
    ),
    # day expiry: at its close, whatever the quote, never a fill after it
    ("day order at its close", DAY_LIMIT_BUY, _at(CLOSE_NS), SESSION, None, MAX_AGE_NS, EXPIRE, "day_order_expired"),
    (
        "day order after its close, market closed",
        DAY_LIMIT_BUY,
        _at(CLOSE_NS + 3600 * SECOND),
        None,
        None,
        MAX_AGE_NS,
        EXPIRE,
        "day_order_expired",
    ),
    (
        "day order after its close, crossed quote",
        DAY_LIMIT_BUY,
        _at(CLOSE_NS + SECOND, "100.10", "100.00"),
        SESSION,
        None,
        MAX_AGE_NS,
        EXPIRE,
        "day_order_expired",
    ),
    (
        "day order whose close came before the session's",
        an_order(LIMIT, BUY, tif=DAY, limit="100.50", expires_ns=MID_SESSION_NS),
        _at(MID_SESSION_NS),
        SESSION,
        None,
        MAX_AGE_NS,
        EXPIRE,
        "day_order_expired",
    ),
]


@pytest.mark.parametrize(
    "order, tick, session, evaluated_ns, max_age, action, rule",
    [pytest.param(*row[1:], id=row[0]) for row in CONTEXT_CASES],
)
def test_quotes_sessions_age_and_expiry(order, tick, session, evaluated_ns, max_age, action, rule):
    evaluated = tick.at_ns if evaluated_ns is None else evaluated_ns
    decision = decide(order, tick, session=session, evaluated_ns=evaluated, max_quote_age_ns=max_age)
    assert (decision.action, decision.rule) == (action, rule)
    assert (decision.price is not None) == (action is FILL)


def test_the_tables_cover_every_rule_but_replays_own():
    covered = {row[3] for row in ORDER_CASES} | {row[7] for row in CONTEXT_CASES}
    assert covered == RULES - {"no_quote"}


@pytest.mark.parametrize(
    "order, tick, explanation",
    [
        (
            an_order(LIMIT, BUY, limit="220.50"),
            a_tick("220.27", "220.31"),
            "buy limit 220.50: ask 220.31 <= limit, filled at the ask",
        ),
        (
            an_order(MARKET, SELL, collar="220.00"),
            a_tick("219.98", "220.05"),
            "sell market: bid 219.98 < collar 220.00, waiting for the price to come back within the collar",
        ),
        (
            an_order(STOP, SELL, stop="220.00"),
            a_tick("219.98", "220.05"),
            "sell stop 220.00: bid 219.98 <= stop, triggered, filled at the bid",
        ),
        (
            an_order(STOP_LIMIT, BUY, stop="220.00", limit="220.02"),
            a_tick("219.98", "220.05"),
            "buy stop-limit stop 220.00 limit 220.02: ask 220.05 >= stop, ask 220.05 > limit, triggered, "
            "now working as a limit order",
        ),
        (
            an_order(MARKET, BUY, tif=FOK, qty="500"),
            a_tick("219.98", "220.05", ask_size="100"),
            "fok buy market: ask 220.05, ask size 100 < qty 500, not filled on its deciding tick, canceled",
        ),
        (
            an_order(LIMIT, SELL, tif=IOC, limit="220.00"),
            a_tick("219.98", "220.05"),
            "ioc sell limit 220.00: bid 219.98 < limit, not filled on its deciding tick, canceled",
        ),
    ],
)
def test_explanations_name_the_numbers_compared(order, tick, explanation):
    decision = decide(order, tick, session=SESSION, evaluated_ns=tick.at_ns, max_quote_age_ns=MAX_AGE_NS)
    assert decision.explanation == explanation


def test_gate_explanations_name_times_and_ages():
    tick = _at(MID_SESSION_NS)
    stale = decide(
        GTC_MARKET_BUY, tick, session=SESSION, evaluated_ns=MID_SESSION_NS + 2_500_000_000, max_quote_age_ns=MAX_AGE_NS
    )
    expired = decide(
        DAY_LIMIT_BUY, _at(CLOSE_NS + 1), session=None, evaluated_ns=CLOSE_NS + 1, max_quote_age_ns=MAX_AGE_NS
    )
    assert stale.explanation == (
        "quote from 2012-06-21T14:30:00.000000000Z is 2.5 s old at evaluation, older than the 2 s maximum"
    )
    assert expired.explanation == (
        "day order expired at its session close 2012-06-21T20:00:00.000000000Z, "
        "evaluated at 2012-06-21T20:00:00.000000001Z"
    )


@pytest.mark.parametrize(
    "tick, evaluated_ns",
    [
        (a_tick("100.00", "100.10", symbol="ABC"), MID_SESSION_NS),
        (a_tick("100.00", "100.10"), MID_SESSION_NS - 1),
    ],
    ids=["another symbol's tick", "evaluated before the quote existed"],
)
def test_misuse_is_an_error_not_a_decision(tick, evaluated_ns):
    with pytest.raises(ValueError):
        decide(GTC_MARKET_BUY, tick, session=SESSION, evaluated_ns=evaluated_ns, max_quote_age_ns=MAX_AGE_NS)


@pytest.mark.parametrize(
    "fields",
    [
        {"order_type": LIMIT, "limit_price": None},
        {"order_type": STOP_LIMIT, "limit_price": Decimal("1"), "stop_price": None},
        {"order_type": MARKET, "stop_price": Decimal("1")},
        {"order_type": LIMIT, "limit_price": Decimal("0")},
        {"order_type": LIMIT, "limit_price": 100.1},
        {"order_type": LIMIT, "limit_price": Decimal("1"), "triggered": True},
        {"qty": Decimal("0")},
        {"collar_price": Decimal("NaN")},
    ],
    ids=[
        "limit without limit",
        "stop-limit without stop",
        "market with stop",
        "zero limit",
        "float limit",
        "triggered limit",
        "zero qty",
        "NaN collar",
    ],
)
def test_malformed_orders_are_refused(fields):
    base = {
        "order_id": "ord_1",
        "symbol": "XYZ",
        "side": BUY,
        "qty": Decimal(1),
        "order_type": MARKET,
        "time_in_force": GTC,
        "limit_price": None,
        "stop_price": None,
        "collar_price": None,
        "accepted_ns": OPEN_NS,
        "triggered": False,
        "expires_ns": None,
    }
    with pytest.raises(ValueError):
        WorkingOrder(**(base | fields))


@pytest.mark.parametrize(
    "bid, ask", [(100.0, Decimal("100.1")), (Decimal("NaN"), Decimal("100.1")), (Decimal("100"), Decimal("Infinity"))]
)
def test_ticks_refuse_floats_and_non_finite_prices(bid, ask):
    with pytest.raises(ValueError):
        Tick("XYZ", bid, Decimal(1), ask, Decimal(1), MID_SESSION_NS, 1)


def _price(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)
