"""Reference data served next to quotes: option chains and cash dividends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from services.common.instruments import SymbolSpec
from services.marketdata.domain.option_model import Greeks
from services.marketdata.domain.ticks import Source, Tick


@dataclass(frozen=True)
class ChainContract:
    spec: SymbolSpec
    tick: Tick | None
    open_interest: Decimal | None = None
    volume: Decimal | None = None
    greeks: Greeks | None = None


@dataclass(frozen=True)
class OptionChain:
    underlying: str
    underlying_tick: Tick | None
    contracts: list[ChainContract]
    as_of_ns: int
    source: Source

    def for_expiry(self, expiration: date | None) -> OptionChain:
        if expiration is None:
            return self
        return self.with_contracts([c for c in self.contracts if c.spec.expiration == expiration])

    def with_contracts(self, contracts: list[ChainContract]) -> OptionChain:
        return OptionChain(self.underlying, self.underlying_tick, contracts, self.as_of_ns, self.source)


@dataclass(frozen=True)
class Dividend:
    """A cash dividend per share, as paid at the time (not split-adjusted)."""

    symbol: str
    ex_date: date
    cash_amount: Decimal
    record_date: date | None = None
    pay_date: date | None = None
