"""GDPR export and erasure through the real mesh, the gateway and the real jobs (an
in-process Celery worker on the embedded transport): the export bundle holds every table of
every component and its hashes verify, only its owner (or an ops token naming them) can
read it; erasure needs a stepped-up session, blocks trading while it cools, can be
canceled, and once due the job hard-deletes every row of the user everywhere — the audit
rows stay, hashed, and the chain still verifies — leaving another user untouched; the job
run again erases nothing; the erased user cannot sign in or come back with a stale token."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import zipfile
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from sqlalchemy import create_engine, func, select

from gateway import store as gateway_store
from mbt.accounts.v1 import privacy_pb2, privacy_pb2_grpc
from mbt.common.v1 import user_data_pb2, user_data_pb2_grpc
from mbt.matcher.v1 import matcher_pb2
from mbt.orders.v1 import orders_pb2
from services.accounts import store as accounts_store
from services.activities import store as activities_store
from services.activities.audit_chain import user_hash
from services.common.config import Settings
from services.common.persistence.db import Database, normalize_url
from services.common.security.tokens import actor_key
from services.jobs.queue import JobQueue
from services.marketdata import store as marketdata_store
from services.matcher import store as matcher_store
from services.orders import store as orders_store
from tests.e2e.test_passkeys import assertion, registered
from tests.service.test_audit_chain import mbt_audit_verify
from tests.support.identity import BULK_TIER, TOKENS, as_ops, as_service, rest_headers
from tests.support.mesh import gateway_client, start_mesh
from tests.support.trading import Trading, eventually, rest_as, trading_environ

USER_TABLES = {
    "accounts": accounts_store.USER_TABLES,
    "orders": orders_store.USER_TABLES,
    "matcher": matcher_store.USER_TABLES,
    "marketdata": marketdata_store.USER_TABLES,
    "activities": activities_store.USER_TABLES,
    "gateway": gateway_store.USER_TABLES,
}
ERASE = "mbt.erase_user_data"
# An hour and a half of simulated time: the replay can step past it.
COOLING_DAYS = 1.5 / 24


@pytest.fixture
async def gdpr(databases, tmp_path):
    environ = trading_environ(
        databases,
        tmp_path / "var",
        MBT_JOBS_DATABASE_URL=databases.new("jobs"),
        MBT_ERASURE_COOLING_DAYS=str(COOLING_DAYS),
        MBT_EXPORT_TTL_HOURS="24",
    )
    mesh = await start_mesh(Settings.from_env(environ))
    trading = Trading(mesh)
    queue = JobQueue(mesh.settings)
    yield trading, queue
    queue.close()
    await trading.close()
    await mesh.stop()


@asynccontextmanager
async def worker(queue: JobQueue):
    with start_worker(queue.app, pool="threads", concurrency=2, perform_ping_check=False):
        yield


def order(client_order_id: str) -> dict:
    return {
        "client_order_id": client_order_id,
        "symbol": "AMZN",
        "side": "buy",
        "qty": "1",
        "order_type": "limit",
        "limit_price": "100.00",
        "time_in_force": "gtc",
    }


async def place(client, client_order_id: str):
    return await client.post("/api/mbt/orders", json=order(client_order_id))


async def stepped_up(browser) -> tuple[str, object, str]:
    """A new user signed in with a passkey on ``browser`` (an elevated session, sent from then
    on): (user id, passkey, session token)."""
    user_id, key = await registered(browser)
    signed_in = await browser.post("/api/sessions", json={"credential": await assertion(browser, key)})
    assert signed_in.status_code == 201 and signed_in.json()["data"]["elevated"] is True
    session_token = signed_in.json()["data"]["token"]
    browser.headers["Authorization"] = f"Bearer {session_token}"
    return user_id, key, session_token


async def user_rows(settings: Settings, user_id: str) -> dict[str, dict[str, int]]:
    """Rows of ``user_id`` per component and table, read from every database directly."""
    counts = {}
    for component, tables in USER_TABLES.items():
        url = settings.gateway_database_url if component == "gateway" else settings.service(component).database_url
        db = Database(url)
        try:
            counts[component] = {table: len(rows) for table, rows in await tables.export(db, user_id)}
        finally:
            await db.aclose()
    return counts


def settled(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Without the outboxes, whose deliveries may still be in flight."""
    return {
        component: {table: n for table, n in tables.items() if "_outbox" not in table}
        for component, tables in counts.items()
    }


def total(counts: dict[str, dict[str, int]]) -> int:
    return sum(sum(tables.values()) for tables in counts.values())


def audit_counts(settings: Settings, user_id: str) -> tuple[int, int, int]:
    """(all audit rows, rows naming the user in clear, rows carrying the user's keyed hash)."""
    engine = create_engine(normalize_url(settings.service("activities").database_url))
    row = activities_store.AuditLogRow
    try:
        with engine.connect() as connection:
            every = connection.execute(select(func.count()).select_from(row)).scalar_one()
            clear = connection.execute(
                select(func.count()).select_from(row).where((row.user_id == user_id) | (row.actor_id == user_id))
            ).scalar_one()
            hashed = connection.execute(
                select(func.count()).select_from(row).where(row.user_hash == user_hash(actor_key(settings), user_id))
            ).scalar_one()
            return every, clear, hashed
    finally:
        engine.dispose()


async def test_the_export_bundle_is_complete_verifies_and_is_only_its_owners(gdpr):
    trading, queue = gdpr
    mesh = trading.mesh
    async with rest_as(mesh, "alice") as alice, rest_as(mesh, "bob") as bob:
        for n in range(2):
            assert (await place(alice, f"alice-{n}")).status_code == 200
        assert (await place(bob, "bob-0")).status_code == 200
        asked = await alice.post("/api/mbt/exports", json={})
        assert asked.status_code == 200, asked.text
        export = asked.json()["data"]
        assert export["status"] == "pending" and export["export_id"].startswith("exp_")
        path = f"/api/mbt/exports/{export['export_id']}"
        not_yet = await alice.get(f"{path}/archive")
        assert not_yet.status_code == 400 and not_yet.json()["error"]["code"] == "failed_precondition"

        async with worker(queue):

            async def ready():
                current = (await alice.get(path)).json()["data"]
                assert current["status"] == "ready", current
                return current

            export = await eventually(ready, timeout=120)
        fetched = await alice.get(f"{path}/archive")
        assert fetched.status_code == 200, fetched.text
        body = fetched.json()["data"]
        archive = base64.b64decode(body["archive"])
        assert body["filename"] == f"mbt-export-{export['export_id']}.zip" and body["content_type"] == "application/zip"
        assert hashlib.sha256(archive).hexdigest() == export["archive_sha256"] == body["archive_sha256"]
        assert int(export["archive_bytes"]) == len(archive)

        with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
            manifest = json.loads(bundle.read("manifest.json"))
            files = {entry["file"]: entry for entry in manifest["files"]}
            assert set(bundle.namelist()) == {*files, "manifest.json"}
            for name, entry in files.items():
                content = bundle.read(name)
                assert hashlib.sha256(content).hexdigest() == entry["sha256"], name
                assert len(json.loads(content)) == entry["rows"], name
            # every table of every component that holds user rows is in it
            assert {(entry["component"], entry["table"]) for entry in files.values()} == {
                (component, table) for component, tables in USER_TABLES.items() for table in tables.names
            }
            assert manifest["user_id"] == "alice" and manifest["export_id"] == export["export_id"]
            orders = json.loads(bundle.read("orders/mbt_orders.json"))
            assert sorted(o["client_order_id"] for o in orders) == ["alice-0", "alice-1"]
            assert {o["user_id"] for o in orders} == {"alice"}
            assert len(json.loads(bundle.read("accounts/users.json"))) == 1
            assert "bob" not in json.dumps([json.loads(bundle.read(name)) for name in files])

        # another user cannot see it, nor fetch it
        for url in (path, f"{path}/archive"):
            refused = await bob.get(url)
            assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    # an ops token reads it only naming the user (and the read is audited)
    stub = privacy_pb2_grpc.PrivacyServiceStub(trading.channel("accounts"))
    read = await stub.GetDataExport(
        privacy_pb2.GetDataExportRequest(export_id=export["export_id"]), metadata=as_ops("carol", "alice")
    )
    assert read.export.archive_sha256 == export["archive_sha256"]

    # one record for the export, done (an attempt that timed out under load is retried);
    # offering it again sends nothing
    runs = await asyncio.to_thread(queue.records.runs, "mbt.export_user_data")
    assert [(run.key, run.state) for run in runs] == [(export["export_id"], "done")]
    assert queue.offer("mbt.export_user_data", export["export_id"], user_id="alice").result == runs[0].result


async def test_erasure_cools_can_be_canceled_and_then_erases_everywhere_once(gdpr):
    trading, queue = gdpr
    mesh, settings = trading.mesh, trading.mesh.settings
    async with gateway_client(mesh.app) as browser, rest_as(mesh, "bob") as bob:
        user_id, key, session_token = await stepped_up(browser)
        assert (await place(browser, "mine-0")).status_code == 200
        assert (await place(bob, "bob-0")).status_code == 200

        # a session that is not stepped up cannot ask
        plain = {"Authorization": f"Bearer {TOKENS.user(user_id, tier='free', ttl_seconds=600)}"}
        refused = await browser.post("/api/mbt/erasure", json={}, headers=plain)
        assert refused.status_code == 403 and "step-up" in refused.json()["error"]["message"]

        asked = await browser.post("/api/mbt/erasure", json={})
        assert asked.status_code == 200, asked.text
        erasure = asked.json()["data"]
        assert erasure["status"] == "pending"
        assert (await browser.get("/api/mbt/erasure")).json()["data"] == erasure

        # cooling: no new order, the account read-only; cancel restores trading
        blocked = await place(browser, "mine-1")
        assert blocked.status_code == 400, blocked.text
        assert blocked.json()["error"]["code"] == "account_erasure_pending"
        canceled = await browser.delete("/api/mbt/erasure")
        assert canceled.status_code == 200 and canceled.json()["data"]["status"] == "none"
        assert (await place(browser, "mine-1")).status_code == 200

        exported = await browser.post("/api/mbt/exports", json={})
        assert exported.status_code == 200
        export_key = exported.json()["data"]["export_id"]
        assert (await browser.post("/api/mbt/erasure", json={})).status_code == 200
        mine_before = await user_rows(settings, user_id)
        assert mine_before["orders"]["mbt_orders"] == 2 and mine_before["gateway"]["gateway_passkeys"] == 1
        audit_before = audit_counts(settings, user_id)
        assert audit_before[1] > 0

        async with worker(queue):
            # not due yet: the hourly run erases nobody, but cancels the cooling user's orders
            early = queue.offer(ERASE, "2012-06-21T14:00Z")
            early = await eventually(lambda: done(queue, early.key))
            assert early.result == {"erased_users": 0, "canceled_orders": 2, "deleted_rows": {}}

            async def only_bobs_in_the_book():
                assert await book_size(trading) == 1

            await eventually(only_bobs_in_the_book)
            await trading.step(timedelta(hours=2).total_seconds())
            bob_before = settled(await user_rows(settings, "bob"))
            assert bob_before["orders"]["mbt_orders"] == 1

            # a run that died after the cancels were delivered and the orders service erased:
            # the next run finishes the rest
            async def delivered():
                reply = await trading.orders().CancelUserOrders(
                    orders_pb2.CancelUserOrdersRequest(user_id=user_id), metadata=as_service("jobs")
                )
                assert (reply.canceled_orders, reply.working_orders, reply.undelivered_events) == (0, 0, 0)

            await eventually(delivered)
            orders = user_data_pb2_grpc.UserDataServiceStub(trading.channel("orders"))
            partial = await orders.EraseUserData(
                user_data_pb2.EraseUserDataRequest(user_id=user_id), metadata=as_service("jobs")
            )
            assert partial.deleted_rows["mbt_orders"] == 2 and partial.deleted_rows["mbt_fills"] == 0
            run = await eventually(lambda: done(queue, queue.offer(ERASE, "2012-06-21T16:00Z").key))
            # (the counts are the finishing attempt's: an attempt retried after a transient error
            # finds part of the rows gone already; the databases themselves are checked below)
            assert run.result["erased_users"] == 1
            assert set(run.result["deleted_rows"]) == {*USER_TABLES, "jobs"}
            export_run = await asyncio.to_thread(queue.records.get, "mbt.export_user_data", export_key)
            assert export_run.arguments == {"user_id": ""}
            # the next hour's run (and the same hour's again) erase nothing more
            again = await eventually(lambda: done(queue, queue.offer(ERASE, "2012-06-21T17:00Z").key))
            assert again.result == {"erased_users": 0, "canceled_orders": 0, "deleted_rows": {}}
            assert queue.offer(ERASE, "2012-06-21T16:00Z").result == run.result

        after = await user_rows(settings, user_id)
        assert total(after) == 0, after
        # the audit rows stay (with the two cancels), the user only as keyed hashes, and the
        # chain verifies
        every, clear, hashed = audit_counts(settings, user_id)
        assert (every, clear) == (audit_before[0] + 2, 0) and hashed >= audit_before[2] > 0
        verified = await asyncio.to_thread(mbt_audit_verify, trading)
        assert verified.returncode == 0, verified.stderr
        assert json.loads(verified.stdout)["broken"] is None
        # the other user is untouched
        assert settled(await user_rows(settings, "bob")) == bob_before

        # the erased user can neither sign in again nor come back with a stale token
        again = await browser.post("/api/sessions", json={"credential": await assertion(browser, key)})
        assert again.status_code == 401, again.text
        stale = await browser.get("/api/mbt/account", headers={"Authorization": f"Bearer {session_token}"})
        assert stale.status_code in (401, 403), stale.text
        stale_token = await browser.get("/api/mbt/account", headers=rest_headers(user_id, BULK_TIER))
        assert stale_token.status_code == 403 and "erased" in stale_token.json()["error"]["message"]
        assert total(await user_rows(settings, user_id)) == 0


async def book_size(trading: Trading) -> int:
    book = await trading.matcher().GetBook(matcher_pb2.GetBookRequest(), metadata=as_service("tests"))
    return book.working_orders


def audited_cancels(settings: Settings, order_id: str) -> list[dict | None]:
    """The ``after`` state of each audited cancel of ``order_id``."""
    engine = create_engine(normalize_url(settings.service("activities").database_url))
    row = activities_store.AuditLogRow
    try:
        with engine.connect() as connection:
            query = select(row.after).where(row.entity_id == order_id, row.action == "cancel")
            return list(connection.execute(query).scalars())
    finally:
        engine.dispose()


async def test_erasure_cancels_the_users_working_orders_before_erasing_them(gdpr):
    trading, queue = gdpr
    mesh, settings = trading.mesh, trading.mesh.settings
    async with gateway_client(mesh.app) as browser, rest_as(mesh, "bob") as bob:
        user_id, _, _ = await stepped_up(browser)
        mine = await place(browser, "resting-0")
        theirs = await place(bob, "bob-resting-0")
        assert mine.status_code == theirs.status_code == 200, (mine.text, theirs.text)
        mine_id, theirs_id = mine.json()["data"]["order_id"], theirs.json()["data"]["order_id"]

        async def both_in_the_book():
            assert await book_size(trading) == 2

        await eventually(both_in_the_book)
        assert (await browser.post("/api/mbt/erasure", json={})).status_code == 200
        await trading.step(timedelta(hours=2).total_seconds())
        # the cooling period over, the order still rests in the matcher's book
        assert await book_size(trading) == 2

        async with worker(queue):
            run = await eventually(lambda: done(queue, queue.offer(ERASE, "2012-06-21T16:00Z").key))
            assert (run.result["erased_users"], run.result["canceled_orders"]) == (1, 1)
            again = await eventually(lambda: done(queue, queue.offer(ERASE, "2012-06-21T17:00Z").key))
            assert again.result == {"erased_users": 0, "canceled_orders": 0, "deleted_rows": {}}

        # canceled through the cancel path before its rows went: out of the book (the job waited
        # for the matcher to receive the cancel), audited with its reason; the rows are gone
        assert await book_size(trading) == 1
        cancels = audited_cancels(settings, mine_id)
        assert len(cancels) == 1 and cancels[0] is not None, cancels
        assert cancels[0]["status"] == "canceled" and cancels[0]["cancel_reason"] == "account_erased", cancels
        assert total(await user_rows(settings, user_id)) == 0
        # the other user's order still works; asking again cancels nothing more
        kept = await bob.get(f"/api/mbt/orders/{theirs_id}")
        assert kept.json()["data"]["status"] == "accepted", kept.text
        repeat = await trading.orders().CancelUserOrders(
            orders_pb2.CancelUserOrdersRequest(user_id=user_id), metadata=as_service("jobs")
        )
        assert (repeat.canceled_orders, repeat.working_orders, repeat.undelivered_events) == (0, 0, 0)
        assert audited_cancels(settings, theirs_id) == []


async def done(queue: JobQueue, key: str):
    run = await asyncio.to_thread(queue.records.get, ERASE, key)
    assert run is not None and run.state == "done", run
    return run
