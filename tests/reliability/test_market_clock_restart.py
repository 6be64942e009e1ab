"""Simulated time never goes backwards, in any service, when market data restarts.

The other services' follower clocks keep running while market data is down; market data
must come back where they already are, in a paced replay (time runs on) and in a stepped
one (a crash right after a step must not undo it)."""

import asyncio
import itertools
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import grpc

from mbt.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from services.common.clock import FollowerClock
from services.common.rpc.server import start
from services.common.wire.conv import from_timestamp, to_timestamp
from tests.support.identity import as_service
from tests.support.mesh import build_service, free_port, mesh_settings, start_mesh
from tests.support.trading import START, Trading, eventually

ROOT = Path(__file__).resolve().parents[2]
FOLLOWERS = ("accounts", "orders", "matcher", "activities")
SPEED = 20  # simulated seconds per wall second: an outage of one second is 20 s of market time
SERVICE = as_service("tests")


class ObservedFollower(FollowerClock):
    """A service's real follower clock that also counts the leader states it took."""

    def __init__(self) -> None:
        super().__init__()
        self.states_taken = 0

    def anchor(self, simulated_at, speed, wall_at=None) -> None:
        super().anchor(simulated_at, speed, wall_at)
        self.states_taken += 1


def backward_steps(readings: list) -> list:
    return [(earlier, later) for earlier, later in itertools.pairwise(readings) if later < earlier]


async def test_no_service_clock_steps_back_when_market_data_restarts_under_a_paced_replay(databases, tmp_path):
    settings = mesh_settings(
        databases, tmp_path, MBT_REPLAY_MODE="paced", MBT_REPLAY_SPEED=str(SPEED), MBT_REPLAY_START=START.isoformat()
    )
    clocks = {name: ObservedFollower() for name in FOLLOWERS}
    mesh = await start_mesh(
        settings, {name: (lambda s, n=name: build_service(n, s, clock=clocks[n])) for name in FOLLOWERS}
    )
    trading = Trading(mesh)
    timeline = []  # (service, reading) in the order they were read

    async def sample() -> None:
        while True:
            for name, clock in clocks.items():
                timeline.append((name, clock.now()))
            try:
                timeline.append(("marketdata", await trading.now()))
            except grpc.aio.AioRpcError as exc:
                # down for the restart (a call in flight as it stops is cancelled)
                assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), exc
            await asyncio.sleep(0.02)

    sampler = None
    try:
        await eventually(lambda: _all_synced(clocks))
        sampler = asyncio.create_task(sample())
        await asyncio.sleep(0.5)
        taken = {name: clock.states_taken for name, clock in clocks.items()}
        await mesh.services["marketdata"].stop(0.5)
        await asyncio.sleep(1.5)  # followers keep running: 30 s of market time
        mesh.services["marketdata"] = await start(
            build_service("marketdata", settings), port=settings.service("marketdata").port
        )
        await eventually(lambda: _all_took_a_new_state(clocks, taken), timeout=30)
        await asyncio.sleep(0.5)
        assert not sampler.done(), sampler.exception()
    finally:
        if sampler is not None:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
        await trading.close()
        await mesh.stop()
    for name in (*FOLLOWERS, "marketdata"):
        readings = [reading for service, reading in timeline if service == name]
        assert len(readings) > 10, name
        assert backward_steps(readings) == [], f"{name}'s clock stepped back"
    # Market data came back where the followers were, not behind them (which they would hide
    # by holding their time).
    assert backward_steps([reading for _, reading in timeline]) == []


async def _all_synced(clocks) -> None:
    assert all(clock.synced for clock in clocks.values())


async def _all_took_a_new_state(clocks, taken) -> None:
    assert all(clock.states_taken > taken[name] for name, clock in clocks.items())


async def test_a_stepped_clock_keeps_its_last_step_when_market_data_is_killed(databases, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "MBT_DATA_DIR": str(tmp_path / "var"),
        "MBT_MARKETDATA_PORT": str(port),
        "MBT_MARKETDATA_DATABASE_URL": databases.new("marketdata"),
        "MBT_REPLAY_MODE": "stepped",
        "MBT_REPLAY_START": START.isoformat(),
        "MBT_LOG_LEVEL": "WARNING",
    }
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = marketdata_pb2_grpc.MarketDataServiceStub(channel)
    process = await _serve_marketdata(env, tmp_path, stub)
    try:
        stepped_to = START + timedelta(minutes=45)
        await stub.StepClock(marketdata_pb2.StepClockRequest(to_time=to_timestamp(stepped_to)), metadata=SERVICE)
        process.send_signal(signal.SIGKILL)  # right after the step: no chance to save anything
        await process.wait()
        process = await _serve_marketdata(env, tmp_path, stub)
        clock = (await stub.GetClock(marketdata_pb2.GetClockRequest(), metadata=SERVICE)).clock
        assert from_timestamp(clock.now) == stepped_to
    finally:
        process.kill()
        await process.wait()
        await channel.close()


async def _serve_marketdata(env, tmp_path, stub):
    with open(tmp_path / "marketdata.out", "ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.marketdata", cwd=ROOT, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )

    async def serving() -> None:
        assert process.returncode is None, (tmp_path / "marketdata.out").read_text()[-2000:]
        try:
            await stub.GetClock(marketdata_pb2.GetClockRequest(), metadata=SERVICE, timeout=1)
        except grpc.aio.AioRpcError as exc:
            raise AssertionError(exc.code()) from None

    await eventually(serving, timeout=60)
    return process
