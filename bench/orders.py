"""Order submit throughput and latency through REST (gateway) and native gRPC, on
PostgreSQL, at concurrency 1 and 32. Orders are 1-share limit buys at $1.00: they are
accepted and rest (the submit path end to end: validation, market data, the buying-power
hold, the order row, outbox) without filling.

The load generator is itself Python: one process keeping 32 requests in flight spends so
much CPU (an httpx request costs ~3.5 ms) that its own event loop becomes the tail, so the
in-flight requests are spread over client processes of at most 8 each."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import time
import uuid

import grpc
import httpx

from bench.mesh import running_mesh
from bench.report import Figure
from mbt.common.v1 import trading_pb2
from mbt.orders.v1 import orders_pb2, orders_pb2_grpc
from tests.support.databases import POSTGRES_URL
from tests.support.identity import as_user, rest_headers

RUNS = 3
# The largest per-minute budget: a benchmark measures the submit path, not the rate limit.
BENCH_TIER = "pro_plus"
CONCURRENCY = (1, 32)
ORDERS = {1: 300, 32: 1500}
IN_FLIGHT_PER_CLIENT_PROCESS = 8
BODY = {
    "symbol": "AMZN",
    "side": "buy",
    "qty": "1",
    "order_type": "limit",
    "limit_price": "1.00",
    "time_in_force": "gtc",
}


async def _drive(concurrency: int, total: int, submit) -> tuple[float, float, list[float]]:
    """Returns the measured window (start, end on the system-wide monotonic clock) and each latency."""
    latencies: list[float] = []
    queue = iter(range(total))

    async def worker(n: int) -> None:
        for _ in queue:
            started = time.perf_counter()
            await submit(n)
            latencies.append(time.perf_counter() - started)

    started = time.monotonic()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return started, time.monotonic(), latencies


async def _rest(url: str, concurrency: int, total: int) -> tuple[float, float, list[float]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        users = [f"bench-rest-{uuid.uuid4().hex[:8]}" for _ in range(concurrency)]
        headers = {user: rest_headers(user, tier=BENCH_TIER) for user in users}
        for user in users:  # open the accounts outside the measurement
            (await client.get("/api/mbt/account", headers=headers[user])).raise_for_status()

        async def submit(n: int) -> None:
            response = await client.post(
                "/api/mbt/orders", headers=headers[users[n]], json={**BODY, "client_order_id": uuid.uuid4().hex}
            )
            response.raise_for_status()

        return await _drive(concurrency, total, submit)


async def _grpc(target: str, concurrency: int, total: int) -> tuple[float, float, list[float]]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        users = [f"bench-grpc-{uuid.uuid4().hex[:8]}" for _ in range(concurrency)]

        async def submit(n: int) -> None:
            request = orders_pb2.SubmitOrderRequest(
                client_order_id=uuid.uuid4().hex,
                symbol="AMZN",
                side=trading_pb2.ORDER_SIDE_BUY,
                qty="1",
                order_type=trading_pb2.ORDER_TYPE_LIMIT,
                limit_price="1.00",
                time_in_force=trading_pb2.TIME_IN_FORCE_GTC,
            )
            await stub.SubmitOrder(request, metadata=as_user(users[n], tier=BENCH_TIER), timeout=30)

        for n in range(concurrency):
            await submit(n)
        return await _drive(concurrency, total, submit)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _client_process(surface: str, address: str, concurrency: int, total: int) -> tuple[float, float, list[float]]:
    drive = _rest if surface == "REST" else _grpc
    return asyncio.run(drive(address, concurrency, total))


def _measure(surface: str, address: str, concurrency: int, total: int) -> tuple[float, list[float]]:
    """Orders/s over all client processes and every latency."""
    processes = max(1, concurrency // IN_FLIGHT_PER_CLIENT_PROCESS)
    # fork: the children need nothing but this module, and start at once.
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        results = pool.starmap(
            _client_process, [(surface, address, concurrency // processes, total // processes)] * processes
        )
    started = min(start for start, _, _ in results)
    finished = max(end for _, end, _ in results)
    latencies = [latency for _, _, each in results for latency in each]
    return len(latencies) / (finished - started), latencies


def run() -> list[Figure]:
    postgres = bool(POSTGRES_URL)
    backend = "PostgreSQL" if postgres else "SQLite (set MBT_TEST_DATABASE_URL for PostgreSQL)"
    figures = []
    with running_mesh(postgres, **STEPPED_REPLAY) as (url, env):
        addresses = {"REST": url, "gRPC": f"127.0.0.1:{env['MBT_ORDERS_PORT']}"}
        for surface, address in addresses.items():
            for concurrency in CONCURRENCY:
                rates, p50s, p99s = [], [], []
                for _ in range(RUNS):
                    rate, latencies = _measure(surface, address, concurrency, ORDERS[concurrency])
                    rates.append(rate)
                    p50s.append(_percentile(latencies, 0.50) * 1000)
                    p99s.append(_percentile(latencies, 0.99) * 1000)
                clients = max(1, concurrency // IN_FLIGHT_PER_CLIENT_PROCESS)
                config = (
                    f"{surface}, concurrency {concurrency} from {clients} client process(es), "
                    f"{ORDERS[concurrency]} orders/run, {backend}, one process per service, "
                    f"{os.cpu_count()} cores"
                )
                aim = ">= 500/s, p99 <= 50 ms" if surface == "REST" else ""
                figures += [
                    Figure(
                        f"submit {surface} c={concurrency}", statistics.median(rates), "orders/s", RUNS, config, aim
                    ),
                    Figure(f"submit {surface} c={concurrency} p50", statistics.median(p50s), "ms", RUNS, config),
                    Figure(f"submit {surface} c={concurrency} p99", statistics.median(p99s), "ms", RUNS, config),
                ]
    return figures


# The market is open and still in the benchmark: a stepped replay clock inside the session.
STEPPED_REPLAY = {"MBT_REPLAY_MODE": "stepped"}
