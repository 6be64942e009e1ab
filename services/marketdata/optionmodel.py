"""Model option quotes in replay: for an underlying the replay has ticks of and no recorded
option quotes of (the bundled AMZN and GOOG day), the option quote model
(``domain.option_model``) prices the listed contracts (``domain.options``) from each usable
underlying tick.

A model quote is named by the underlying tick it was computed from: its ``sequence`` and
``quote_at`` are that tick's, so sequences increase strictly per contract, are the same run
after run, and a quote can be recomputed from its name. The stream and the history carry a
contract's model quote only where its bid or ask differs from the model's at the previous
usable underlying tick; the latest quote is the model at the latest usable underlying tick
(the same prices as the last one streamed). A contract's quotes stop at the close of its
last trading day.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal

from services.common.instruments import CALL, PUT, SymbolSpec, occ_symbol, parse_symbol
from services.marketdata.domain import option_model
from services.marketdata.domain.calendar import MarketCalendar, new_york_date
from services.marketdata.domain.calibration import Calibration
from services.marketdata.domain.options import last_trade_ns, listed_expirations, listed_strikes
from services.marketdata.domain.reference import ChainContract, OptionChain
from services.marketdata.domain.ticks import Source, Tick
from services.marketdata.timeline import ReplayTimeline

# Underlying ticks read at a time while computing a contract's history.
HISTORY_BATCH = 1000


def reference_prices(timeline: ReplayTimeline, symbols: Iterable[str]) -> dict[str, Decimal]:
    """Each symbol's first usable mid in the recording: where its listed strikes centre."""
    wanted = set(symbols)
    found: dict[str, Decimal] = {}
    for tick in timeline.recording.ticks:
        if tick.symbol in wanted and tick.symbol not in found and tick.usable and tick.mid is not None:
            found[tick.symbol] = tick.mid
            if len(found) == len(wanted):
                break
    return found


class OptionQuoteModel:
    def __init__(
        self,
        timeline: ReplayTimeline,
        calendar: MarketCalendar,
        calibration: Calibration,
        *,
        references: dict[str, Decimal],
        rate: Decimal,
        dividend_yield: Decimal = Decimal(0),
    ) -> None:
        self.timeline = timeline
        self.calendar = calendar
        self.calibration = calibration
        self.references = references
        self.rate = rate
        self.dividend_yield = dividend_yield
        self._rate = float(rate)
        self._dividend_yield = float(dividend_yield)
        self._expirations_by_day: dict[date, tuple[date, ...]] = {}
        self._strikes = {symbol: frozenset(listed_strikes(price)) for symbol, price in references.items()}
        # Streaming: the contracts followed, by underlying, with the (bid, ask) last computed.
        self._tracked: dict[str, dict[str, tuple[SymbolSpec, int, tuple | None]]] = {}

    @property
    def underlyings(self) -> frozenset[str]:
        return frozenset(self.references)

    def covers(self, spec: SymbolSpec) -> bool:
        return spec.is_option and spec.underlying in self.references

    def _expirations(self, today: date) -> tuple[date, ...]:
        if today not in self._expirations_by_day:
            self._expirations_by_day[today] = tuple(listed_expirations(today, self.calendar))
        return self._expirations_by_day[today]

    def listed(self, spec: SymbolSpec, now_ns: int) -> bool:
        """Whether the model lists the contract on the trading day of ``now_ns``."""
        return (
            self.covers(spec)
            and spec.root == spec.underlying
            and spec.strike in self._strikes[spec.underlying]
            and spec.expiration in self._expirations(new_york_date(now_ns))
        )

    def contracts(self, underlying: str, now_ns: int, expiration: date | None) -> list[SymbolSpec]:
        """The listed contracts of ``underlying`` (of one expiry), by expiry, strike, type."""
        strikes = sorted(self._strikes[underlying])
        return [
            parse_symbol(occ_symbol(underlying, expiry, kind, strike))
            for expiry in self._expirations(new_york_date(now_ns))
            if expiration in (None, expiry)
            for strike in strikes
            for kind in (CALL, PUT)
        ]

    # -- quotes ----------------------------------------------------------------------

    def _price(self, spec: SymbolSpec, underlying: Tick, last_trade: int) -> option_model.ModelQuote | None:
        years = option_model.years_between(underlying.quote_at_ns, last_trade)
        spot = underlying.mid
        if years <= 0 or spot is None:
            return None
        bid, ask = underlying.bid, underlying.ask
        half_spread = (ask - bid) / 2 if bid is not None and ask is not None else Decimal(0)
        return option_model.model_quote(
            spec, spot, years, self._rate, self._dividend_yield, self.calibration, half_spread
        )

    def _tick(self, spec: SymbolSpec, underlying: Tick, last_trade: int, priced: option_model.ModelQuote) -> Tick:
        tick = Tick.quote(
            spec.symbol, underlying.quote_at_ns, underlying.sequence, priced.bid, None, priced.ask, None, Source.MODEL
        )
        years = option_model.years_between(underlying.quote_at_ns, last_trade)
        spot = underlying.mid
        if spot is None:
            raise ValueError(f"{underlying.symbol} has no mid to price {spec.symbol} from")
        tick.model = option_model.inputs(spec, underlying.sequence, spot, years, self.rate, self.dividend_yield, priced)
        return tick

    def quote(self, spec: SymbolSpec, underlying: Tick, last_trade: int) -> Tick | None:
        """The model quote from a usable underlying tick; None at or after the last trade."""
        priced = self._price(spec, underlying, last_trade)
        return None if priced is None else self._tick(spec, underlying, last_trade, priced)

    def _last_trade(self, spec: SymbolSpec) -> int:
        return last_trade_ns(spec, self.calendar) or 0

    def latest(self, spec: SymbolSpec, at_ns: int) -> Tick | None:
        """The model at the latest usable underlying tick at or before ``at_ns`` (and before
        the contract's last trading close)."""
        last_trade = self._last_trade(spec)
        at_ns = min(at_ns, last_trade - 1)
        if not self.listed(spec, at_ns):
            return None
        underlying = self.timeline.latest(spec.underlying, at_ns, usable=True)
        return None if underlying is None else self.quote(spec, underlying, last_trade)

    def history(self, spec: SymbolSpec, from_ns: int, to_ns: int, after_sequence: int, limit: int) -> list[Tick]:
        """Up to ``limit`` model quotes with from <= time <= to and sequence > after_sequence:
        those whose bid or ask changed from the previous usable underlying tick's."""
        last_trade = self._last_trade(spec)
        to_ns = min(to_ns, last_trade - 1)
        if not self.listed(spec, to_ns):
            return []
        symbol = spec.underlying
        # A page continues after a quote it listed, which is its own underlying tick's model.
        resumed = self.timeline.history(symbol, from_ns, to_ns, after_sequence - 1, 1) if after_sequence else []
        before: Tick | None
        if resumed and resumed[0].sequence == after_sequence and resumed[0].usable:
            before, after = resumed[0], after_sequence
        else:
            before, after = self.timeline.latest(symbol, from_ns - 1, usable=True), 0
        previous = None if before is None else self.quote(spec, before, last_trade)
        prices = None if previous is None else (previous.bid, previous.ask)
        found: list[Tick] = []
        while len(found) < limit:
            batch = self.timeline.history(symbol, from_ns, to_ns, after, HISTORY_BATCH)
            for underlying in batch:
                priced = self._price(spec, underlying, last_trade) if underlying.usable else None
                if priced is None or (priced.bid, priced.ask) == prices:
                    continue
                prices = (priced.bid, priced.ask)
                if underlying.sequence > after_sequence:
                    found.append(self._tick(spec, underlying, last_trade, priced))
                    if len(found) == limit:
                        break
            if len(batch) < HISTORY_BATCH:
                break
            after = batch[-1].sequence
        return found

    def chain(self, underlying: str, expiration: date | None, at_ns: int) -> OptionChain | None:
        """The listed contracts' model quotes at the latest usable underlying tick."""
        tick = self.timeline.latest(underlying, at_ns, usable=True)
        if tick is None:
            return None
        contracts = [
            ChainContract(spec, self.quote(spec, tick, self._last_trade(spec)))
            for spec in self.contracts(underlying, at_ns, expiration)
        ]
        return OptionChain(underlying, tick, contracts, tick.quote_at_ns, Source.MODEL)

    # -- streaming -------------------------------------------------------------------

    def track(self, specs: Iterable[SymbolSpec], at_ns: int) -> None:
        """Follow contracts from ``at_ns`` on: their next quotes are those that change. A
        contract not listed then is not followed (it gets no quotes)."""
        for spec in specs:
            if not self.listed(spec, at_ns):
                continue
            last_trade = self._last_trade(spec)
            latest = self.latest(spec, at_ns)
            prices = None if latest is None else (latest.bid, latest.ask)
            self._tracked.setdefault(spec.underlying, {})[spec.symbol] = (spec, last_trade, prices)

    def untrack(self, symbols: Iterable[str]) -> None:
        for symbol in symbols:
            for contracts in self._tracked.values():
                contracts.pop(symbol, None)
        for underlying in [u for u, contracts in self._tracked.items() if not contracts]:
            del self._tracked[underlying]

    @property
    def tracked_underlyings(self) -> frozenset[str]:
        return frozenset(self._tracked)

    def expand(self, ticks: Iterable[Tick], wanted: frozenset[str] | set[str]) -> Iterator[Tick]:
        """The feed with each followed contract's changed model quote right after the
        underlying tick it was computed from; underlying ticks nobody wants are left out."""
        tracked = self._tracked
        for tick in ticks:
            if tick.symbol in wanted:
                yield tick
            contracts = tracked.get(tick.symbol)
            if not contracts or not tick.usable:
                continue
            for symbol, (spec, last_trade, prices) in list(contracts.items()):
                priced = self._price(spec, tick, last_trade)
                if priced is not None and (priced.bid, priced.ask) != prices:
                    contracts[symbol] = (spec, last_trade, (priced.bid, priced.ask))
                    yield self._tick(spec, tick, last_trade, priced)
