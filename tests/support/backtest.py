"""Builders for backtest tests: small feeds of made-up quotes on real XNYS sessions, and a
strategy that plays a list of timed actions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from services.common.errors import DomainError
from services.marketdata.domain.ticks import Source
from services.marketdata.domain.ticks import Tick as FeedTick
from services.matcher.backtest.feed import Feed
from services.matcher.backtest.sources import sessions
from services.matcher.backtest.strategy import Strategy

SECOND = 1_000_000_000
# 2012-06-21: XNYS opens 13:30 UTC, closes 20:00 UTC; 2012-06-22 the same.
OPEN_NS = 1340285400 * SECOND
CLOSE_NS = 1340308800 * SECOND
NEXT_OPEN_NS = OPEN_NS + 86_400 * SECOND
CENT = Decimal("0.01")


def cents(value: int) -> Decimal:
    return Decimal(value) * CENT


def quote(
    symbol: str, at_ns: int, sequence: int, bid: int, ask: int, bid_size: int = 100, ask_size: int = 100
) -> FeedTick:
    """A quote with prices in cents (0 or less: an empty side)."""
    return FeedTick.quote(
        symbol,
        at_ns,
        sequence,
        cents(bid) if bid > 0 else None,
        Decimal(bid_size),
        cents(ask) if ask > 0 else None,
        Decimal(ask_size),
        Source.REPLAY,
    )


def feed_of(ticks: Sequence[FeedTick]) -> Feed:
    return Feed.from_ticks(list(ticks), sessions(), "test quotes")


@dataclass
class Scripted(Strategy):
    """Plays ``actions`` — (time ns, verb, fields) with verb submit, cancel or replace; a
    cancel or replace names the client order id — and, with ``take_profit``, answers each
    buy fill with a sell limit 10 cents higher; sees every quote of ``quotes``. Refusals are
    kept, not raised."""

    actions: Sequence[tuple[int, str, dict]] = ()
    take_profit: bool = False
    quotes: tuple[str, ...] = ()
    refusals: list[tuple[int, str]] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    seen: list[tuple[int, str, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__({})

    def on_start(self, ctx) -> None:
        for at_ns, verb, fields in self.actions:
            ctx.schedule(at_ns, lambda c, v=verb, f=fields: self._act(c, v, f))

    def _act(self, ctx, verb: str, fields: dict) -> None:
        try:
            if verb == "submit":
                order = ctx.submit(**fields)
                self.ids[order.client_order_id] = order.order_id
            elif verb == "cancel":
                ctx.cancel(self.ids.get(fields["client_order_id"], "ord_unknown"))
            else:
                changes = {k: v for k, v in fields.items() if k != "client_order_id"}
                ctx.replace(self.ids.get(fields["client_order_id"], "ord_unknown"), **changes)
        except DomainError as refusal:
            self.refusals.append((ctx.now_ns, refusal.reason))

    def on_quote(self, ctx, tick) -> None:
        """Keeps what it saw; on a quote whose bid ends in 7 cents, also buys 10 at the ask."""
        self.seen.append((tick.at_ns, tick.symbol, tick.sequence, len(ctx.open_orders())))
        if tick.bid > 0 and tick.ask > tick.bid and int(tick.bid * 100) % 10 == 7:
            self._act(
                ctx,
                "submit",
                {
                    "symbol": tick.symbol,
                    "side": "buy",
                    "qty": "10",
                    "order_type": "limit",
                    "limit_price": tick.ask,
                    "time_in_force": "day",
                },
            )

    def on_fill(self, ctx, fill) -> None:
        if self.take_profit and fill.side == "buy":
            self._act(
                ctx,
                "submit",
                {
                    "symbol": fill.symbol,
                    "side": "sell",
                    "qty": fill.qty,
                    "order_type": "limit",
                    "limit_price": fill.price + Decimal("0.10"),
                    "time_in_force": "gtc",
                    "client_order_id": f"tp-{fill.fill_id}",
                },
            )
