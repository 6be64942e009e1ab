"""Example strategies, registered by name for ``mbt backtest NAME`` and POST /api/mbt/backtests.

* ``grid``: resting limits around the market (the benchmark scenario): K slots of ``qty``
  shares, even slots buy ``offset`` below the mid, odd slots sell above it; when a slot
  fills it is placed again at the mid of the filling quote less (buys) or plus (sells)
  its offset. Needs a margin account (the sells rest without shares to sell).
* ``momentum``: each session, 30 minutes after the open, buy a symbol that rose since the
  open, protected by a stop-loss and a take-profit (one cancels the other); flat 5
  minutes before the close.
* ``covered_call``: holds 100 shares of ``symbol`` per contract (bought at the market) and
  each week sells that many calls expiring that Friday, at the first listed strike at
  least ``otm_pct`` above the market, at their bid; the calls expire worthless or are
  assigned at the Friday close, and shares called away are bought again at the next
  session. A cash account: the shares cover the calls (the accounts domain locks them).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal

from services.common.errors import DomainError, invalid_argument
from services.common.instruments import CALL, SymbolSpec
from services.matcher.backtest.ledger import FillRecord
from services.matcher.backtest.strategy import Context, OptionQuotes, Strategy

CENT = Decimal("0.01")
MINUTE_NS = 60 * 1_000_000_000
SHARES_PER_CONTRACT = 100
FRIDAY = 4


def mid_cents(ctx: Context, symbol: str) -> Decimal | None:
    """The mid of the latest usable quote, rounded down to the cent."""
    tick = ctx.quote(symbol)
    if tick is None or tick.bid <= 0 or tick.ask <= tick.bid:
        return None
    return ((tick.bid + tick.ask) / 2).quantize(CENT, ROUND_FLOOR)


class Grid(Strategy):
    name = "grid"
    description = "resting limit orders around the market, each fill re-placing its slot"
    account_type = "margin"

    def __init__(self, params=None, *, offset: Callable[[int, int], int] | None = None) -> None:
        super().__init__(params)
        self.symbol = self.param("symbol", "AMZN").upper()
        self.symbols = (self.symbol,)
        self.slots = int(self.param("slots", "10"))
        self.qty = self.param("qty", "10")
        self.step = self.decimal_param("step_cents", "5")
        # The price the first orders are placed around; default: the mid when the grid starts.
        self.center = self.decimal_param("center", "0")
        if not 1 <= self.slots <= 100_000:
            raise invalid_argument("slots must be between 1 and 100000", "slots")
        # offset(slot, quote sequence) in cents; by default fixed per slot.
        self.offset = offset or (lambda slot, _sequence: int(self.step) * (slot // 2 + 1))
        self.slot_of: dict[str, int] = {}

    def on_start(self, ctx: Context) -> None:
        mid = self.center or mid_cents(ctx, self.symbol)
        if mid is None:  # before the first quote of the day: a minute after the open
            open_ns, _ = ctx.next_session()
            if open_ns <= ctx.now_ns:
                raise DomainError("FAILED_PRECONDITION", f"no usable {self.symbol} quote to place the grid around")
            ctx.schedule(open_ns + MINUTE_NS, self.on_start)
            return
        for slot in range(self.slots):
            self.place(ctx, slot, mid, 0)

    def place(self, ctx: Context, slot: int, mid: Decimal, sequence: int) -> None:
        away = Decimal(self.offset(slot, sequence)) * CENT
        buy = slot % 2 == 0
        try:
            order = ctx.submit(
                symbol=self.symbol,
                side="buy" if buy else "sell",
                qty=self.qty,
                order_type="limit",
                limit_price=mid - away if buy else mid + away,
                time_in_force="gtc",
            )
        except DomainError as refusal:
            if refusal.reason != "INSUFFICIENT_BUYING_POWER":
                raise
            return  # the slot stays empty
        self.slot_of[order.order_id] = slot

    def on_fill(self, ctx: Context, fill: FillRecord) -> None:
        slot = self.slot_of.pop(fill.order_id)
        mid = ((fill.bid_price + fill.ask_price) / 2).quantize(CENT, ROUND_FLOOR)
        self.place(ctx, slot, mid, fill.quote_sequence)


class Momentum(Strategy):
    name = "momentum"
    description = "buy what rose since the open, with a stop-loss and a take-profit; flat before the close"
    # The stop-loss and the take-profit both sell the same shares: a cash account holds
    # the shares of the first, so the second needs margin until OCO orders exist.
    account_type = "margin"

    def __init__(self, params=None) -> None:
        super().__init__(params)
        self.symbols = tuple(s.strip().upper() for s in self.param("symbols", "AMZN,GOOG").split(",") if s.strip())
        self.notional = self.decimal_param("notional", "20000")
        self.stop_loss = self.decimal_param("stop_loss_pct", "0.5") / 100
        self.take_profit = self.decimal_param("take_profit_pct", "0.5") / 100
        self.opening: dict[str, Decimal | None] = {}  # None: no usable quote at the open
        self.exits: dict[str, tuple[str, str]] = {}  # symbol -> (stop order, take-profit order)

    def on_start(self, ctx: Context) -> None:
        self._plan(ctx)

    def on_session_close(self, ctx: Context, day: date) -> None:
        self._plan(ctx)

    def _plan(self, ctx: Context) -> None:
        open_ns, close_ns = ctx.next_session()
        if ctx.now_ns < open_ns:
            ctx.schedule(open_ns + MINUTE_NS, self._note_open)
        else:
            for symbol in self.symbols:
                self.opening.setdefault(symbol, mid_cents(ctx, symbol))
        ctx.schedule(max(ctx.now_ns, open_ns + 30 * MINUTE_NS), self._enter)
        ctx.schedule(max(ctx.now_ns, close_ns - 5 * MINUTE_NS), self._flatten)

    def _note_open(self, ctx: Context) -> None:
        self.opening = {symbol: mid_cents(ctx, symbol) for symbol in self.symbols}

    def _enter(self, ctx: Context) -> None:
        for symbol in self.symbols:
            start, now, tick = self.opening.get(symbol), mid_cents(ctx, symbol), ctx.quote(symbol)
            held = ctx.account.positions.get(symbol)
            if start is None or now is None or tick is None or now <= start or (held is not None and held.qty != 0):
                continue
            qty = (self.notional / tick.ask).to_integral_value(ROUND_DOWN)
            if qty <= 0:
                continue
            try:
                ctx.submit(
                    symbol=symbol,
                    side="buy",
                    qty=qty,
                    order_type="market",
                    time_in_force="day",
                    client_order_id=f"entry-{symbol}-{ctx.now.date()}",
                )
            except DomainError as refusal:
                if refusal.reason not in ("STALE_QUOTE", "UNUSABLE_QUOTE"):
                    raise  # no fresh quote to enter on: skip the day

    def on_fill(self, ctx: Context, fill: FillRecord) -> None:
        if fill.side == "buy":
            stop = (fill.price * (1 - self.stop_loss)).quantize(CENT)
            target = (fill.price * (1 + self.take_profit)).quantize(CENT)
            stop_order = ctx.submit(
                symbol=fill.symbol, side="sell", qty=fill.qty, order_type="stop", stop_price=stop, time_in_force="day"
            )
            target_order = ctx.submit(
                symbol=fill.symbol,
                side="sell",
                qty=fill.qty,
                order_type="limit",
                limit_price=target,
                time_in_force="day",
            )
            self.exits[fill.symbol] = (stop_order.order_id, target_order.order_id)
            return
        for order_id in self.exits.pop(fill.symbol, ()):  # one exit filled: cancel the other
            if order_id != fill.order_id and ctx.order(order_id).is_working:
                ctx.cancel(order_id)

    def _flatten(self, ctx: Context) -> None:
        for symbol in self.symbols:
            for order_id in self.exits.pop(symbol, ()):
                if ctx.order(order_id).is_working:
                    ctx.cancel(order_id)
            position = ctx.account.positions.get(symbol)
            if position is not None and position.qty > 0:
                ctx.submit(symbol=symbol, side="sell", qty=position.qty, order_type="market", time_in_force="day")


class CoveredCall(Strategy):
    name = "covered_call"
    description = "hold the shares, sell a call expiring each Friday above the market; re-buy after an assignment"
    account_type = "cash"

    def __init__(self, params=None) -> None:
        super().__init__(params)
        self.symbol = self.param("symbol", "AMZN").strip().upper()
        self.symbols = (self.symbol,)
        self.contracts = int(self.param("contracts", "1"))
        if not 1 <= self.contracts <= 100:
            raise invalid_argument("contracts must be between 1 and 100", "contracts")
        self.otm = self.decimal_param("otm_pct", "2") / 100
        if not Decimal("-0.2") <= self.otm <= Decimal("0.2"):
            raise invalid_argument("otm_pct must be between -20 and 20", "otm_pct")
        # This week's calls (followed from Monday), the strikes around the one it sells.
        self.options = (
            OptionQuotes(
                self.symbol, CALL, self.otm - Decimal("0.01"), self.otm + Decimal("0.05"), days_after=7, days_before=4
            ),
        )
        self.sold_for: set[date] = set()  # expiries a call was sold for

    @property
    def shares_needed(self) -> Decimal:
        return Decimal(self.contracts * SHARES_PER_CONTRACT)

    def on_start(self, ctx: Context) -> None:
        self._plan(ctx)

    def on_session_close(self, ctx: Context, day: date) -> None:
        self._plan(ctx)

    def _plan(self, ctx: Context) -> None:
        open_ns, _ = ctx.next_session()
        ctx.schedule(max(ctx.now_ns, open_ns + 30 * MINUTE_NS), self._trade)

    def _shares(self, ctx: Context) -> Decimal:
        position = ctx.account.positions.get(self.symbol)
        return position.qty if position is not None else Decimal(0)

    def _trade(self, ctx: Context) -> None:
        missing = self.shares_needed - self._shares(ctx)
        if missing <= 0:
            self._sell_call(ctx)
        elif not ctx.open_orders(self.symbol):
            ctx.submit(symbol=self.symbol, side="buy", qty=missing, order_type="market", time_in_force="day")

    def on_fill(self, ctx: Context, fill: FillRecord) -> None:
        if fill.symbol == self.symbol and self._shares(ctx) >= self.shares_needed:
            self._sell_call(ctx)

    def _sell_call(self, ctx: Context) -> None:
        """Sell this week's call (expiring by Friday) unless it was sold already."""
        today = ctx.now.date()
        friday = today + timedelta(days=(FRIDAY - today.weekday()) % 7)
        calls = [
            c
            for c in ctx.option_contracts(self.symbol)
            if c.option_type == CALL and c.expiration is not None and today <= c.expiration <= friday
        ]
        mid = mid_cents(ctx, self.symbol)
        if not calls or mid is None:
            return
        expiry = min(c.expiration for c in calls if c.expiration is not None)
        if expiry in self.sold_for:
            return
        target = mid * (1 + self.otm)
        above = [c for c in calls if c.expiration == expiry and (c.strike or Decimal(0)) >= target]
        contract: SymbolSpec | None = min(above, key=lambda c: c.strike or Decimal(0), default=None)
        quote = ctx.quote(contract.symbol) if contract is not None else None
        if contract is None or quote is None or quote.bid <= 0:
            return  # no strike that far out, or no bid to sell into: skip the week
        ctx.submit(
            symbol=contract.symbol,
            side="sell",
            qty=self.contracts,
            order_type="limit",
            limit_price=quote.bid,
            time_in_force="day",
            position_intent="sell_to_open",
        )
        self.sold_for.add(expiry)


REGISTRY: dict[str, type[Strategy]] = {"grid": Grid, "momentum": Momentum, "covered_call": CoveredCall}


def strategy_named(name: str, params: dict[str, str]) -> Strategy:
    cls = REGISTRY.get(name)
    if cls is None:
        raise invalid_argument(f"unknown strategy {name!r}; registered: {', '.join(sorted(REGISTRY))}", "strategy")
    return cls(params)
