"""The whole mesh, as users meet it: a browser-style client registers a passkey, signs in,
trades and signs out; a native client does the same over gRPC with the session's bearer
token; a sign-out stops that token at the services too; schemathesis finds no 5xx; and no
token or cookie value ever reaches a log line."""

import io
import logging

import grpc
import pytest

from gateway.identity import SESSION_COOKIE
from gateway.routes import bindings
from mbt.common.v1 import trading_pb2
from mbt.orders.v1 import orders_pb2, orders_pb2_grpc
from services.common.observability.logs import JsonFormatter, TextFormatter
from services.common.security.auth import bearer
from tests.support.fuzz import fuzz
from tests.support.identity import BULK_TIER, rest_headers, sign_in
from tests.support.mesh import TEST_HOST, gateway_client
from tests.support.passkeys import SoftPasskey
from tests.support.trading import start_trading_mesh

ORIGIN = "http://localhost:8080"
RESTING_BUY = {
    "symbol": "AMZN",
    "side": "buy",
    "qty": "1",
    "order_type": "limit",
    "limit_price": "1.00",
    "time_in_force": "gtc",
}


@pytest.fixture
async def mesh(databases, tmp_path):
    mesh = await start_trading_mesh(databases, tmp_path)
    yield mesh
    await mesh.stop()


@pytest.fixture
def captured_logs():
    """Every log record of the test, formatted by both production formatters."""
    stream = io.StringIO()
    handlers = [logging.StreamHandler(stream), logging.StreamHandler(stream)]
    handlers[0].setFormatter(JsonFormatter("test"))
    handlers[1].setFormatter(TextFormatter("test"))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    for handler in handlers:
        root.addHandler(handler)
    yield stream
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(level)


async def passkey_sign_in(client) -> tuple[SoftPasskey, dict]:
    key = SoftPasskey()
    options = (await client.post("/api/sessions/passkeys/registration/options", json={})).json()["data"]
    registered = await client.post(
        "/api/sessions/passkeys/registration", json={"credential": key.create(options["options"], ORIGIN)}
    )
    assert registered.status_code == 201, registered.text
    challenge = (await client.post("/api/sessions/passkeys/assertion/options", json={})).json()["data"]["options"]
    signed_in = await client.post("/api/sessions", json={"credential": key.get(challenge, ORIGIN)})
    assert signed_in.status_code == 201, signed_in.text
    return key, signed_in.json()["data"]


async def test_a_browser_registers_signs_in_trades_and_signs_out(mesh):
    async with gateway_client(mesh.app) as browser:
        _, session = await passkey_sign_in(browser)
        submitted = await browser.post(
            "/api/mbt/orders", json={**RESTING_BUY, "client_order_id": "web-1"}, headers={"Origin": ORIGIN}
        )
        assert submitted.status_code == 200, submitted.text
        listed = (await browser.get("/api/mbt/orders")).json()["data"]
        assert [o["order_id"] for o in listed] == [submitted.json()["data"]["order_id"]]
        assert listed[0]["user_id"] == session["user_id"]
        assert (await browser.delete("/api/sessions/current", headers={"Origin": ORIGIN})).status_code == 200
        browser.cookies.set(SESSION_COOKIE, session["token"], domain=TEST_HOST)
        assert (await browser.get("/api/mbt/orders")).status_code == 401


async def test_a_native_client_trades_with_the_session_token_until_it_signs_out(mesh):
    async with gateway_client(mesh.app) as app:
        token = await sign_in(app, "nina")
        metadata = bearer(token)
        async with grpc.aio.insecure_channel(mesh.target("orders")) as channel:
            orders = orders_pb2_grpc.OrdersServiceStub(channel)
            request = orders_pb2.SubmitOrderRequest(
                client_order_id="ios-1",
                symbol="AMZN",
                side=trading_pb2.ORDER_SIDE_BUY,
                qty="1",
                order_type=trading_pb2.ORDER_TYPE_LIMIT,
                limit_price="1.00",
                time_in_force=trading_pb2.TIME_IN_FORCE_GTC,
            )
            placed = await orders.SubmitOrder(request, metadata=metadata, timeout=10)
            assert placed.order.user_id == "nina"
            fetched = await orders.GetOrder(
                orders_pb2.GetOrderRequest(order_id=placed.order.order_id), metadata=metadata, timeout=10
            )
            assert fetched.order.order_id == placed.order.order_id
            assert (await app.delete("/api/sessions/current")).status_code == 200
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await orders.GetOrder(
                    orders_pb2.GetOrderRequest(order_id=placed.order.order_id), metadata=metadata, timeout=10
                )
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_schemathesis_against_the_real_mesh_finds_no_5xx(mesh):
    async with gateway_client(mesh.app) as client:
        document = (await client.get("/api/mbt/openapi.json")).json()
        failures = await fuzz(client, document, headers=rest_headers("fuzzer", BULK_TIER))
    assert failures == []


async def test_no_token_or_cookie_value_reaches_a_log_line(mesh, captured_logs):
    secrets_seen = []
    async with gateway_client(mesh.app) as browser:
        _, session = await passkey_sign_in(browser)
        secrets_seen.append(session["token"])
        refreshed = await browser.post("/api/sessions/refresh", json={})
        secrets_seen.append(refreshed.json()["data"]["token"])
        await browser.post("/api/mbt/orders", json={**RESTING_BUY, "client_order_id": "log-1"})
        await browser.get("/api/mbt/account")
        await browser.get("/api/mbt/orders/ord_nobody")
        dev_token = await sign_in(browser, "logan")
        secrets_seen.append(dev_token)
        await browser.get("/api/mbt/account", headers={"Authorization": f"Bearer {dev_token}"})
        await browser.get("/api/mbt/account", headers={"Authorization": f"Bearer {dev_token}x"})  # forged
        await browser.get("/api/mbt/account", headers={"Cookie": f"{SESSION_COOKIE}={dev_token}"})
        native = rest_headers("logan")["Authorization"].removeprefix("Bearer ")
        secrets_seen.append(native)
        async with grpc.aio.insecure_channel(mesh.target("orders")) as channel:
            await orders_pb2_grpc.OrdersServiceStub(channel).ListOrders(
                orders_pb2.ListOrdersRequest(), metadata=bearer(native), timeout=10
            )
        await browser.delete("/api/sessions/current")
    text = captured_logs.getvalue()
    assert "/api/sessions" in text and "OrdersService/ListOrders" in text  # the calls were logged ...
    for secret in secrets_seen:  # ... and no credential with them, whole or in part
        for piece in (secret, *secret.split(".")[1:]):
            assert piece not in text


async def test_a_bad_cursor_is_invalid_argument_on_every_list(mesh):
    paged = [
        b for b in bindings() if b.http_method == "GET" and "page_token" in b.request_class.DESCRIPTOR.fields_by_name
    ]
    assert {b.template for b in paged} >= {"/api/mbt/orders", "/api/mbt/activities"}
    async with gateway_client(mesh.app) as client:
        client.headers.update(rest_headers("cursor", BULK_TIER))
        for binding in paged:
            path = binding.template
            for name in binding.path_params.values():
                path = path.replace("{" + name + "}", "AMZN")
            for cursor in ("garbage", "x" * 400, "AAAA", "%00", "eyJub3QiOiJhIGN1cnNvciJ9"):
                response = await client.get(path, params={"page_token": cursor})
                assert response.status_code == 400, (path, cursor, response.text)
                assert response.json()["error"]["code"] == "invalid_argument"


async def test_a_cursor_only_continues_the_list_it_came_from(mesh):
    async with gateway_client(mesh.app) as client:
        client.headers.update(rest_headers("paula", BULK_TIER))
        for n in range(2):
            placed = await client.post("/api/mbt/orders", json={**RESTING_BUY, "client_order_id": f"page-{n}"})
            assert placed.status_code == 200, placed.text
        first = await client.get("/api/mbt/orders", params={"page_size": 1})
        cursor = first.json()["meta"]["next_page_token"]
        assert cursor
        assert (await client.get("/api/mbt/orders", params={"page_size": 1, "page_token": cursor})).status_code == 200
        elsewhere = await client.get("/api/mbt/orders", params={"page_token": cursor, "status": "filled"})
        assert elsewhere.status_code == 400 and elsewhere.json()["error"]["code"] == "invalid_argument"
        theirs = await client.get(
            "/api/mbt/orders", params={"page_size": 1, "page_token": cursor}, headers=rest_headers("mallory", BULK_TIER)
        )
        assert (theirs.status_code, theirs.json()["error"]["code"]) == (400, "invalid_argument")
