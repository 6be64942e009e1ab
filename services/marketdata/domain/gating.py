"""Tier gating of user-facing quotes (the market-data service decides, never the client).

Free sees quotes 15 minutes late; Pro and Pro+ see them in real time; only Pro+ may read
option quote history older than 30 days. The platform's own services (the matcher,
orders) and operators always see real time. An empty or unknown tier counts as Free.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.errors import DomainError
from services.marketdata.domain.reference import ChainContract, OptionChain
from services.marketdata.domain.ticks import Source, Tick

MINUTE_NS = 60 * 1_000_000_000
DAY_NS = 24 * 60 * MINUTE_NS
FREE_DELAY_NS = 15 * MINUTE_NS
OPTIONS_HISTORY_NS = 30 * DAY_NS

FREE, PRO, PRO_PLUS = "free", "pro", "pro_plus"
REAL_TIME_CALLERS = ("service", "ops")


@dataclass(frozen=True)
class Entitlement:
    """What one caller may see. ``delay_ns`` 0 is real time; ``options_history_ns`` None
    means unlimited option history."""

    tier: str
    delay_ns: int
    options_history_ns: int | None

    @property
    def delayed(self) -> bool:
        return self.delay_ns > 0

    def labels_delayed(self, tick: Tick) -> bool:
        """Whether ``tick``, served to this caller, says ``delayed``: every quote a delayed
        tier is served (latest, history, the option chain's) but a recorded snapshot, which
        everyone is served as of its time."""
        return self.delayed and tick.source is not Source.SNAPSHOT

    def check_option_history(self, from_ns: int, now_ns: int) -> None:
        if self.options_history_ns is not None and from_ns < now_ns - self.options_history_ns:
            raise DomainError(
                "PERMISSION_DENIED",
                f"option quote history older than {self.options_history_ns // DAY_NS} days needs the Pro+ tier",
                tier=self.tier,
            )


def entitlement(kind: str, tier: str) -> Entitlement:
    if kind in REAL_TIME_CALLERS:
        return Entitlement("internal", 0, None)
    if tier == PRO_PLUS:
        return Entitlement(PRO_PLUS, 0, None)
    if tier == PRO:
        return Entitlement(PRO, 0, OPTIONS_HISTORY_NS)
    return Entitlement(FREE, FREE_DELAY_NS, OPTIONS_HISTORY_NS)


def withhold_fresh_quotes(chain: OptionChain, visible_until_ns: int) -> OptionChain:
    """A delayed tier's chain: quotes newer than ``visible_until_ns`` are left out."""
    contracts = [
        c
        if c.tick is None or c.tick.quote_at_ns <= visible_until_ns
        else ChainContract(c.spec, None, c.open_interest, c.volume)
        for c in chain.contracts
    ]
    underlying = chain.underlying_tick
    if underlying is not None and underlying.quote_at_ns > visible_until_ns:
        underlying = None
    return OptionChain(chain.underlying, underlying, contracts, chain.as_of_ns, chain.source)
