"""Fill notifications end to end, on the embedded transport with SQLite and on Redis with
PostgreSQL: a real worker runs ``mbt.send_fill_notification`` for the fill activities
records; the message reaches the inbox (REST and gRPC) and a signed webhook — a local HTTP
server whose signature check passes — which is down at first and so retried, not lost. The
fill's event delivered twice (and re-emitted under a new id) and the job run twice still make
one notification and one webhook delivery."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.protobuf import any_pb2

from mbt.activities.v1 import activities_pb2, activities_pb2_grpc
from mbt.common.v1 import events_pb2, events_pb2_grpc
from mbt.orders.v1 import events_pb2 as order_events_pb2
from mbt.orders.v1 import orders_pb2
from services.activities.domain import SIGNATURE_HEADER, verify_webhook_signature
from services.common.config import Settings
from services.common.security.tokens import new_key
from services.jobs.runs import task_id
from tests.reliability.test_jobs import _logged, record, until
from tests.support.identity import as_service, as_user
from tests.support.jobs import VARIANTS, jobs_mesh
from tests.support.mesh import free_port
from tests.support.trading import Trading, eventually, rest_as

SEND = "mbt.send_fill_notification"
SECRET_ENTRY = new_key()
SECRET = Settings.from_env({"MBT_NOTIFY_WEBHOOK_URL": "http://x", "MBT_NOTIFY_WEBHOOK_SECRET": SECRET_ENTRY})


class Webhook:
    """A receiver on 127.0.0.1 that answers 503 to its first ``failures`` posts and 204 after,
    keeping every post (headers and body)."""

    def __init__(self) -> None:
        self.failures = 0
        self.received: list[tuple[dict[str, str], bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append((dict(self.headers), body))
                failing = len(hook.received) <= hook.failures
                self.send_response(503 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=VARIANTS)
async def notifying(request, tmp_path):
    hook = Webhook()
    try:
        async with jobs_mesh(
            request.param,
            tmp_path,
            MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS="2",
            MBT_NOTIFY_WEBHOOK_URL=hook.url,
            MBT_NOTIFY_WEBHOOK_SECRET=SECRET_ENTRY,
        ) as (trading, processes, queue):
            yield trading, processes, queue, hook
    finally:
        hook.close()


async def filled_order(trading: Trading, client, **order) -> orders_pb2.Order:
    placed = await client.post("/api/mbt/orders", json=order)
    assert placed.status_code == 200, placed.text
    order_id = placed.json()["data"]["order_id"]

    async def filled():
        reply = await trading.orders().GetOrder(
            orders_pb2.GetOrderRequest(order_id=order_id), metadata=as_user("alice")
        )
        assert reply.order.status == orders_pb2.ORDER_STATUS_FILLED, reply.order
        return reply.order

    return await eventually(filled)


async def deliver_again(trading: Trading, order: orders_pb2.Order, event_id: str) -> None:
    """The fill's OrderFilled event delivered to activities as orders' relay would."""
    payload = any_pb2.Any()
    payload.Pack(order_events_pb2.OrderFilled(order=order, fill=order.fills[0]))
    event = events_pb2.Event(
        event_id=event_id,
        event_type="mbt.orders.v1.OrderFilled",
        producer="orders",
        aggregate_id=order.fills[0].fill_id,
        user_id=order.user_id,
        occurred_at=order.fills[0].filled_at,
        payload=payload,
    )
    sink = events_pb2_grpc.EventSinkServiceStub(trading.channel("activities"))
    await sink.Deliver(events_pb2.DeliverRequest(events=[event]), metadata=as_service("orders"))


async def test_one_notification_per_fill_in_the_inbox_and_a_signed_webhook_retried_until_it_takes_it(notifying):
    trading, processes, queue, hook = notifying
    hook.failures = 2  # the webhook is down for the first two tries
    await processes.start("worker")
    async with rest_as(trading.mesh, "alice") as alice, rest_as(trading.mesh, "bob") as bob:
        order = await filled_order(
            trading, alice, client_order_id="n-1", symbol="AMZN", side="buy", qty="10", order_type="market",
            time_in_force="day",
        )  # fmt: skip
        [fill] = order.fills
        message = f"Bought 10 AMZN at ${fill.price}"

        # Two refusals (UNAVAILABLE: the channel's retry policy and the job's backoff retry
        # them), then taken.
        done = await record(processes, SEND, fill.fill_id, "done")
        assert done.result["message"] == message
        assert (done.result["webhook"], done.result["webhook_attempts"]) == ("delivered", 3)
        notification_id = done.result["notification_id"]

        # Every post is the same notification, signed; the signature verifies against the secret.
        assert len(hook.received) == 3
        for headers, body in hook.received:
            assert verify_webhook_signature(
                SECRET.notify_webhook_secret, headers[SIGNATURE_HEADER], body, now=int(time.time())
            )
            assert headers["X-MBT-Notification-Id"] == notification_id
            sent = json.loads(body)
            assert (sent["id"], sent["message"], sent["fill_id"], sent["user_id"]) == (
                notification_id,
                message,
                fill.fill_id,
                "alice",
            )
        headers, body = hook.received[-1]
        assert not verify_webhook_signature(b"x" * 32, headers[SIGNATURE_HEADER], body, now=int(time.time()))

        # The inbox, over REST and gRPC.
        listed = (await alice.get("/api/mbt/notifications")).json()
        [shown] = listed["data"]
        assert (shown["notification_id"], shown["message"], shown["kind"], shown["fill_id"]) == (
            notification_id,
            message,
            "fill",
            fill.fill_id,
        )
        assert (
            shown["read_at"] is None and shown["delivered_at"] is not None and listed["meta"]["next_page_token"] is None
        )
        stub = activities_pb2_grpc.NotificationsServiceStub(trading.channel("activities"))
        native = await stub.ListNotifications(activities_pb2.ListNotificationsRequest(), metadata=as_user("alice"))
        assert [n.message for n in native.notifications] == [message]
        assert (await bob.get("/api/mbt/notifications")).json()["data"] == []

        # The fill's event delivered twice, then re-emitted under a new event id; the job
        # offered again and its message sent again: still one notification, one delivery.
        for event_id in ("evt_again", "evt_again", "evt_reemitted"):
            await deliver_again(trading, order, event_id)
        assert (await asyncio.to_thread(queue.offer, SEND, fill.fill_id)).state == "done"
        await asyncio.to_thread(queue.app.send_task, SEND, args=[fill.fill_id], task_id=task_id(SEND, fill.fill_id))
        await until(lambda: _logged(processes, "job skipped", fill.fill_id))
        assert len((await alice.get("/api/mbt/notifications")).json()["data"]) == 1
        assert len(hook.received) == 3
        assert (await processes.run(SEND, fill.fill_id)).attempts == done.attempts

        # Mark read (again: the first read time stays); another user's is not found.
        assert (await bob.post(f"/api/mbt/notifications/{notification_id}/read")).status_code == 404
        read = await alice.post(f"/api/mbt/notifications/{notification_id}/read")
        assert read.status_code == 200, read.text
        read_at = read.json()["data"]["read_at"]
        assert read_at is not None
        again = await alice.post(f"/api/mbt/notifications/{notification_id}/read")
        assert again.status_code == 200, again.text
        assert again.json()["data"]["read_at"] == read_at
        assert (await alice.get("/api/mbt/notifications", params={"unread_only": "true"})).json()["data"] == []
        assert len((await alice.get("/api/mbt/notifications")).json()["data"]) == 1


async def test_a_webhook_that_is_down_is_retried_until_it_is_back_and_nothing_is_lost(notifying):
    trading, processes, _, hook = notifying
    hook.failures = 10**6  # down until told otherwise
    await processes.start("worker")
    async with rest_as(trading.mesh, "alice") as alice:
        order = await filled_order(
            trading, alice, client_order_id="n-2", symbol="AMZN", side="buy", qty="1", order_type="market",
            time_in_force="day",
        )  # fmt: skip
        fill_id = order.fills[0].fill_id

        async def retried():
            assert len(hook.received) >= 2, hook.received
            run = await processes.run(SEND, fill_id)
            assert run is not None and run.state in ("pending", "running") and run.error.startswith("unavailable: ")

        await until(retried)
        # In the inbox already: the webhook's failure holds back only the webhook.
        [shown] = (await alice.get("/api/mbt/notifications")).json()["data"]
        assert shown["fill_id"] == fill_id
        hook.failures = 0  # the webhook is back
        done = await record(processes, SEND, fill_id, "done")
        assert done.result["webhook"] == "delivered" and done.result["webhook_attempts"] == len(hook.received)
        assert json.loads(hook.received[-1][1])["fill_id"] == fill_id
