"""A tick is one NBBO quote as the feed delivered it, with its quality and its place in
the feed (``sequence``, strictly increasing per symbol)."""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.marketdata.domain.option_model import ModelInputs

ZERO = Decimal(0)


class Condition(Enum):
    """Whether a quote may price anything (DESIGN §6: bid > 0, ask > 0, ask >= bid; a
    locked quote is flagged too, so callers see it, but only USABLE ever prices a fill)."""

    USABLE = "usable"
    CROSSED = "crossed"
    LOCKED = "locked"
    EMPTY = "empty"
    # An index level (bid = ask = the level): prices models and settlement, never a fill.
    INDEX = "index"


class Source(Enum):
    REPLAY = "replay"
    ALPACA = "alpaca"
    SNAPSHOT = "snapshot"
    MODEL = "model"


def classify(bid: Decimal | None, ask: Decimal | None, *, index: bool = False) -> Condition:
    """The quote's condition; an index's positive level is ``INDEX`` whatever its sides."""
    if index and bid is not None and ask is not None and bid > ZERO and ask > ZERO:
        return Condition.INDEX
    if bid is None or ask is None or bid <= ZERO or ask <= ZERO:
        return Condition.EMPTY
    if ask < bid:
        return Condition.CROSSED
    if ask == bid:
        return Condition.LOCKED
    return Condition.USABLE


class Tick:
    """One quote. Immutable by convention; slots because a replayed day is 100k of them.

    ``quote_at_ns`` is nanoseconds since the epoch (recorded feeds carry nanoseconds).
    ``origin`` is the recorded tick a replayed one was moved from. ``content`` and
    ``encoded`` are where the wire layer caches the tick's encoding, so a replayed day
    re-encodes only times and sequences and fan-out encodes a tick once for everyone.
    ``model`` holds a model quote's inputs (``option_model.ModelInputs``), None otherwise.
    """

    __slots__ = (
        "ask",
        "ask_size",
        "bid",
        "bid_size",
        "condition",
        "content",
        "encoded",
        "model",
        "origin",
        "quote_at_ns",
        "sequence",
        "source",
        "symbol",
    )

    def __init__(
        self,
        symbol: str,
        quote_at_ns: int,
        sequence: int,
        bid: Decimal | None,
        bid_size: Decimal | None,
        ask: Decimal | None,
        ask_size: Decimal | None,
        condition: Condition,
        source: Source,
    ) -> None:
        self.symbol = symbol
        self.quote_at_ns = quote_at_ns
        self.sequence = sequence
        self.bid = bid
        self.bid_size = bid_size
        self.ask = ask
        self.ask_size = ask_size
        self.condition = condition
        self.source = source
        self.origin: Tick = self
        self.content: bytes | None = None
        self.encoded: bytes | None = None
        self.model: ModelInputs | None = None

    @classmethod
    def quote(
        cls,
        symbol: str,
        quote_at_ns: int,
        sequence: int,
        bid: Decimal | None,
        bid_size: Decimal | None,
        ask: Decimal | None,
        ask_size: Decimal | None,
        source: Source,
        *,
        index: bool = False,
    ) -> Tick:
        """A tick whose condition is judged from its prices (``index``: an index level)."""
        return cls(symbol, quote_at_ns, sequence, bid, bid_size, ask, ask_size, classify(bid, ask, index=index), source)

    def moved(self, quote_at_ns: int, sequence: int) -> Tick:
        """The same quote at another time and place in the feed (a replayed day)."""
        tick = Tick(
            self.symbol,
            quote_at_ns,
            sequence,
            self.bid,
            self.bid_size,
            self.ask,
            self.ask_size,
            self.condition,
            self.source,
        )
        tick.origin = self.origin
        return tick

    @property
    def usable(self) -> bool:
        return self.condition is Condition.USABLE

    @property
    def mid(self) -> Decimal | None:
        """(bid + ask) / 2 of a usable quote, or an index's level; None otherwise."""
        usable = self.condition is Condition.USABLE or self.condition is Condition.INDEX
        if usable and self.bid is not None and self.ask is not None:  # both priced when usable
            return (self.bid + self.ask) / 2
        return None

    def key(self) -> tuple[object, ...]:
        """Everything that identifies the tick's content, for comparisons in tests and replays."""
        return (
            self.symbol,
            self.quote_at_ns,
            self.sequence,
            self.bid,
            self.bid_size,
            self.ask,
            self.ask_size,
            self.condition,
            self.source,
            self.model,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tick) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash((self.symbol, self.sequence))

    def __repr__(self) -> str:
        return (
            f"Tick({self.symbol} #{self.sequence} @{self.quote_at_ns} {self.bid}x{self.bid_size} / "
            f"{self.ask}x{self.ask_size} {self.condition.value})"
        )


class LiveSequencer:
    """Sequence numbers for a live feed that carries none: the quote's time in
    nanoseconds, bumped by one when a symbol's quotes share or go back in time. They
    survive restarts (time moves on) and strictly increase per symbol."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def next(self, symbol: str, quote_at_ns: int) -> int:
        sequence = max(quote_at_ns, self._last.get(symbol, 0) + 1)
        self._last[symbol] = sequence
        return sequence
