"""The gateway as it is served (``gateway.serving``: uvicorn), over real sockets on
127.0.0.1: slow and partial requests are cut off at their deadlines, connections are
capped, anonymous endpoints that write shared state have a per-address budget, a client
that hangs up mid-body is not an error, and HEAD answers like GET without a body."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import asynccontextmanager

import httpx
import pytest
import redis.asyncio as redis
import uvicorn

from gateway import serving
from gateway.app import build_app
from services.common.security.shared_state import SQLITE_FILE
from tests.support.databases import REDIS_URL
from tests.support.identity import rest_headers
from tests.support.mesh import TEST_HOST
from tests.support.redis_keys import REDIS_MARKS, fresh_prefix
from tests.support.wall import Wall

# Far above any deadline below: a test that waits this long has found a connection held open.
HANG_GUARD_SECONDS = 30
ASSERTION_OPTIONS = "/api/sessions/passkeys/assertion/options"


@asynccontextmanager
async def served(upstream, data_dir, *, now=None, **env: str):
    """A real uvicorn server of the gateway on 127.0.0.1 (any free port); yields its port."""
    settings = upstream.settings(
        data_dir, MBT_GATEWAY_HEADER_TIMEOUT_SECONDS="1", MBT_GATEWAY_BODY_TIMEOUT_SECONDS="1", **env
    )
    app = build_app(settings, **({"now": now} if now else {}))
    server = uvicorn.Server(serving.config(app, settings, port=0))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), HANG_GUARD_SECONDS)


async def test_a_client_trickling_its_headers_is_cut_off(upstream, tmp_path):
    async with served(upstream, tmp_path) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /api/mbt/orders HTTP/1.1\r\nHost: {TEST_HOST}\r\n".encode())

        async def trickle():
            for n in range(HANG_GUARD_SECONDS * 5):
                await asyncio.sleep(0.2)
                writer.write(f"X-Slow-{n}: a\r\n".encode())
                await writer.drain()

        trickling = asyncio.create_task(trickle())
        answer = await read_until_closed(reader)
        trickling.cancel()
        await asyncio.gather(trickling, return_exceptions=True)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"code": "request_timeout"' in answer
    assert upstream.api_calls() == []


async def test_a_connection_that_sends_nothing_is_closed(upstream, tmp_path):
    async with served(upstream, tmp_path) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await read_until_closed(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_a_partial_body_is_cut_off_and_changes_nothing(upstream, tmp_path, caplog):
    async with served(upstream, tmp_path) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST /api/sessions/dev HTTP/1.1\r\nHost: {TEST_HOST}\r\nContent-Type: application/json\r\n"
            'Content-Length: 100\r\n\r\n{"user_id": '.encode()
        )
        await writer.drain()
        answer = await read_until_closed(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"set-cookie" not in answer.lower()
    assert shared_state_rows(tmp_path, "session") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_a_kept_alive_connection_may_idle_between_requests(upstream, tmp_path):
    """The header deadline starts with a request's first byte, not when the last one ended."""
    async with (
        served(upstream, tmp_path) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Host": TEST_HOST}) as client,
    ):
        first = await client.get("/api/mbt/orders", headers=rest_headers("alice"))
        await asyncio.sleep(1.5)  # longer than the header deadline
        second = await client.get("/api/mbt/orders", headers=rest_headers("alice"))
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.extensions["network_stream"] is second.extensions["network_stream"]  # the same connection


async def test_the_next_request_on_a_kept_alive_connection_has_its_own_header_deadline(upstream, tmp_path):
    async with served(upstream, tmp_path) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /api/mbt/openapi.json HTTP/1.1\r\nHost: {TEST_HOST}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG_GUARD_SECONDS)
        length = int(
            next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        )
        await reader.readexactly(length)
        writer.write(f"GET /api/mbt/orders HTTP/1.1\r\nHost: {TEST_HOST}\r\n".encode())  # and no more
        answer = await read_until_closed(reader)
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 ")
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_connections_beyond_the_cap_are_refused_at_once(upstream, tmp_path):
    async with served(upstream, tmp_path, MBT_GATEWAY_MAX_CONNECTIONS="3") as port:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Host": TEST_HOST}) as client:
            refused = await client.get("/api/mbt/orders", headers=rest_headers("alice"))
            for _, writer in idle:
                writer.close()
            await asyncio.gather(*(writer.wait_closed() for _, writer in idle))

            async def served_again():
                for _ in range(HANG_GUARD_SECONDS * 10):
                    response = await client.get("/api/mbt/orders", headers=rest_headers("alice"))
                    if response.status_code != 503:
                        return response
                    await asyncio.sleep(0.1)
                return response

            again = await served_again()
    assert refused.status_code == 503
    assert again.status_code == 200


def shared_state_rows(data_dir, namespace: str) -> int:
    connection = sqlite3.connect(data_dir / SQLITE_FILE)
    try:
        return connection.execute("SELECT count(*) FROM shared_state WHERE namespace = ?", (namespace,)).fetchone()[0]
    finally:
        connection.close()


@asynccontextmanager
async def shared_state(kind: str, data_dir):
    """(settings for the gateway, a row counter) for shared state in SQLite or Redis."""
    if kind == "sqlite":
        yield {}, lambda namespace: _async(shared_state_rows(data_dir, namespace))
        return
    async with fresh_prefix() as prefix:
        client = redis.Redis.from_url(REDIS_URL)

        async def count(namespace: str) -> int:
            return len([key async for key in client.scan_iter(match=f"{prefix}{namespace}:*")])

        yield {"MBT_REDIS_URL": REDIS_URL, "MBT_REDIS_KEY_PREFIX": prefix}, count
        await client.aclose()


async def _async(value):
    return value


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("redis", marks=REDIS_MARKS)])
async def test_an_anonymous_flood_gets_429_and_stops_adding_rows(upstream, tmp_path, kind):
    wall = Wall()
    async with (
        shared_state(kind, tmp_path) as (env, rows),
        served(upstream, tmp_path, now=wall, MBT_ANONYMOUS_RATE_LIMIT="5", **env) as port,
    ):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Host": TEST_HOST}) as client:
            answers = [await client.post(ASSERTION_OPTIONS, json={}) for _ in range(8)]
            login = await client.post("/api/sessions/dev", json={"user_id": "flood"})
            spoofed = await client.post(ASSERTION_OPTIONS, json={}, headers={"X-Forwarded-For": "203.0.113.9"})
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Host": TEST_HOST},
            transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2"),
        ) as neighbour:
            other_address = await neighbour.post(ASSERTION_OPTIONS, json={})
        assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
        for refused in (*answers[5:], login, spoofed):  # one budget per address, whatever the client claims
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "rate_limited"
            assert refused.headers["retry-after"] == "12"  # 60 s / 5: when the next request fits
        assert await rows("webauthn") == 6 and await rows("session") == 0  # five, and the neighbour's
        assert other_address.status_code == 200
        wall.advance(12)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Host": TEST_HOST}) as client:
            assert (await client.post("/api/sessions/dev", json={"user_id": "flood"})).status_code == 201


async def test_a_trusted_proxys_forwarded_address_is_the_client(upstream, tmp_path):
    async with (
        served(upstream, tmp_path, now=Wall(), MBT_ANONYMOUS_RATE_LIMIT="1", MBT_TRUSTED_PROXIES="127.0.0.1") as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Host": TEST_HOST}) as proxy,
    ):
        first = await proxy.post(ASSERTION_OPTIONS, json={}, headers={"X-Forwarded-For": "203.0.113.9"})
        again = await proxy.post(ASSERTION_OPTIONS, json={}, headers={"X-Forwarded-For": "203.0.113.9"})
        other = await proxy.post(ASSERTION_OPTIONS, json={}, headers={"X-Forwarded-For": "198.51.100.7"})
    assert (first.status_code, again.status_code, other.status_code) == (200, 429, 200)


async def test_a_client_hanging_up_mid_body_is_not_an_error(upstream, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with served(upstream, tmp_path) as port:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST /api/mbt/orders HTTP/1.1\r\nHost: {TEST_HOST}\r\nContent-Type: application/json\r\n"
            f"Authorization: {rest_headers('alice')['Authorization']}\r\n"
            'Content-Length: 100\r\n\r\n{"symbol": '.encode()
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        for _ in range(HANG_GUARD_SECONDS * 10):
            if any(getattr(r, "fields", {}).get("path") == "/api/mbt/orders" for r in caplog.records):
                break
            await asyncio.sleep(0.1)
    [line] = [r for r in caplog.records if getattr(r, "fields", {}).get("path") == "/api/mbt/orders"]
    assert line.fields["status"] == 499 and line.levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info], caplog.text
    assert upstream.api_calls() == []


@pytest.mark.parametrize("path", ["/api/mbt/orders", "/api/sessions/current", "/healthz", "/api/mbt/openapi.json"])
async def test_head_answers_like_get_without_a_body(upstream, tmp_path, path):
    async with (
        served(upstream, tmp_path) as port,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Host": TEST_HOST, **rest_headers("alice")}
        ) as client,
    ):
        get = await client.get(path)
        head = await client.head(path)
    assert head.status_code == get.status_code
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]
