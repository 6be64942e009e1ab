"""What the market-data service needs from a provider.

Live ticks go to the ``QuoteHub`` the provider is attached to, and only for symbols the
hub subscribed upstream (``subscribe`` is called once per symbol however many streams
want it). Everything else is answered on request.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import date
from typing import Any, Protocol

from services.common.instruments import SymbolSpec
from services.marketdata.domain.bars import Bar, Timeframe
from services.marketdata.domain.reference import Dividend, OptionChain
from services.marketdata.domain.ticks import Source, Tick
from services.marketdata.hub import QuoteHub


class Provider(Protocol):
    source: Source
    # services.marketdata.clockfeed mode of the clock it drives (wall, replay, stepped).
    clock_mode: str

    def attach(self, hub: QuoteHub) -> None:
        """Where live ticks go."""

    async def subscribe(self, symbols: list[str]) -> None:
        """Start live ticks for symbols nobody subscribed to yet."""

    async def unsubscribe(self, symbols: list[str]) -> None:
        """Stop live ticks for symbols nobody wants any more."""

    async def latest(self, spec: SymbolSpec) -> Tick | None:
        """The latest tick, real time."""

    async def latest_before(self, spec: SymbolSpec, at_ns: int) -> Tick | None:
        """The latest tick at or before ``at_ns`` (delayed tiers)."""

    async def history(
        self, spec: SymbolSpec, from_ns: int, to_ns: int, after_sequence: int, limit: int
    ) -> list[Tick] | None:
        """Ticks with from <= time <= to and sequence > after_sequence, in feed order; None
        when the provider keeps no such history (the service then reads its archive)."""

    async def bars(
        self, spec: SymbolSpec, timeframe: Timeframe, from_ns: int, to_ns: int, closed_by_ns: int, limit: int
    ) -> list[Bar]:
        """Up to ``limit`` bars of an equity starting in [from, to] that ended by
        ``closed_by_ns``, in time order (domain.bars rules: regular session, no empty bars)."""

    async def describe(self, spec: SymbolSpec) -> tuple[bool, bool]:
        """(known, tradable): a well-formed symbol may be unknown to the provider, and a
        known one may have no quotes."""

    async def option_chain(self, underlying: str, expiration: date | None, at_ns: int) -> OptionChain | None:
        """The chain as of ``at_ns`` (where the provider can go back; a live one answers now),
        or None when the provider has none for the underlying."""

    async def fetch_dividends(self, symbols: list[str], from_date: date, to_date: date) -> list[Dividend] | None:
        """Fresh dividends to cache, or None when the cached ones are all there is."""

    async def step(self, to_ns: int) -> int:
        """Stepped replay only: play every tick up to ``to_ns``; returns how many were handed over."""

    def background(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        """Long-running tasks (feed pumps, streams) to start with the server."""

    async def close(self) -> None: ...
