"""A whole mesh on a stepped replay clock, and the calls trading tests make on it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf import any_pb2

from mbt.accounts.v1 import accounts_pb2_grpc
from mbt.activities.v1 import activities_pb2, activities_pb2_grpc
from mbt.common.v1 import events_pb2
from mbt.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from mbt.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from mbt.orders.v1 import events_pb2 as order_events
from mbt.orders.v1 import orders_pb2, orders_pb2_grpc
from services.common.config import Settings
from services.common.ids import derived_id
from services.common.wire.conv import from_timestamp, to_timestamp
from tests.support.identity import BULK_TIER, as_service, as_user, rest_headers
from tests.support.mesh import Mesh, gateway_client, mesh_environ, start_mesh

# The replay starts 30 minutes after the recording's open: 2012-06-21 10:00 New York.
START = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)
CLOSE = datetime(2012, 6, 21, 20, 0, tzinfo=UTC)


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def trading_environ(databases, data_dir, **env: str) -> dict[str, str]:
    return mesh_environ(databases, data_dir, MBT_REPLAY_MODE="stepped", MBT_REPLAY_START=START.isoformat(), **env)


async def start_trading_mesh(databases, data_dir, **env: str) -> Mesh:
    return await start_mesh(Settings.from_env(trading_environ(databases, data_dir, **env)))


class Trading:
    """gRPC access to a trading mesh, as a user or as the platform."""

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self._channels: dict[str, grpc.aio.Channel] = {}

    def channel(self, service: str) -> grpc.aio.Channel:
        if service not in self._channels:
            self._channels[service] = grpc.aio.insecure_channel(self.mesh.target(service))
        return self._channels[service]

    def orders(self):
        return orders_pb2_grpc.OrdersServiceStub(self.channel("orders"))

    def accounts(self):
        return accounts_pb2_grpc.AccountsServiceStub(self.channel("accounts"))

    def activities(self):
        return activities_pb2_grpc.ActivitiesServiceStub(self.channel("activities"))

    def matcher(self):
        return matcher_pb2_grpc.MatcherServiceStub(self.channel("matcher"))

    def marketdata(self):
        return marketdata_pb2_grpc.MarketDataServiceStub(self.channel("marketdata"))

    async def now(self) -> datetime:
        reply = await self.marketdata().GetClock(marketdata_pb2.GetClockRequest(), metadata=as_service("tests"))
        return from_timestamp(reply.clock.now)

    async def step_to(self, moment: datetime) -> None:
        await self.marketdata().StepClock(
            marketdata_pb2.StepClockRequest(to_time=to_timestamp(moment)), metadata=as_service("tests"), timeout=120
        )

    async def step(self, seconds: float) -> None:
        await self.step_to(await self.now() + timedelta(seconds=seconds))

    async def matcher_caught_up(self, timeout: float = 60.0) -> None:
        """Wait until the matcher has decided every tick market data handed out and the orders
        service has its decisions: a stepped replay hands the ticks over before StepClock
        returns, the matcher decides them after."""

        async def check():
            book = await self.matcher().GetBook(matcher_pb2.GetBookRequest(), metadata=as_service("tests"))
            assert book.decisions_in_flight == 0
            for entry in book.symbols:
                latest = await self.marketdata().GetLatestQuote(
                    marketdata_pb2.GetLatestQuoteRequest(symbol=entry.symbol), metadata=as_service("tests")
                )
                assert entry.last_quote_at == latest.quote.quote_at, entry.symbol

        await eventually(check, timeout=timeout)

    async def audit(self, *, user_id: str = "", entity_id: str = "") -> list:
        reply = await self.activities().ListAuditLog(
            activities_pb2.ListAuditLogRequest(user_id=user_id, entity_id=entity_id, page_size=500),
            metadata=as_service("tests"),
        )
        return list(reply.entries)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()


async def eventually(check, *, timeout: float = 60.0, interval: float = 0.1):
    """Retry ``await check()`` until it stops raising AssertionError (events are asynchronous)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(interval)


def user_metadata(user_id: str) -> list[tuple[str, str]]:
    return as_user(user_id)


def rest_as(mesh: Mesh, user_id: str):
    """An HTTP client of the gateway signed in as ``user_id`` (a bearer token)."""
    client = gateway_client(mesh.app)
    client.headers.update(rest_headers(user_id, BULK_TIER))
    return client


async def order_in(client, order_id: str, status: str) -> dict:
    """The order (REST) once it has reached ``status``: fills, cancels and expiries arrive
    asynchronously."""

    async def check():
        order = (await client.get(f"/api/mbt/orders/{order_id}")).json()["data"]
        assert order["status"] == status, order
        return order

    return await eventually(check)


async def account_when(client, **expected: str) -> dict:
    """The account (REST) once the given fields read as expected (fills and releases land
    asynchronously)."""

    async def check():
        account = (await client.get("/api/mbt/account")).json()["data"]
        assert {name: account[name] for name in expected} == expected, account
        return account

    return await eventually(check)


def filled_event(
    order: orders_pb2.Order, fill_id: str, *, qty: str, price: str, multiplier: str = "1"
) -> events_pb2.Event:
    """An OrderFilled event as the orders service writes it: ``qty`` of ``order`` filled at
    ``price`` at START (for tests that drive the ledger's fill path directly)."""
    fill = orders_pb2.Fill(
        fill_id=fill_id,
        order_id=order.order_id,
        symbol=order.symbol,
        side=order.side,
        qty=qty,
        price=price,
        bid_price=price,
        ask_price=price,
        multiplier=multiplier,
        filled_at=to_timestamp(START),
        quote_at=to_timestamp(START),
        quote_sequence=1,
    )
    payload = any_pb2.Any()
    payload.Pack(order_events.OrderFilled(order=order, fill=fill))
    return events_pb2.Event(
        event_id=derived_id("evt", "test", fill_id, qty, price),
        event_type="mbt.orders.v1.OrderFilled",
        producer="orders",
        aggregate_id=order.order_id,
        user_id=order.user_id,
        occurred_at=to_timestamp(START),
        payload=payload,
    )
