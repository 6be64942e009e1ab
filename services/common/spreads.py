"""Option structures (pure; shared by orders, the matcher and accounts): the legs of a
multi-leg order, the name of the strategy they make, and the structure's net prices.

Conventions, as Alpaca's ``mleg`` orders and DESIGN §6: an order's ``qty`` counts spreads
and each leg trades ``ratio`` contracts per spread; a net price is per spread and per share
of premium (× 100 per contract, like a single option's price), positive for a debit paid and
negative for a credit received.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from services.common.instruments import CALL, PUT, SymbolSpec
from services.common.trading import PositionIntent, Side, resolve_intent

TWO = Decimal(2)


@dataclass(frozen=True)
class OptionLeg:
    """One leg: ``ratio`` contracts of ``contract`` bought or sold per spread."""

    contract: SymbolSpec
    side: Side
    ratio: int = 1

    @property
    def sign(self) -> int:
        """+1 for a bought leg, -1 for a sold one: a leg's price enters the net with it."""
        return 1 if self.side is Side.BUY else -1


class Strategy(StrEnum):
    """Names for the structures income traders send (Cboe/OCC "Characteristics and Risks of
    Standardized Options", chapter on spreads and combinations). Each named one has a fixed
    sign: a debit structure (payoff at expiry never negative) or a credit one (never positive)."""

    LONG_CALL = "long_call"
    SHORT_CALL = "short_call"
    LONG_PUT = "long_put"
    SHORT_PUT = "short_put"
    VERTICAL_DEBIT = "vertical_debit"  # buy the call below / the put above the one sold
    VERTICAL_CREDIT = "vertical_credit"  # sell the call below / the put above the one bought
    IRON_CONDOR = "iron_condor"  # sell a put and a call, buy the put below and the call above
    REVERSE_IRON_CONDOR = "reverse_iron_condor"
    IRON_BUTTERFLY = "iron_butterfly"  # an iron condor whose sold put and call share a strike
    REVERSE_IRON_BUTTERFLY = "reverse_iron_butterfly"
    LONG_STRADDLE = "long_straddle"  # a call and a put at one strike, both bought
    SHORT_STRADDLE = "short_straddle"
    LONG_STRANGLE = "long_strangle"  # a call and a put at two strikes, both bought
    SHORT_STRANGLE = "short_strangle"
    CUSTOM = "custom"  # anything else (ratio spreads, butterflies, risk reversals)


@dataclass(frozen=True)
class Structure:
    strategy: Strategy
    # The strikes' width per share: a vertical's two strikes apart, the wider wing of an
    # iron condor or butterfly, a strangle's put-to-call distance; 0 for a single option or
    # a straddle; the widest strike distance of a custom structure.
    width: Decimal


def classify(legs: Sequence[OptionLeg]) -> Structure:
    """The strategy ``legs`` make, from their rights, strikes, sides and ratios. Legs on more
    than one underlying or expiry, or with a ratio other than 1, are ``custom``."""
    strikes = [leg.contract.strike or Decimal(0) for leg in legs]
    spread_width = max(strikes) - min(strikes) if strikes else Decimal(0)
    named = _named(legs) if _one_series_group(legs) and all(leg.ratio == 1 for leg in legs) else None
    if named is None:
        return Structure(Strategy.CUSTOM, spread_width)
    return named


def _one_series_group(legs: Sequence[OptionLeg]) -> bool:
    return (
        bool(legs)
        and all(leg.contract.is_option for leg in legs)
        and len({(leg.contract.underlying, leg.contract.expiration) for leg in legs}) == 1
    )


def _named(legs: Sequence[OptionLeg]) -> Structure | None:
    if len(legs) == 1:
        return _single(legs[0])
    if len(legs) == 2:
        return _pair(legs[0], legs[1])
    if len(legs) == 4:
        return _iron(legs)
    return None


def _single(leg: OptionLeg) -> Structure:
    bought = leg.side is Side.BUY
    if leg.contract.option_type == CALL:
        return Structure(Strategy.LONG_CALL if bought else Strategy.SHORT_CALL, Decimal(0))
    return Structure(Strategy.LONG_PUT if bought else Strategy.SHORT_PUT, Decimal(0))


def _pair(first: OptionLeg, second: OptionLeg) -> Structure | None:
    k1, k2 = _strike(first), _strike(second)
    if first.contract.option_type == second.contract.option_type:
        if first.side is second.side or k1 == k2:
            return None
        bought, sold = (first, second) if first.side is Side.BUY else (second, first)
        # A debit vertical buys the more valuable option: the lower call or the higher put.
        more_valuable = (
            _strike(bought) < _strike(sold) if bought.contract.option_type == CALL else _strike(bought) > _strike(sold)
        )
        return Structure(Strategy.VERTICAL_DEBIT if more_valuable else Strategy.VERTICAL_CREDIT, abs(k1 - k2))
    if first.side is not second.side:
        return None
    long = first.side is Side.BUY
    if k1 == k2:
        return Structure(Strategy.LONG_STRADDLE if long else Strategy.SHORT_STRADDLE, Decimal(0))
    return Structure(Strategy.LONG_STRANGLE if long else Strategy.SHORT_STRANGLE, abs(k1 - k2))


def _iron(legs: Sequence[OptionLeg]) -> Structure | None:
    puts = sorted((leg for leg in legs if leg.contract.option_type == PUT), key=_strike)
    calls = sorted((leg for leg in legs if leg.contract.option_type == CALL), key=_strike)
    if len(puts) != 2 or len(calls) != 2:
        return None
    (low_put, high_put), (low_call, high_call) = puts, calls
    inner, outer = (high_put, low_call), (low_put, high_call)
    if (
        _strike(high_put) > _strike(low_call)
        or _strike(low_put) == _strike(high_put)
        or _strike(low_call) == _strike(high_call)
    ):
        return None
    if all(leg.side is Side.SELL for leg in inner) and all(leg.side is Side.BUY for leg in outer):
        short = True
    elif all(leg.side is Side.BUY for leg in inner) and all(leg.side is Side.SELL for leg in outer):
        short = False
    else:
        return None
    width = max(_strike(high_put) - _strike(low_put), _strike(high_call) - _strike(low_call))
    if _strike(high_put) == _strike(low_call):
        return Structure(Strategy.IRON_BUTTERFLY if short else Strategy.REVERSE_IRON_BUTTERFLY, width)
    return Structure(Strategy.IRON_CONDOR if short else Strategy.REVERSE_IRON_CONDOR, width)


def _strike(leg: OptionLeg) -> Decimal:
    return leg.contract.strike or Decimal(0)


# --- net prices ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LegQuote:
    """A leg as priced: its side and ratio, and its contract's NBBO (per share)."""

    side: Side
    ratio: int
    bid: Decimal
    ask: Decimal


def net_price(priced: Sequence[tuple[Side, int, Decimal]]) -> Decimal:
    """The net of leg prices (side, ratio, price): bought legs add, sold legs subtract."""
    return sum(((price if side is Side.BUY else -price) * ratio for side, ratio, price in priced), Decimal(0))


def natural(quotes: Sequence[LegQuote]) -> Decimal:
    """What the structure costs at once (its net ask): buy legs at the ask, sell legs at the bid."""
    return net_price([(q.side, q.ratio, q.ask if q.side is Side.BUY else q.bid) for q in quotes])


def net_bid(quotes: Sequence[LegQuote]) -> Decimal:
    """What selling the structure back at once would bring (its net bid): the opposite sides."""
    return net_price([(q.side, q.ratio, q.bid if q.side is Side.BUY else q.ask) for q in quotes])


def net_mid(quotes: Sequence[LegQuote]) -> Decimal:
    """The net of the legs' mids, unrounded (half a cent is possible)."""
    return (natural(quotes) + net_bid(quotes)) / TWO


def resolve_leg_intents(
    legs: Sequence[OptionLeg], qty: Decimal, intents: Sequence[PositionIntent | None], positions: Mapping[str, Decimal]
) -> tuple[PositionIntent, ...]:
    """Each leg's intent (``resolve_intent`` for ratio × qty contracts against the account's
    signed position in that contract, 0 when there is none), in leg order."""
    if len(intents) != len(legs):
        raise ValueError(f"{len(intents)} intents for {len(legs)} legs")
    return tuple(
        resolve_intent(
            leg.side,
            leg.ratio * qty,
            intent,
            positions.get(leg.contract.symbol, Decimal(0)),
            f"legs[{index}].position_intent",
        )
        for index, (leg, intent) in enumerate(zip(legs, intents, strict=True))
    )
