"""The values the matcher's use cases exchange with the services it calls and with its
servicers, beside the fill function's own (``domain.py``): orders as the orders service
reports them, the quote stream's notices, recorded fills and their explanations. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from services.common.trading import FillPreference
from services.matcher.domain import Tick, WorkingOrder
from services.matcher.multileg import LegFill, WorkingSpread


@dataclass(frozen=True)
class OpenOrder:
    """An order the orders service reports as accepted: the terms the fill function works
    (``working``) and the contract multiplier its fills carry (1 for a share)."""

    working: WorkingOrder
    multiplier: Decimal


@dataclass(frozen=True)
class OpenSpread:
    """A multi-leg order the orders service reports as accepted, as ``decide_spread`` works it."""

    spread: WorkingSpread


@dataclass(frozen=True)
class QuotesDropped:
    """The quote stream skipped ticks ``from_sequence`` to ``to_sequence`` of its symbol (we
    read too slowly): they are in the tick archive."""

    from_sequence: int
    to_sequence: int


@dataclass(frozen=True)
class RecordedFill:
    """A fill as the orders service recorded it: the quote it was priced on (``tick``, its
    NBBO, time and feed sequence), the price and the rule that fired. A multi-leg fill: the
    net per spread as ``price``, ``tick`` the latest leg quote's time and sequence with the
    net mid as bid and the natural as ask, and ``legs`` each leg's price and quote (a leg
    recorded before fills kept its quote's time and sequence has 0 for both)."""

    fill_id: str
    order_id: str
    price: Decimal
    rule: str
    tick: Tick
    legs: tuple[LegFill, ...] = ()


@dataclass(frozen=True)
class FilledOrder:
    """The order a fill belongs to: its owner, its terms as last accepted or replaced
    (``working``, triggered if its stop was ever reached) and when its stop was reached
    (epoch ns, None if never)."""

    user_id: str
    working: WorkingOrder
    triggered_ns: int | None


@dataclass(frozen=True)
class FilledSpread:
    """The multi-leg order a fill belongs to: its owner and its terms as last accepted or
    replaced (``spread``)."""

    user_id: str
    spread: WorkingSpread


@dataclass(frozen=True)
class ArchivedQuote:
    """A quote as the tick archive holds it: the tick, where it came from (market data's
    source: ``replay``, ``alpaca``, ``snapshot`` or ``model``) and, for a model quote, the
    inputs it was computed from (market data's ModelInputs, field name to value)."""

    tick: Tick
    source: str
    model: Mapping[str, str | int] | None


@dataclass(frozen=True)
class ExplainedLeg:
    """One leg of an explained multi-leg fill: its price and quote (``fill``) and where that
    quote came from (``quote``: None when the archive no longer holds it)."""

    fill: LegFill
    quote: ArchivedQuote | None


@dataclass(frozen=True)
class SymbolSummary:
    symbol: str
    working_orders: int
    last_tick_ns: int | None  # the last tick of the symbol the book processed (epoch ns)


@dataclass(frozen=True)
class BookSummary:
    """What the live matcher holds: the book per symbol, and since start the ticks processed,
    the fills decided and the decisions the orders service has not acknowledged yet."""

    symbols: tuple[SymbolSummary, ...]
    working_orders: int
    ticks_processed: int
    fills_decided: int
    decisions_in_flight: int


@dataclass(frozen=True)
class FillExplanation:
    """Why a fill happened: the replay's words, whether the replay of the archived quotes
    reproduced the recorded fill, and how many quotes it evaluated (a multi-leg fill: its
    legs' quotes, decided once)."""

    fill: RecordedFill
    explanation: str
    reproduced: bool
    ticks_considered: int
    # Multi-leg fills only: every leg, the structure's natural and net mid on the legs'
    # quotes, and the order's fill preference.
    legs: tuple[ExplainedLeg, ...] = ()
    natural: Decimal | None = None
    mid: Decimal | None = None
    fill_preference: FillPreference | None = None
    # Single-leg fills: the deciding quote as archived, with its source (None when the
    # archive no longer holds it).
    quote: ArchivedQuote | None = None
