"""Pure market-data rules: symbol validation, quote quality, tier gating, request windows."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.common.errors import DomainError
from services.common.instruments import parse_symbol, parse_symbols
from services.common.wire.conv import datetime_to_ns
from services.marketdata.domain.gating import DAY_NS, FREE_DELAY_NS, entitlement
from services.marketdata.domain.ticks import Condition, LiveSequencer, classify
from services.marketdata.domain.windows import date_window, quote_window

NOW = datetime_to_ns(datetime(2012, 6, 21, 14, 0, tzinfo=UTC))
D = Decimal


@pytest.mark.parametrize(
    "raw, symbol, asset_class",
    [
        ("AAPL", "AAPL", "equity"),
        ("brk.b", "BRK.B", "equity"),
        (" goog ", "GOOG", "equity"),
        ("AAPL250117C00150000", "AAPL250117C00150000", "option"),
        ("SPY   230914P00360500", "SPY230914P00360500", "option"),
    ],
)
def test_well_formed_symbols_are_canonical(raw, symbol, asset_class):
    spec = parse_symbol(raw)
    assert (spec.symbol, spec.asset_class) == (symbol, asset_class)


def test_an_occ_symbol_is_parsed_into_its_parts():
    spec = parse_symbol("SPY230914P00360500")
    assert (spec.underlying, spec.expiration, spec.option_type, spec.strike, spec.multiplier) == (
        "SPY",
        date(2023, 9, 14),
        "put",
        D("360.5"),
        D(100),
    )
    assert parse_symbol("AMZN").multiplier == D(1)


@pytest.mark.parametrize(
    "raw, says",
    [
        ("", "required"),
        ("   ", "required"),
        ("AAPL!", "neither a ticker"),
        ("TOOLONGX", "neither a ticker"),
        ("AAPL251332C00150000", "impossible expiry"),
        ("AAPL250117X00150000", "neither a ticker"),
        ("AAPL250117C00000000", "zero strike"),
        ("A" * 40, "too long"),
        ("12345", "neither a ticker"),
    ],
)
def test_malformed_symbols_are_invalid_arguments_that_say_why(raw, says):
    with pytest.raises(DomainError) as caught:
        parse_symbol(raw)
    assert caught.value.reason == "INVALID_ARGUMENT"
    assert says in caught.value.message
    assert caught.value.metadata == {"field": "symbol"}


def test_symbol_lists_need_one_symbol_drop_duplicates_and_name_the_bad_one():
    assert [s.symbol for s in parse_symbols(["AMZN", "amzn", "GOOG"])] == ["AMZN", "GOOG"]
    with pytest.raises(DomainError, match="at least one"):
        parse_symbols([])
    with pytest.raises(DomainError) as caught:
        parse_symbols(["AMZN", "??"])
    assert caught.value.metadata == {"field": "symbols[1]"}


@pytest.mark.parametrize(
    "bid, ask, condition",
    [
        ("10.00", "10.01", Condition.USABLE),
        ("10.01", "10.00", Condition.CROSSED),
        ("10.00", "10.00", Condition.LOCKED),
        ("0", "10.00", Condition.EMPTY),
        ("10.00", "0", Condition.EMPTY),
        ("-1", "10.00", Condition.EMPTY),
        (None, "10.00", Condition.EMPTY),
    ],
)
def test_quote_quality_flags_crossed_locked_and_empty_quotes(bid, ask, condition):
    assert classify(D(bid) if bid else None, D(ask)) is condition


def test_live_sequences_strictly_increase_per_symbol_even_when_times_tie_or_go_back():
    sequencer = LiveSequencer()
    numbers = [sequencer.next("AAPL", t) for t in (100, 100, 90, 200)]
    assert numbers == [100, 101, 102, 200]
    assert sequencer.next("MSFT", 100) == 100


@pytest.mark.parametrize(
    "kind, tier, delay, option_days",
    [
        ("user", "", FREE_DELAY_NS, 30),
        ("user", "free", FREE_DELAY_NS, 30),
        ("user", "gold", FREE_DELAY_NS, 30),
        ("user", "pro", 0, 30),
        ("user", "pro_plus", 0, None),
        ("service", "", 0, None),
        ("ops", "", 0, None),
    ],
)
def test_entitlements_by_caller_and_tier(kind, tier, delay, option_days):
    granted = entitlement(kind, tier)
    assert granted.delay_ns == delay
    assert granted.options_history_ns == (None if option_days is None else option_days * DAY_NS)


def test_option_history_beyond_30_days_needs_pro_plus():
    entitlement("user", "pro").check_option_history(NOW - 29 * DAY_NS, NOW)
    entitlement("user", "pro_plus").check_option_history(NOW - 400 * DAY_NS, NOW)
    with pytest.raises(DomainError) as caught:
        entitlement("user", "pro").check_option_history(NOW - 31 * DAY_NS, NOW)
    assert caught.value.reason == "PERMISSION_DENIED"


def test_quote_windows_default_to_the_last_day_and_never_reach_the_future():
    assert quote_window(None, None, NOW) == (NOW - DAY_NS, NOW)
    assert quote_window(NOW - 10, NOW + DAY_NS, NOW) == (NOW - 10, NOW)


@pytest.mark.parametrize(
    "start, end, field, says",
    [
        (NOW, NOW - 1, "from", "after to"),
        (datetime_to_ns(datetime(1900, 1, 1, tzinfo=UTC)), NOW, "from", "1990"),
        (NOW - 400 * DAY_NS, NOW, "from", "more than 366 days"),
        (NOW + DAY_NS, None, "from", "future"),
    ],
)
def test_bad_quote_windows_are_invalid_arguments(start, end, field, says):
    with pytest.raises(DomainError) as caught:
        quote_window(start, end, NOW)
    assert caught.value.metadata["field"] == field
    assert says in caught.value.message


def test_date_windows_are_bounded():
    kwargs = {
        "default_from": date(2012, 1, 1),
        "default_to": date(2012, 6, 21),
        "max_days": 400,
        "latest": date(2013, 1, 1),
    }
    assert date_window(None, None, **kwargs) == (date(2012, 1, 1), date(2012, 6, 21))
    for start, end, says in [
        (date(2012, 6, 2), date(2012, 6, 1), "after to"),
        (date(1900, 1, 1), None, "1990"),
        (None, date(2014, 1, 1), "beyond"),
        (date(2010, 1, 1), None, "more than 400 days"),
    ]:
        with pytest.raises(DomainError, match=says):
            date_window(start, end, **kwargs)
