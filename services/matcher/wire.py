"""The matcher's proto <-> domain conversions, the only place that knows both: orders and
fills of the orders service, quotes and sessions of market data, the decisions sent back
to orders, and the matcher's own messages (fill explanations, the book, backtests)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.timestamp_pb2 import Timestamp

from mbt.accounts.v1 import accounts_pb2
from mbt.marketdata.v1 import marketdata_pb2
from mbt.matcher.v1 import matcher_pb2
from mbt.orders.v1 import orders_pb2
from services.common.errors import invalid_argument
from services.common.instruments import parse_symbol
from services.common.trading import FillPreference, OrderType, Side
from services.common.wire.conv import (
    decimal_str,
    from_date,
    money_str,
    parse_decimal,
    timestamp_from_ns,
    timestamp_ns,
    to_date,
    to_timestamp,
)
from services.common.wire.trading import (
    FILL_PREFERENCE_WIRE,
    FILL_PREFERENCES,
    ORDER_TYPES,
    SIDE_WIRE,
    SIDES,
    TIMES_IN_FORCE,
)
from services.marketdata.domain.ticks import Source
from services.marketdata.domain.ticks import Tick as FeedTick
from services.matcher.backtest.model import BUNDLED, MARKETDATA, BacktestRun, BacktestSpec, ResultContent, RunStatus
from services.matcher.domain import Decision, MarketSession, Tick, WorkingOrder, fill_id
from services.matcher.multileg import LegFill, SpreadDecision, SpreadLeg, WorkingSpread, spread_fill_id
from services.matcher.views import (
    ArchivedQuote,
    BookSummary,
    ExplainedLeg,
    FilledOrder,
    FilledSpread,
    FillExplanation,
    OpenOrder,
    OpenSpread,
    QuotesDropped,
    RecordedFill,
)

# -- orders --------------------------------------------------------------------------------


def _decimal(value: str) -> Decimal | None:
    return Decimal(value) if value else None


def is_working(order: orders_pb2.Order) -> bool:
    """Accepted, so in the book (any other status has left it or never entered it)."""
    return order.status == orders_pb2.ORDER_STATUS_ACCEPTED


def working_order(order: orders_pb2.Order) -> WorkingOrder:
    """The order as the fill function works it. Its terms date from the last replace."""
    accepted_ns = max(timestamp_ns(order.accepted_at), timestamp_ns(order.replaced_at))
    return WorkingOrder(
        order_id=order.order_id,
        symbol=order.symbol,
        side=SIDES[order.side],
        qty=Decimal(order.qty),
        order_type=ORDER_TYPES[order.order_type],
        time_in_force=TIMES_IN_FORCE[order.time_in_force],
        limit_price=_decimal(order.limit_price),
        stop_price=_decimal(order.stop_price),
        collar_price=_decimal(order.collar_price),
        accepted_ns=accepted_ns,
        triggered=order.HasField("triggered_at"),
        expires_ns=timestamp_ns(order.expires_at) if order.HasField("expires_at") else None,
        exit_group=order.exit_group,
    )


def open_order(order: orders_pb2.Order) -> OpenOrder | OpenSpread:
    """An accepted order (``is_working``) with the multiplier its fills carry, or a
    multi-leg one as ``decide_spread`` works it."""
    if order.legs:
        return OpenSpread(working_spread(order))
    return OpenOrder(working_order(order), Decimal(order.multiplier or "1"))


def working_spread(order: orders_pb2.Order) -> WorkingSpread:
    """A multi-leg order as the spread fill function works it. Its terms date from the last
    replace."""
    limited = ORDER_TYPES[order.order_type] is OrderType.LIMIT
    return WorkingSpread(
        order_id=order.order_id,
        legs=tuple(SpreadLeg(leg.symbol, SIDES[leg.side], leg.ratio) for leg in order.legs),
        qty=Decimal(order.qty),
        order_type=ORDER_TYPES[order.order_type],
        time_in_force=TIMES_IN_FORCE[order.time_in_force],
        limit_price=_decimal(order.limit_price) if limited else None,
        collar_price=None if limited else _decimal(order.collar_price),
        fill_preference=FILL_PREFERENCES.get(order.fill_preference, FillPreference.CONSERVATIVE),
        accepted_ns=max(timestamp_ns(order.accepted_at), timestamp_ns(order.replaced_at)),
        expires_ns=timestamp_ns(order.expires_at) if order.HasField("expires_at") else None,
    )


def spread_fill_message(spread: WorkingSpread, decision: SpreadDecision) -> orders_pb2.Fill:
    """A multi-leg FILL as the orders service records it: the net per spread as its price,
    the net mid as ``bid_price`` and the natural as ``ask_price``, each leg with its quote;
    the id derived from the order and the legs' quotes."""
    if decision.net_price is None or decision.natural is None or decision.mid is None:
        raise ValueError(f"{decision.action} decision ({decision.rule}) is not a fill")
    latest = max(decision.ticks, key=lambda tick: (tick.at_ns, tick.sequence))
    return orders_pb2.Fill(
        fill_id=spread_fill_id(spread.order_id, decision.ticks),
        order_id=spread.order_id,
        symbol="",
        side=SIDE_WIRE[Side.BUY],
        qty=decimal_str(spread.qty),
        price=money_str(decision.net_price),
        bid_price=money_str(decision.mid),
        bid_size="0",
        ask_price=money_str(decision.natural),
        ask_size="0",
        quote_at=timestamp_from_ns(latest.at_ns),
        quote_sequence=latest.sequence,
        rule=decision.rule,
        filled_at=timestamp_from_ns(max(spread.accepted_ns, latest.at_ns)),
        multiplier="100",
        legs=[
            orders_pb2.LegFill(
                symbol=leg.symbol,
                side=SIDE_WIRE[leg.side],
                ratio=leg.ratio,
                qty=decimal_str(leg.qty),
                price=money_str(leg.price),
                bid_price=money_str(leg.tick.bid),
                ask_price=money_str(leg.tick.ask),
                bid_size=decimal_str(leg.tick.bid_size),
                ask_size=decimal_str(leg.tick.ask_size),
                quote_at=timestamp_from_ns(leg.tick.at_ns),
                quote_sequence=leg.tick.sequence,
            )
            for leg in decision.legs
        ],
    )


def filled_order(order: orders_pb2.Order) -> FilledOrder:
    triggered_ns = timestamp_ns(order.triggered_at) if order.HasField("triggered_at") else None
    return FilledOrder(order.user_id, working_order(order), triggered_ns)


def _decided_at(order: WorkingOrder, decision: Decision) -> Timestamp:
    """When a decision takes effect: the quote's time, or the acceptance for the quote
    standing when the order was accepted."""
    return timestamp_from_ns(max(order.accepted_ns, _decided_tick(decision).at_ns))


def _decided_tick(decision: Decision) -> Tick:
    """The quote a fill or a trigger was decided on (only a decision about no quote has none)."""
    if decision.tick is None:
        raise ValueError(f"{decision.action} decision ({decision.rule}) names no quote")
    return decision.tick


def fill_message(order: WorkingOrder, decision: Decision, multiplier: Decimal) -> orders_pb2.Fill:
    """A FILL decision as the orders service records it; its id is derived from the order
    and the tick, so a decision sent twice is one fill."""
    tick = _decided_tick(decision)
    return orders_pb2.Fill(
        fill_id=fill_id(order.order_id, tick),
        order_id=order.order_id,
        symbol=order.symbol,
        side=SIDE_WIRE[order.side],
        qty=decimal_str(order.qty),
        price=money_str(decision.price),
        bid_price=money_str(tick.bid),
        bid_size=decimal_str(tick.bid_size),
        ask_price=money_str(tick.ask),
        ask_size=decimal_str(tick.ask_size),
        quote_at=timestamp_from_ns(tick.at_ns),
        quote_sequence=tick.sequence,
        rule=decision.rule,
        filled_at=_decided_at(order, decision),
        multiplier=decimal_str(multiplier),
    )


def triggered_request(order: WorkingOrder, decision: Decision) -> orders_pb2.MarkOrderTriggeredRequest:
    return orders_pb2.MarkOrderTriggeredRequest(
        order_id=order.order_id,
        triggered_at=_decided_at(order, decision),
        quote_sequence=_decided_tick(decision).sequence,
    )


def cancel_unfilled_request(order: WorkingOrder, decision: Decision) -> orders_pb2.CancelUnfilledOrderRequest:
    return orders_pb2.CancelUnfilledOrderRequest(
        order_id=order.order_id, reason=decision.rule, decided_at=_decided_at(order, decision)
    )


def recorded_fill(fill: orders_pb2.Fill) -> RecordedFill:
    tick = Tick(
        symbol=fill.symbol,
        bid=Decimal(fill.bid_price),
        bid_size=Decimal(fill.bid_size or "0"),
        ask=Decimal(fill.ask_price),
        ask_size=Decimal(fill.ask_size or "0"),
        at_ns=timestamp_ns(fill.quote_at),
        sequence=fill.quote_sequence,
    )
    legs = tuple(
        LegFill(
            leg.symbol,
            SIDES[leg.side],
            leg.ratio,
            Decimal(leg.qty),
            Decimal(leg.price),
            Tick(
                symbol=leg.symbol,
                bid=Decimal(leg.bid_price),
                bid_size=Decimal(leg.bid_size or "0"),
                ask=Decimal(leg.ask_price),
                ask_size=Decimal(leg.ask_size or "0"),
                at_ns=timestamp_ns(leg.quote_at) if leg.HasField("quote_at") else 0,
                sequence=leg.quote_sequence,
            ),
        )
        for leg in fill.legs
    )
    return RecordedFill(fill.fill_id, fill.order_id, Decimal(fill.price), fill.rule, tick, legs)


def filled_spread(order: orders_pb2.Order) -> FilledSpread:
    return FilledSpread(order.user_id, working_spread(order))


# -- market data ---------------------------------------------------------------------------


def tick_from_quote(quote: marketdata_pb2.Quote) -> Tick:
    return Tick(
        symbol=quote.symbol,
        bid=Decimal(quote.bid_price or "0"),
        bid_size=Decimal(quote.bid_size or "0"),
        ask=Decimal(quote.ask_price or "0"),
        ask_size=Decimal(quote.ask_size or "0"),
        at_ns=timestamp_ns(quote.quote_at),
        sequence=quote.sequence,
    )


def archived_quote(quote: marketdata_pb2.Quote) -> ArchivedQuote:
    """A quote of the tick archive with where it came from (its source's short name)."""
    source = marketdata_pb2.QuoteSource.Name(quote.source).removeprefix("QUOTE_SOURCE_").lower()
    model = None
    if quote.HasField("model"):
        model = {field.name: getattr(quote.model, field.name) for field in quote.model.DESCRIPTOR.fields}
    return ArchivedQuote(tick_from_quote(quote), source, model)


def stream_items(message: marketdata_pb2.StreamQuotesResponse) -> list[QuotesDropped | Tick]:
    """A StreamQuotes message in order: the notice of ticks dropped before it, then its ticks."""
    items: list[QuotesDropped | Tick] = []
    if message.dropped:
        items.append(QuotesDropped(message.dropped_from_sequence, message.dropped_to_sequence))
    items.extend(tick_from_quote(quote) for quote in message.quotes)
    return items


def feed_tick(quote: marketdata_pb2.Quote) -> FeedTick:
    """A historical quote as backtest feeds carry it (empty prices are None: unusable)."""
    return FeedTick.quote(
        quote.symbol,
        timestamp_ns(quote.quote_at),
        quote.sequence,
        _decimal(quote.bid_price),
        _decimal(quote.bid_size),
        _decimal(quote.ask_price),
        _decimal(quote.ask_size),
        Source.REPLAY,
    )


def sessions(reply: marketdata_pb2.ListCalendarResponse) -> list[MarketSession]:
    return [MarketSession(timestamp_ns(day.open_at), timestamp_ns(day.close_at)) for day in reply.days]


# -- the matcher's answers -----------------------------------------------------------------


def explanation_to_proto(explained: FillExplanation) -> matcher_pb2.FillExplanation:
    # Prices and sizes exactly as the orders service wrote them (Decimal keeps their places).
    fill, tick = explained.fill, explained.fill.tick
    return matcher_pb2.FillExplanation(
        legs=[_explained_leg(leg) for leg in explained.legs],
        natural_price=money_str(explained.natural),
        mid_price=money_str(explained.mid),
        fill_preference=FILL_PREFERENCE_WIRE[explained.fill_preference] if explained.fill_preference else None,
        fill_id=fill.fill_id,
        order_id=fill.order_id,
        symbol=tick.symbol,
        rule=fill.rule,
        explanation=explained.explanation,
        fill_price=format(fill.price, "f"),
        bid_price=format(tick.bid, "f"),
        bid_size=format(tick.bid_size, "f"),
        ask_price=format(tick.ask, "f"),
        ask_size=format(tick.ask_size, "f"),
        quote_at=timestamp_from_ns(tick.at_ns),
        quote_sequence=tick.sequence,
        reproduced=explained.reproduced,
        ticks_considered=explained.ticks_considered,
        source=_source(explained.quote),
        model=_model(explained.quote),
    )


def _source(quote: ArchivedQuote | None) -> marketdata_pb2.QuoteSource | None:
    return None if quote is None else marketdata_pb2.QuoteSource.Value(f"QUOTE_SOURCE_{quote.source.upper()}")


def _model(quote: ArchivedQuote | None) -> marketdata_pb2.ModelInputs | None:
    return None if quote is None or quote.model is None else _model_inputs(quote.model)


def _explained_leg(leg: ExplainedLeg) -> matcher_pb2.LegExplanation:
    fill, tick, quote = leg.fill, leg.fill.tick, leg.quote
    return matcher_pb2.LegExplanation(
        symbol=fill.symbol,
        side=SIDE_WIRE[fill.side],
        ratio=fill.ratio,
        qty=decimal_str(fill.qty),
        price=money_str(fill.price),
        bid_price=money_str(tick.bid),
        bid_size=decimal_str(tick.bid_size),
        ask_price=money_str(tick.ask),
        ask_size=decimal_str(tick.ask_size),
        quote_at=timestamp_from_ns(tick.at_ns) if tick.at_ns else None,
        quote_sequence=tick.sequence,
        source=_source(quote),
        model=_model(quote),
    )


def _model_inputs(model: Mapping[str, str | int]) -> marketdata_pb2.ModelInputs:
    message = marketdata_pb2.ModelInputs()
    for name, value in model.items():
        setattr(message, name, value)
    return message


def book_to_proto(summary: BookSummary) -> matcher_pb2.GetBookResponse:
    return matcher_pb2.GetBookResponse(
        symbols=[
            matcher_pb2.SymbolBook(
                symbol=s.symbol,
                working_orders=s.working_orders,
                last_quote_at=None if s.last_tick_ns is None else timestamp_from_ns(s.last_tick_ns),
            )
            for s in summary.symbols
        ],
        working_orders=summary.working_orders,
        ticks_processed=summary.ticks_processed,
        fills_decided=summary.fills_decided,
        decisions_in_flight=summary.decisions_in_flight,
    )


# -- backtests -----------------------------------------------------------------------------

ACCOUNT_TYPES = {accounts_pb2.ACCOUNT_TYPE_CASH: "cash", accounts_pb2.ACCOUNT_TYPE_MARGIN: "margin"}
ACCOUNT_TYPE_WIRE: dict[str, accounts_pb2.AccountType] = {name: number for number, name in ACCOUNT_TYPES.items()}
RUN_STATUS_WIRE = {
    RunStatus.QUEUED: matcher_pb2.BACKTEST_STATUS_QUEUED,
    RunStatus.RUNNING: matcher_pb2.BACKTEST_STATUS_RUNNING,
    RunStatus.SUCCEEDED: matcher_pb2.BACKTEST_STATUS_SUCCEEDED,
    RunStatus.FAILED: matcher_pb2.BACKTEST_STATUS_FAILED,
}
# Over the API a backtest reads the bundled quotes or the market-data service, never a
# file of the server's choosing.
API_DATA = ("", BUNDLED, MARKETDATA)


def spec_from_message(message: matcher_pb2.Backtest) -> BacktestSpec:
    """The run a Backtest message asks for (its input fields); invalid_argument naming the
    field. ``BacktestSpec.validate`` checks the rest."""
    if message.data not in API_DATA:
        raise invalid_argument(f"data must be {BUNDLED} or {MARKETDATA}", "data")
    first, last = from_date(message.from_date, "from_date"), from_date(message.to_date, "to_date")
    if first is None or last is None:
        raise invalid_argument("from_date and to_date are required", "from_date" if first is None else "to_date")
    if message.account_type not in (0, *ACCOUNT_TYPES):
        raise invalid_argument("account_type has an unknown value", "account_type")
    script = None
    if message.HasField("script"):
        script = MessageToDict(message.script, preserving_proto_field_name=True)
        script.setdefault("steps", [])
    return BacktestSpec(
        first_day=first,
        last_day=last,
        strategy=message.strategy.strip(),
        params=dict(message.parameters),
        script=script,
        data=message.data or BUNDLED,
        symbols=tuple(parse_symbol(s, f"symbols[{i}]").symbol for i, s in enumerate(message.symbols)),
        account_type=ACCOUNT_TYPES.get(message.account_type, ""),
        starting_cash=parse_decimal(message.starting_cash, "starting_cash"),
    )


def spec_to_message(spec: BacktestSpec) -> matcher_pb2.Backtest:
    """A spec's input fields (what ``spec_from_message`` reads back to the same spec)."""
    message = matcher_pb2.Backtest(
        strategy=spec.strategy,
        parameters=dict(spec.params),
        data=spec.data,
        from_date=to_date(spec.first_day),
        to_date=to_date(spec.last_day),
        symbols=list(spec.symbols),
        account_type=ACCOUNT_TYPE_WIRE.get(spec.account_type),
        starting_cash="" if spec.starting_cash is None else format(spec.starting_cash, "f"),
    )
    if spec.script is not None:
        message.script.SetInParent()  # a script without steps is still a script
        ParseDict(spec.script, message.script)
    return message


def stored_spec(spec: BacktestSpec) -> bytes:
    """How the store keeps a spec: its Backtest message, serialized."""
    return spec_to_message(spec).SerializeToString(deterministic=True)


def spec_from_stored(data: bytes) -> BacktestSpec:
    return spec_from_message(matcher_pb2.Backtest.FromString(data))


def backtest_to_proto(run: BacktestRun) -> matcher_pb2.Backtest:
    message = spec_to_message(run.spec)
    message.backtest_id = run.backtest_id
    message.status = RUN_STATUS_WIRE[run.status]
    message.progress_percent = run.progress_percent
    message.error = run.error
    message.created_at.CopyFrom(to_timestamp(run.created_at))
    for name in ("started_at", "finished_at"):
        value = getattr(run, name)
        if value is not None:
            getattr(message, name).CopyFrom(to_timestamp(value))
    message.statistics.extend(matcher_pb2.BacktestStatistic(name=n, value=v) for n, v in run.statistics)
    message.files.extend(
        matcher_pb2.BacktestFile(name=f.name, content_type=f.content_type, size_bytes=f.size_bytes) for f in run.files
    )
    message.ticks, message.orders, message.fills = run.ticks, run.orders, run.fills
    return message


def report_to_proto(backtest_id: str, report: ResultContent) -> matcher_pb2.BacktestReport:
    return matcher_pb2.BacktestReport(backtest_id=backtest_id, html=report.content.decode("utf-8"))


def file_to_proto(backtest_id: str, found: ResultContent) -> matcher_pb2.BacktestFileContent:
    return matcher_pb2.BacktestFileContent(
        backtest_id=backtest_id, name=found.name, content_type=found.content_type, content=found.content
    )
