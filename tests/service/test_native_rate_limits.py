"""Native gRPC clients are rate-limited by the service's interceptor (the gateway's calls
are not counted twice), with the budget in trailing metadata."""

import grpc
import pytest

from mbt.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from services.common.rpc.server import Registration, ServiceRuntime, start
from services.common.security.auth import FORWARDED_BY
from services.common.security.ratelimit import InProcessRateLimiter
from tests.support.identity import TOKENS, as_user
from tests.support.wall import Wall


class Accounts(accounts_pb2_grpc.AccountsServiceServicer):
    """Answers GetAccount at once: these tests are about the interceptor in front of it."""

    async def GetAccount(self, request, context):
        return accounts_pb2.GetAccountResponse()


@pytest.fixture
async def accounts():
    wall = Wall()
    running = await start(
        ServiceRuntime("accounts", [Registration.of(Accounts())], rate_limiter=InProcessRateLimiter(now=wall))
    )
    channel = grpc.aio.insecure_channel(running.address)
    yield accounts_pb2_grpc.AccountsServiceStub(channel), wall
    await channel.close()
    await running.stop(0)


async def test_a_native_free_user_is_refused_after_60_calls_a_minute(accounts):
    stub, wall = accounts
    metadata = as_user("fred")
    for n in range(1, 61):
        call = stub.GetAccount(accounts_pb2.GetAccountRequest(), metadata=metadata)
        await call
        trailers = dict(await call.trailing_metadata())
        assert (trailers["x-ratelimit-limit"], trailers["x-ratelimit-remaining"]) == ("60", str(60 - n))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetAccount(accounts_pb2.GetAccountRequest(), metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(refused.value.trailing_metadata())
    assert (
        trailers["retry-after"],
        trailers["x-ratelimit-limit"],
        trailers["x-ratelimit-remaining"],
        trailers["x-ratelimit-reset"],
    ) == ("1", "60", "0", "60")
    wall.advance(1)
    await stub.GetAccount(accounts_pb2.GetAccountRequest(), metadata=metadata)


async def test_calls_the_gateway_forwards_are_not_counted_again(accounts):
    stub, _ = accounts
    forwarded = [*as_user("fred"), (FORWARDED_BY, TOKENS.service("gateway", ttl_seconds=600))]
    for _ in range(100):
        call = stub.GetAccount(accounts_pb2.GetAccountRequest(), metadata=forwarded)
        await call
        assert "x-ratelimit-remaining" not in dict(await call.trailing_metadata())
    call = stub.GetAccount(accounts_pb2.GetAccountRequest(), metadata=as_user("fred"))
    await call
    assert dict(await call.trailing_metadata())["x-ratelimit-remaining"] == "59"
