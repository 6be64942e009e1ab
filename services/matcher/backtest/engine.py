"""The backtest engine: a strategy's orders worked by the live matcher's fill function
over a historical feed, in simulated time, on a simulated paper account.

Two paths give the same result (a property test holds them to it):

* ``jump`` (the default): the whole feed is known in advance, so each working order is
  scheduled on the first tick that could move it (feed.SymbolColumns' search: the first
  tradable tick whose ask or bid reaches the order's price), a heap orders those events
  across orders, timers and symbols, and the real ``decide`` runs on that tick only. A
  WAIT (a collar, say) reschedules from the next tick. Resting orders cost nothing
  between their events.
* ``tick``: every tick goes through the live matcher's OrderBook, as the matcher does.

What happens, in order, at one moment: timers (day-order expiries, then session closes
and the strategy's schedule) fire once every tick up to their time was delivered; on a
tick, every order that acts on it is decided (earliest accepted first), the outcomes are
applied to the account, then ``on_fill`` runs for each fill and ``on_quote`` for the
quote. An order submitted from a callback is first decided on the quote standing at its
acceptance and on the ticks already delivered at or after it, as the live matcher admits
an order.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from services.accounts.domain.rules import contract_multiplier
from services.common.errors import DomainError, invalid_argument, not_found
from services.common.ids import derived_id
from services.common.instruments import SymbolSpec, parse_symbol
from services.common.trading import AssetClass
from services.common.wire.conv import datetime_from_ns, datetime_to_ns
from services.marketdata.domain.calendar import xnys
from services.marketdata.domain.options import last_trade_ns
from services.matcher.backtest.feed import Feed, SymbolColumns
from services.matcher.backtest.ledger import (
    AccountView,
    FillRecord,
    LedgerEntry,
    Marks,
    OrderRecord,
    PaperAccount,
    account_type,
    fill_record,
    is_working,
    order_record,
    order_session,
    working_order,
)
from services.matcher.backtest.strategy import Context, Strategy, replace_request, submit_request
from services.matcher.book import OrderBook
from services.matcher.domain import (
    TERMINAL_ACTIONS,
    Action,
    Decision,
    MarketSession,
    OrderType,
    Side,
    Tick,
    TimeInForce,
    WorkingOrder,
    decide,
    evaluated_ticks,
    is_usable,
    required_price,
)
from services.orders import wire as orders_wire
from services.orders.domain.model import Instrument

MODES = ("jump", "tick")
SECOND_NS = 1_000_000_000

# Phases of what happens at one moment (the heap orders by position, time, then phase).
_EXPIRY, _TIMER, _ORDER, _QUOTE = 0, 1, 2, 3
_FIRST_TICK_DECIDES = frozenset({TimeInForce.IOC, TimeInForce.FOK})


class StrategyError(Exception):
    """A strategy callback raised: the backtest ends with this error."""


@dataclass(frozen=True)
class BacktestConfig:
    start_ns: int
    end_ns: int
    account_type: str = "cash"
    starting_cash: Decimal = Decimal("100000.00")
    collar_pct: Decimal = Decimal(5)
    max_quote_age_ns: int = 5 * SECOND_NS
    mode: str = "jump"
    user_id: str = "backtest"
    seed: str = "0"

    def __post_init__(self) -> None:
        if self.end_ns < self.start_ns:
            raise invalid_argument("the backtest ends before it starts", "to")
        if self.mode not in MODES:
            raise invalid_argument(f"mode must be one of {', '.join(MODES)}", "mode")


@dataclass(frozen=True)
class EquityPoint:
    day: date
    at_ns: int
    cash: Decimal
    long_market_value: Decimal
    short_market_value: Decimal

    @property
    def equity(self) -> Decimal:
        return self.cash + self.long_market_value + self.short_market_value


@dataclass
class BacktestResult:
    config: BacktestConfig
    strategy: str
    params: dict[str, str]
    feed: str
    ticks: int  # ticks of the window
    decisions: int  # decide() calls outside the book (all of them on the jumping path)
    orders: list[OrderRecord]
    fills: list[FillRecord]
    ledger: list[LedgerEntry]
    equity: list[EquityPoint]  # the start, then every regular close in the window
    exposure: list[tuple[int, bool]]  # (time, a position is open) at every change
    sessions: list[tuple[date, MarketSession]]  # the regular sessions closing in the window
    final: AccountView
    account: PaperAccount = field(repr=False)


class SequentialOrderIds:
    """Deterministic order ids (``ord_…`` like the live ones): the run's seed and a count."""

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self._count = itertools.count(1)

    def __call__(self) -> str:
        return derived_id("ord", "backtest", self.seed, next(self._count))


def next_candidate(order: WorkingOrder, columns: SymbolColumns, start: int) -> int | None:
    """The first tick at or after ``start`` (a symbol index) on which ``decide`` could do
    anything but wait for a resting ``order``: a tradable tick reaching its price. The book
    (services/matcher/book.py) makes the same choice per tick."""
    buy = order.side is Side.BUY
    kind = order.order_type
    if order.time_in_force in _FIRST_TICK_DECIDES:
        return columns.first_tradable(start)
    if kind is OrderType.LIMIT or (kind is OrderType.STOP_LIMIT and order.triggered):
        return _marketable(columns, buy, start, order.limit_price, order.collar_price)
    if kind is OrderType.MARKET or order.triggered:
        return _marketable(columns, buy, start, order.collar_price)
    if buy:
        return columns.ask_at_least.first(start, columns.ceiling(required_price(order, "stop_price", order.stop_price)))
    return columns.bid_at_most.first(start, columns.floor(required_price(order, "stop_price", order.stop_price)))


def _marketable(columns: SymbolColumns, buy: bool, start: int, *bounds: Decimal | None) -> int | None:
    present = [b for b in bounds if b is not None]
    if not present:
        return columns.first_tradable(start)
    if buy:
        return columns.ask_at_most.first(start, columns.floor(min(present)))
    return columns.bid_at_least.first(start, columns.ceiling(max(present)))


class Backtest(Context):
    def __init__(
        self,
        feed: Feed,
        strategy: Strategy,
        config: BacktestConfig,
        *,
        order_ids: Callable[[], str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.feed = feed
        self.strategy = strategy
        self.config = config
        self.sessions = feed.sessions
        self.paper = PaperAccount(
            user_id=config.user_id,
            kind=account_type(config.account_type),
            starting_cash=config.starting_cash,
            collar_pct=config.collar_pct,
            max_quote_age_ns=config.max_quote_age_ns,
            opened_ns=config.start_ns,
        )
        self.order_ids = order_ids or SequentialOrderIds(config.seed)
        self.progress = progress
        self.book = OrderBook()
        self.working: dict[str, WorkingOrder] = {}
        self._generation: dict[str, int] = {}
        self._heap: list[tuple] = []
        self._sequence = itertools.count()
        self._pending: deque[Callable[[], None]] = deque()
        self._now_ns = config.start_ns
        self._first = feed.delivered_by(config.start_ns)
        self.delivered = self._first
        self.decisions = 0
        self._curve: list[EquityPoint] = []
        self._exposure: list[tuple[int, bool]] = []
        self._report_every = max(1, (len(feed) - self._first) // 200)
        self._next_report = self._first + self._report_every
        self._quote_symbols = [s for s in strategy.quotes if s in feed.columns]

    # -- running ------------------------------------------------------------------------

    def run(self) -> BacktestResult:
        start = self.config.start_ns
        self._curve.append(EquityPoint(datetime_from_ns(start).date(), start, self.paper.cash, Decimal(0), Decimal(0)))
        for day, session in self.sessions.between(start, self.config.end_ns):
            self._timer(session.close_ns, _TIMER, functools.partial(self._session_close, day))
        self._call(lambda: self.strategy.on_start(self))
        self._drain()
        if self.config.mode == "jump":
            for symbol in self._quote_symbols:
                self._schedule_quote(symbol, self.feed.columns[symbol].delivered_before(self.delivered))
            self._run_jumping()
        else:
            self._run_every_tick()
        self._report(len(self.feed))
        return self._result()

    def _run_jumping(self) -> None:
        heap = self._heap
        while heap:
            position, at_ns, phase = heap[0][:3]
            if phase == _ORDER:
                self._order_events(position, at_ns)
            elif phase == _QUOTE:
                _, _, _, _, _, _, symbol = heapq.heappop(heap)
                self._deliver(position + 1, at_ns)
                self._quote(symbol, position)
                self._schedule_quote(symbol, self.feed.columns[symbol].delivered_before(position + 1))
            else:
                self._fire_timer()

    def _run_every_tick(self) -> None:
        heap, feed = self._heap, self.feed
        for position in range(self.delivered, len(feed)):
            while heap and heap[0][0] <= position and heap[0][2] < _ORDER:
                self._fire_timer()
            tick = feed.tick_at(position)
            self._deliver(position + 1, tick.at_ns)
            outcomes = self.book.process(tick, self.sessions.at(tick.at_ns), self.config.max_quote_age_ns)
            self._settle([(o.order, o.decision) for o in outcomes], in_book=True)
            self._drain()
            if tick.symbol in self._quote_symbols:
                self._quote(tick.symbol, position)
        while heap:
            self._fire_timer()

    def _deliver(self, delivered: int, at_ns: int) -> None:
        self.delivered = delivered
        self._now_ns = at_ns
        if delivered >= self._next_report:
            self._report(delivered)
            self._next_report = delivered + self._report_every

    def _report(self, delivered: int) -> None:
        if self.progress is not None:
            self.progress(delivered - self._first, len(self.feed) - self._first)

    # -- the heap -----------------------------------------------------------------------

    def _push(self, position: int, at_ns: int, phase: int, accepted_ns: int, order_id: str, payload) -> None:
        heapq.heappush(self._heap, (position, at_ns, phase, accepted_ns, order_id, next(self._sequence), payload))

    def _timer(self, at_ns: int, phase: int, action: Callable[[], None]) -> None:
        if at_ns <= self.config.end_ns:
            self._push(self.feed.delivered_by(at_ns), at_ns, phase, 0, "", action)

    def _fire_timer(self) -> None:
        position, at_ns, *_, action = heapq.heappop(self._heap)
        self._deliver(max(self.delivered, position), at_ns)
        action()
        self._drain()

    def _schedule_quote(self, symbol: str, index: int) -> None:
        columns = self.feed.columns[symbol]
        if index < len(columns):
            self._push(columns.position(index), int(columns.times[index]), _QUOTE, 0, symbol, symbol)

    # -- orders: admission, events, outcomes ------------------------------------------------

    def _admit(self, order: WorkingOrder) -> None:
        """A newly accepted (or replaced) order: decided on the quote standing at its
        acceptance and the ticks delivered since, then working (as Engine._admit_locked)."""
        columns = self.feed.columns[order.symbol]
        delivered = columns.delivered_before(self.delivered)
        first = max(0, columns.first_at_or_after(order.accepted_ns) - 1)
        ticks = [self.feed.tick_at(columns.position(k)) for k in range(first, delivered)]
        outcomes: list[tuple[WorkingOrder, Decision]] = []
        working: WorkingOrder | None = order
        for tick, evaluated_ns in evaluated_ticks(order, ticks):
            if working is None:
                raise RuntimeError(f"{order.order_id} decided on after a terminal decision")
            decision = self._decide(working, tick, evaluated_ns)
            if decision.action is Action.WAIT:
                continue
            outcomes.append((working, decision))
            if decision.action in TERMINAL_ACTIONS:
                working = None
                break
            working = dataclasses.replace(working, triggered=True)
        generation = self._generation.get(order.order_id, 0) + 1
        self._generation[order.order_id] = generation
        if working is not None:
            self.working[order.order_id] = working
            if self.config.mode == "tick":
                self.book.add(working)
            else:
                self._schedule_order(working, delivered, generation)
            if working.expires_ns is not None:
                self._timer(working.expires_ns, _EXPIRY, functools.partial(self._expire, order.order_id, generation))
        self._settle(outcomes, in_book=False)

    def _decide(self, order: WorkingOrder, tick: Tick, evaluated_ns: int) -> Decision:
        self.decisions += 1
        return decide(
            order,
            tick,
            session=self.sessions.at(evaluated_ns),
            evaluated_ns=evaluated_ns,
            max_quote_age_ns=self.config.max_quote_age_ns,
        )

    def _schedule_order(self, order: WorkingOrder, start: int, generation: int) -> None:
        columns = self.feed.columns[order.symbol]
        index = next_candidate(order, columns, start)
        if index is not None:
            self._push(
                columns.position(index),
                int(columns.times[index]),
                _ORDER,
                order.accepted_ns,
                order.order_id,
                (generation, index),
            )

    def _order_events(self, position: int, at_ns: int) -> None:
        """Every order whose next event is this tick, earliest accepted first."""
        heap, due = self._heap, []
        while heap and heap[0][0] == position and heap[0][2] == _ORDER:
            _, _, _, _, order_id, _, (generation, index) = heapq.heappop(heap)
            if self._generation.get(order_id) == generation and order_id in self.working:
                due.append((order_id, generation, index))
        self._deliver(position + 1, at_ns)
        if not due:
            return
        tick = self.feed.tick_at(position)
        outcomes = []
        for order_id, generation, index in due:
            order = self.working[order_id]
            decision = self._decide(order, tick, tick.at_ns)
            if decision.action is not Action.WAIT:
                outcomes.append((order, decision))
            if decision.action in TERMINAL_ACTIONS:
                continue
            if decision.action is Action.TRIGGER:
                order = self.working[order_id] = dataclasses.replace(order, triggered=True)
            self._schedule_order(order, index + 1, generation)
        self._settle(outcomes, in_book=False)
        self._drain()

    def _settle(self, outcomes: list[tuple[WorkingOrder, Decision]], *, in_book: bool) -> None:
        """Apply decisions to the account (as orders and accounts do), then queue on_fill."""
        for order, decision in outcomes:
            fill = self.paper.decided(order, decision)
            if decision.action in TERMINAL_ACTIONS:
                self._forget(order.order_id)
            elif decision.action is Action.TRIGGER and in_book:
                triggered = self.book.get(order.order_id)
                if triggered is None:
                    raise LookupError(f"{order.order_id} triggered in the book but not found in it")
                self.working[order.order_id] = triggered
            if fill is not None:
                if decision.tick is None:
                    raise ValueError(f"fill of {order.order_id} decided on no quote")
                self._note_exposure(decision.tick.at_ns)
                self._pending.append(functools.partial(self.strategy.on_fill, self, fill_record(fill)))

    def _forget(self, order_id: str) -> None:
        self.working.pop(order_id, None)
        self.book.remove(order_id)
        self._generation[order_id] = self._generation.get(order_id, 0) + 1

    def _expire(self, order_id: str, generation: int) -> None:
        if self._generation.get(order_id) == generation and order_id in self.working:
            self.paper.expire(order_id)
            self._forget(order_id)

    def _drain(self) -> None:
        while self._pending:
            self._call(self._pending.popleft())

    def _call(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except StrategyError:
            raise
        except Exception as exc:
            raise StrategyError(f"{type(exc).__name__} in strategy at {self.now.isoformat()}: {exc}") from exc

    def _note_exposure(self, at_ns: int) -> None:
        open_now = self.paper.has_open_position()
        if not self._exposure or self._exposure[-1][1] != open_now:
            self._exposure.append((at_ns, open_now))

    # -- sessions and quotes ------------------------------------------------------------

    def _session_close(self, day: date) -> None:
        self._expire_options(day)
        view = self.paper.view(self._marks())
        self._curve.append(EquityPoint(day, self._now_ns, view.cash, view.long_market_value, view.short_market_value))
        self._call(lambda: self.strategy.on_session_close(self, day))

    def _expire_options(self, day: date) -> None:
        """At the close of ``day``, option positions expiring then settle on their
        underlyings' settlement price (the accounts domain's expiration rules)."""
        expiring = self.paper.account.expiring(day)
        if not expiring:
            return
        prices = {}
        for underlying in sorted({spec.underlying for spec in expiring}):
            price = self._settlement_price(underlying)
            if price is None:
                raise DomainError(
                    "FAILED_PRECONDITION",
                    f"no quote of {underlying} on {day} to settle its options on",
                    symbol=underlying,
                )
            prices[underlying] = price
        written = self.paper.expire_options(day, prices, self._now_ns)
        if written:
            self._note_exposure(self._now_ns)

    def _settlement_price(self, underlying: str) -> Decimal | None:
        """The underlying's closing price as the backtest knows it: the mid of its last
        usable quote at or before now (the close). The live expiration reads the daily
        bar's close (recorded trades where there are some); a backtest has quotes only."""
        tick = self._latest_usable(underlying)
        return None if tick is None else (tick.bid + tick.ask) / 2

    def _latest_usable(self, symbol: str) -> Tick | None:
        columns = self.feed.columns.get(symbol)
        if columns is None:
            return None
        index = columns.delivered_before(self.delivered) - 1
        while index >= 0:
            tick = self.feed.tick_at(columns.position(index))
            if is_usable(tick):
                return tick
            index -= 1
        return None

    def _latest_quote(self, symbol: str) -> Tick | None:
        """The latest quote as market data's GetLatestQuote answers it: an option
        contract's model at the latest usable underlying tick (the prices of its last
        streamed quote, which carries only changes, named by that underlying tick)."""
        tick = self._latest(symbol)
        contract = self.feed.options.get(symbol)
        if tick is None or contract is None:
            return tick
        underlying = self._latest_usable(contract.underlying)
        if underlying is None or underlying.at_ns <= tick.at_ns or underlying.at_ns >= self._last_trade(contract):
            return tick
        return dataclasses.replace(tick, at_ns=underlying.at_ns, sequence=underlying.sequence)

    @staticmethod
    def _last_trade(contract: SymbolSpec) -> int:
        return last_trade_ns(contract, xnys()) or 0

    def _quote(self, symbol: str, position: int) -> None:
        tick = self.feed.tick_at(position)
        self._call(lambda: self.strategy.on_quote(self, tick))
        self._drain()

    def _latest(self, symbol: str) -> Tick | None:
        columns = self.feed.columns.get(symbol)
        if columns is None:
            return None
        index = columns.delivered_before(self.delivered) - 1
        return self.feed.tick_at(columns.position(index)) if index >= 0 else None

    def _marks(self) -> Marks:
        marks: Marks = {}
        for symbol in self.paper.positions:
            tick = self._latest(symbol)
            marks[symbol] = (tick.bid, tick.ask) if tick is not None and is_usable(tick) else None
        return marks

    # -- Context: what the strategy calls ---------------------------------------------------

    @property
    def now(self) -> datetime:
        return datetime_from_ns(self._now_ns)

    @property
    def now_ns(self) -> int:
        return self._now_ns

    @property
    def account(self) -> AccountView:
        return self.paper.view(self._marks())

    def quote(self, symbol: str) -> Tick | None:
        return self._latest_quote(symbol.strip().upper())

    def submit(self, **fields) -> OrderRecord:
        request = submit_request(fields)
        order_id = self.order_ids()
        session = self.sessions.closing_after(self._now_ns)
        order = self.paper.submit(
            orders_wire.spec_from_request(request),
            order_id,
            self._now_ns,
            order_session(session.open_ns, session.close_ns),
            self._latest_quote,
            self._marks(),
            self._instrument,
        )
        if order.order_id == order_id and is_working(order):
            self._admit(working_order(order))
        return order_record(self.paper.order(order.order_id))

    def cancel(self, order_id: str) -> OrderRecord:
        order = self.paper.cancel(order_id, self._now_ns)
        self._forget(order_id)
        return order_record(order)

    def replace(self, order_id: str, **fields) -> OrderRecord:
        request = replace_request(order_id, fields)
        session = self.sessions.closing_after(self._now_ns)
        order = self.paper.replace(
            order_id,
            orders_wire.replace_terms(request),
            self._now_ns,
            order_session(session.open_ns, session.close_ns),
            self._marks(),
        )
        self._forget(order_id)
        self._admit(working_order(order))
        return order_record(self.paper.order(order_id))

    def order(self, order_id: str) -> OrderRecord:
        return order_record(self.paper.order(order_id))

    def option_contracts(self, underlying: str) -> list[SymbolSpec]:
        wanted = underlying.strip().upper()
        contracts = [
            spec
            for spec in self.feed.options.values()
            if spec.underlying == wanted and self._last_trade(spec) > self._now_ns
        ]
        return sorted(contracts, key=lambda s: (s.expiration, s.strike, s.option_type))

    def _instrument(self, symbol: str) -> Instrument:
        """What market data's GetSymbol says of ``symbol`` in this feed: a stock it has
        quotes of, or an option contract it quotes (its last trading close said, so the
        orders rules refuse it as ``contract_expired`` from then on)."""
        spec = parse_symbol(symbol)
        if spec.is_option:
            last = last_trade_ns(spec, xnys())
            expired = last is not None and last <= self._now_ns
            if last is None or (spec.symbol not in self.feed.options and not expired):
                raise not_found("symbol", spec.symbol)
            return Instrument(
                spec.symbol, AssetClass.US_OPTION, contract_multiplier(spec.symbol), not expired, datetime_from_ns(last)
            )
        if spec.symbol not in self.feed.columns:
            raise not_found("symbol", spec.symbol)  # market data knows no quotes for it
        return Instrument(spec.symbol, AssetClass.US_EQUITY, contract_multiplier(spec.symbol), True)

    def open_orders(self, symbol: str | None = None) -> list[OrderRecord]:
        return [
            order_record(o)
            for o in self.paper.orders.values()
            if is_working(o) and (symbol is None or o.spec.symbol == symbol)
        ]

    def next_session(self) -> tuple[int, int]:
        session = self.sessions.closing_after(self._now_ns)
        return session.open_ns, session.close_ns

    def schedule(self, at: datetime | int, callback: Callable[[Context], None]) -> None:
        at_ns = at if isinstance(at, int) else datetime_to_ns(at)
        if at_ns < self._now_ns:
            raise invalid_argument(f"cannot schedule in the past ({datetime_from_ns(at_ns).isoformat()})", "at")
        self._timer(at_ns, _TIMER, lambda: self._call(lambda: callback(self)))

    # -- result ---------------------------------------------------------------------------

    def _result(self) -> BacktestResult:
        return BacktestResult(
            config=self.config,
            strategy=self.strategy.name or type(self.strategy).__name__,
            params=dict(sorted(self.strategy.params.items())),
            feed=self.feed.description,
            ticks=len(self.feed) - self._first,
            decisions=self.decisions,
            orders=[order_record(o) for o in self.paper.orders.values()],
            fills=[fill_record(f) for f in self.paper.fills],
            ledger=list(self.paper.entries),
            equity=list(self._curve),
            exposure=list(self._exposure),
            sessions=self.sessions.between(self.config.start_ns, self.config.end_ns),
            final=self.account,
            account=self.paper,
        )
