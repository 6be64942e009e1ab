"""A backtest gives the live matcher's fills byte for byte: the same orders, placed at the
same simulated times on the same ticks, are traded once by the whole mesh on a stepped
replay and once by the backtest engine over the same recording; the fill lists (ids,
prices, NBBO, ticks, times) are identical, and so are the orders' outcomes."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import grpc

from mbt.common.v1 import trading_pb2
from mbt.marketdata.v1 import marketdata_pb2
from mbt.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from mbt.orders.v1 import orders_pb2
from services.common.errors import REASON_STATUS
from services.common.wire.conv import datetime_to_ns, to_timestamp
from services.matcher.backtest.engine import Backtest, BacktestConfig
from services.matcher.backtest.sources import recorded_feed
from tests.support.backtest import Scripted
from tests.support.identity import as_service, as_user
from tests.support.trading import CLOSE, START, Trading, eventually, start_trading_mesh

CENT = Decimal("0.01")
USER = "lena"


def near(quote: marketdata_pb2.Quote, side: str, cents: int) -> str:
    """A price ``cents`` above the touch a ``side`` order would take (below when negative)."""
    touch = Decimal(quote.ask_price if side == "buy" else quote.bid_price)
    return str((touch + cents * CENT).quantize(CENT))


class LiveRun:
    """Plays (time, verb, fields) actions on the mesh, as Scripted plays them in a backtest."""

    def __init__(self, mesh) -> None:
        self.trading = Trading(mesh)
        self.delivered = 0
        self.order_ids: list[str] = []
        self.ids: dict[str, str] = {}
        self.refusals: list[tuple[int, str]] = []

    async def step_to(self, moment: datetime) -> None:
        reply = await self.trading.marketdata().StepClock(
            marketdata_pb2.StepClockRequest(to_time=to_timestamp(moment)), metadata=as_service("tests"), timeout=120
        )
        self.delivered += reply.delivered_ticks
        await self.matcher_caught_up()

    async def matcher_caught_up(self) -> None:
        """Every tick handed out so far went through the matcher before the next order."""
        stub = matcher_pb2_grpc.MatcherServiceStub(self.trading.channel("matcher"))

        async def check():
            book = await stub.GetBook(matcher_pb2.GetBookRequest(), metadata=as_service("tests"))
            assert book.ticks_processed >= self.delivered

        await eventually(check)

    async def quote(self, symbol: str) -> marketdata_pb2.Quote:
        reply = await self.trading.marketdata().GetLatestQuote(
            marketdata_pb2.GetLatestQuoteRequest(symbol=symbol), metadata=as_service("tests")
        )
        return reply.quote

    async def act(self, at: datetime, verb: str, fields: dict) -> None:
        orders = self.trading.orders()
        try:
            if verb == "submit":
                request = orders_pb2.SubmitOrderRequest(
                    client_order_id=fields["client_order_id"],
                    symbol=fields["symbol"],
                    side=trading_pb2.OrderSide.Value("ORDER_SIDE_" + fields["side"].upper()),
                    qty=fields["qty"],
                    order_type=trading_pb2.OrderType.Value("ORDER_TYPE_" + fields["order_type"].upper()),
                    time_in_force=trading_pb2.TimeInForce.Value("TIME_IN_FORCE_" + fields["time_in_force"].upper()),
                    limit_price=fields.get("limit_price", ""),
                    stop_price=fields.get("stop_price", ""),
                )
                reply = await orders.SubmitOrder(request, metadata=as_user(USER))
                self.order_ids.append(reply.order.order_id)
                self.ids[fields["client_order_id"]] = reply.order.order_id
            elif verb == "cancel":
                await orders.CancelOrder(
                    orders_pb2.CancelOrderRequest(order_id=self.ids[fields["client_order_id"]]), metadata=as_user(USER)
                )
            else:
                await orders.ReplaceOrder(
                    orders_pb2.ReplaceOrderRequest(
                        order_id=self.ids[fields["client_order_id"]],
                        limit_price=fields.get("limit_price", ""),
                        qty=fields.get("qty", ""),
                    ),
                    metadata=as_user(USER),
                )
        except grpc.aio.AioRpcError as refused:
            self.refusals.append((datetime_to_ns(at), refused.code().name))

    async def settled(self, expected_orders: int) -> list[orders_pb2.Order]:
        orders = self.trading.orders()

        async def check():
            listed = await orders.ListOrders(orders_pb2.ListOrdersRequest(page_size=100), metadata=as_user(USER))
            assert len(listed.orders) == expected_orders
            assert all(o.status != orders_pb2.ORDER_STATUS_NEW for o in listed.orders)
            # day orders past their close are expired by the orders service's housekeeping
            assert not [
                o
                for o in listed.orders
                if o.status == orders_pb2.ORDER_STATUS_ACCEPTED
                and o.HasField("expires_at")
                and o.expires_at.ToDatetime() <= CLOSE.replace(tzinfo=None)
            ]
            return [
                (await orders.GetOrder(orders_pb2.GetOrderRequest(order_id=o.order_id), metadata=as_user(USER))).order
                for o in listed.orders
            ]

        return await eventually(check)


async def test_backtest_fills_are_the_live_matchers_byte_for_byte(databases, tmp_path):
    mesh = await start_trading_mesh(databases, tmp_path)
    live = LiveRun(mesh)
    try:
        amzn, goog = await live.quote("AMZN"), await live.quote("GOOG")
        t0 = START
        script = [
            (
                t0,
                "submit",
                {
                    "client_order_id": "amzn-market",
                    "symbol": "AMZN",
                    "side": "buy",
                    "qty": "20",
                    "order_type": "market",
                    "time_in_force": "day",
                },
            ),
            (
                t0,
                "submit",
                {
                    "client_order_id": "goog-market",
                    "symbol": "GOOG",
                    "side": "buy",
                    "qty": "5",
                    "order_type": "market",
                    "time_in_force": "day",
                },
            ),
            (
                t0,
                "submit",
                {
                    "client_order_id": "amzn-dip",
                    "symbol": "AMZN",
                    "side": "buy",
                    "qty": "10",
                    "order_type": "limit",
                    "limit_price": near(amzn, "buy", -30),
                    "time_in_force": "gtc",
                },
            ),
            (
                t0,
                "submit",
                {
                    "client_order_id": "goog-breakout",
                    "symbol": "GOOG",
                    "side": "buy",
                    "qty": "2",
                    "order_type": "stop_limit",
                    "stop_price": near(goog, "buy", 80),
                    "limit_price": near(goog, "buy", 120),
                    "time_in_force": "day",
                },
            ),
            (
                t0 + timedelta(seconds=30),
                "submit",
                {
                    "client_order_id": "amzn-take-profit",
                    "symbol": "AMZN",
                    "side": "sell",
                    "qty": "10",
                    "order_type": "limit",
                    "limit_price": near(amzn, "sell", 40),
                    "time_in_force": "day",
                },
            ),
            (
                t0 + timedelta(seconds=30),
                "submit",
                {
                    "client_order_id": "goog-stop-loss",
                    "symbol": "GOOG",
                    "side": "sell",
                    "qty": "5",
                    "order_type": "stop",
                    "stop_price": near(goog, "sell", -150),
                    "time_in_force": "gtc",
                },
            ),
            (
                t0 + timedelta(seconds=60),
                "replace",
                {"client_order_id": "amzn-dip", "limit_price": near(amzn, "buy", -15)},
            ),
            (
                t0 + timedelta(seconds=90),
                "submit",
                {
                    "client_order_id": "amzn-ioc",
                    "symbol": "AMZN",
                    "side": "buy",
                    "qty": "5",
                    "order_type": "limit",
                    "limit_price": near(amzn, "buy", 20),
                    "time_in_force": "ioc",
                },
            ),
            (
                t0 + timedelta(seconds=90),
                "submit",
                {
                    "client_order_id": "amzn-fok",
                    "symbol": "AMZN",
                    "side": "buy",
                    "qty": "150",
                    "order_type": "limit",
                    "limit_price": near(amzn, "buy", 20),
                    "time_in_force": "fok",
                },
            ),
            (t0 + timedelta(seconds=120), "cancel", {"client_order_id": "goog-stop-loss"}),
            (
                t0 + timedelta(minutes=20),
                "submit",
                {
                    "client_order_id": "amzn-late",
                    "symbol": "AMZN",
                    "side": "sell",
                    "qty": "5",
                    "order_type": "stop",
                    "stop_price": near(amzn, "sell", -60),
                    "time_in_force": "day",
                },
            ),
        ]
        for at, verb, fields in script:
            if at > await live.trading.now():
                await live.step_to(at)
            await live.act(at, verb, fields)
            await live.matcher_caught_up()
        for moment in (START + timedelta(hours=1), START + timedelta(hours=3), CLOSE + timedelta(minutes=1)):
            await live.step_to(moment)
        live_orders = await live.settled(len(live.order_ids))
    finally:
        await live.trading.close()
        await mesh.stop()

    start_ns, end_ns = datetime_to_ns(START), datetime_to_ns(CLOSE + timedelta(minutes=1))
    strategy = Scripted(actions=[(datetime_to_ns(at), verb, fields) for at, verb, fields in script])
    config = BacktestConfig(start_ns=start_ns, end_ns=end_ns, account_type="cash", starting_cash=Decimal("100000.00"))
    feed = recorded_feed("bundled", ["AMZN", "GOOG"], start_ns, end_ns)
    result = Backtest(feed, strategy, config, order_ids=iter(live.order_ids).__next__).run()

    live_fills = sorted(
        (f for o in live_orders for f in o.fills), key=lambda f: (f.quote_at.ToNanoseconds(), f.fill_id)
    )
    backtest_fills = sorted(result.account.fill_messages(), key=lambda f: (f.quote_at.ToNanoseconds(), f.fill_id))
    assert len(live_fills) >= 5, "the script should fill several orders"
    assert [f.SerializeToString(deterministic=True) for f in backtest_fills] == [
        f.SerializeToString(deterministic=True) for f in live_fills
    ]
    names = {v.number: v.name.removeprefix("ORDER_STATUS_").lower() for v in orders_pb2.OrderStatus.DESCRIPTOR.values}
    assert {o.client_order_id: (names[o.status], o.cancel_reason or o.reject_reason) for o in live_orders} == {
        o.client_order_id: (o.status, o.cancel_reason or o.reject_reason) for o in result.orders
    }
    # the same calls were refused at the same moments (compared as gRPC codes, all the mesh returns here)
    assert [(at, REASON_STATUS[reason]) for at, reason in strategy.refusals] == live.refusals
