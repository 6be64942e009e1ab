"""The audit log's hash chain on a real database, over real gRPC: after trading activity the
chain verifies (``VerifyAuditChain`` and ``mbt audit verify``); a row altered or deleted in
the middle is found and named; blanking the clear ids of a user (an erasure) leaves it valid;
concurrent appends make one chain; rows that predate the chain are chained by the migration."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, func, select, text

from mbt.activities.v1 import activities_pb2, activities_pb2_grpc
from services.activities.audit_trail import AuditTrail, actor_key
from services.activities.domain import AuditEntry
from services.activities.store import ActivityRepository, AuditLogRow
from services.common.config import Settings
from services.common.persistence import migrate
from services.common.persistence.db import Database, normalize_url
from tests.support.identity import as_service
from tests.support.trading import rest_as

ROOT = Path(__file__).resolve().parents[2]
UTC = UTC


async def trade(trading, users=("alice", "bob"), orders=3) -> None:
    for user in users:
        async with rest_as(trading.mesh, user) as client:
            for n in range(orders):
                placed = await client.post(
                    "/api/mbt/orders",
                    json={
                        "client_order_id": f"{user}-{n}",
                        "symbol": "AMZN",
                        "side": "buy",
                        "qty": "1",
                        "order_type": "limit",
                        "limit_price": "100.00",
                        "time_in_force": "gtc",
                    },
                )
                assert placed.status_code == 200, placed.text
            await client.delete(f"/api/mbt/orders/{placed.json()['data']['order_id']}")


async def audit_rows(trading) -> int:
    return await asyncio.to_thread(_count_audit_rows, trading.mesh.settings.service("activities").database_url)


def _count_audit_rows(url: str) -> int:
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(AuditLogRow)).scalar_one()
    finally:
        engine.dispose()


async def settled(trading, expected: int) -> None:
    for _ in range(200):
        if await audit_rows(trading) >= expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {expected} audit rows arrived")


async def verify(trading, **request) -> activities_pb2.VerifyAuditChainResponse:
    stub = activities_pb2_grpc.AuditChainServiceStub(trading.channel("activities"))
    return await stub.VerifyAuditChain(activities_pb2.VerifyAuditChainRequest(**request), metadata=as_service("ops"))


async def tamper(trading, statement: str, **params) -> None:
    """Change activities' audit rows behind its back, off the event loop the service runs on
    (a write lock held on that loop would stall the service it waits for)."""
    await asyncio.to_thread(_tamper, trading.mesh.settings.service("activities").database_url, statement, params)


def _tamper(url: str, statement: str, params: dict) -> None:
    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as connection:
            assert connection.execute(text(statement), params).rowcount >= 1
    finally:
        engine.dispose()


def mbt_audit_verify(trading) -> subprocess.CompletedProcess:
    settings = trading.mesh.settings
    env = {**os.environ, "MBT_ACTIVITIES_TARGET": settings.service("activities").target}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "audit", "verify"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_after_trading_the_chain_verifies_whole_and_page_by_page(trading):
    await trade(trading)
    await settled(trading, 10)
    rows = await audit_rows(trading)
    whole = await verify(trading)
    assert not whole.HasField("first_break") and whole.verified_rows == rows and whole.next_sequence == 0
    assert whole.last.sequence == rows and whole.last.audit_id.startswith("aud_") and len(whole.last.row_hash) == 64

    seen, sequence, last = 0, 1, None
    while sequence:
        page = await verify(trading, from_sequence=sequence, page_size=3)
        assert not page.HasField("first_break") and page.verified_rows <= 3
        seen, sequence, last = seen + page.verified_rows, page.next_sequence, page.last
    assert (seen, last) == (rows, whole.last)
    # what an earlier verification saw is still there
    assert not (await verify(trading, expected_links=[whole.last])).HasField("first_break")

    cli = await asyncio.to_thread(mbt_audit_verify, trading)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == {
        "verified_rows": rows,
        "broken": None,
        "head": {"sequence": rows, "audit_id": whole.last.audit_id, "row_hash": whole.last.row_hash},
    }


async def test_a_row_altered_in_the_middle_is_found_and_named(trading):
    await trade(trading)
    await settled(trading, 10)
    await tamper(trading, "UPDATE audit_log SET action = 'forged' WHERE chain_seq = 5")
    answer = await verify(trading)
    assert answer.first_break.sequence == 5 and answer.verified_rows == 4 and answer.last.sequence == 4
    assert (
        answer.first_break.reason == f"row 5 ({answer.first_break.audit_id}) was altered: its content does not "
        "match its hash"
    )
    cli = await asyncio.to_thread(mbt_audit_verify, trading)
    assert cli.returncode == 1 and "the audit chain is broken at row 5" in cli.stderr
    assert json.loads(cli.stdout)["broken"]["sequence"] == 5


async def test_a_row_deleted_in_the_middle_is_found_and_named(trading):
    await trade(trading)
    await settled(trading, 10)
    await tamper(trading, "DELETE FROM audit_log WHERE chain_seq = 6")
    answer = await verify(trading)
    assert answer.first_break.sequence == 6 and answer.first_break.audit_id == ""
    assert answer.first_break.reason.startswith("row 6 is missing: the chain jumps from row 5 to row 7 (aud_")


async def test_a_clear_id_changed_to_someone_else_is_named_but_an_erasure_leaves_the_chain_valid(trading):
    await trade(trading)
    await settled(trading, 10)
    await tamper(trading, "UPDATE audit_log SET actor_id = '', user_id = '' WHERE user_id = 'alice'")
    assert not (await verify(trading)).HasField("first_break")
    await tamper(trading, "UPDATE audit_log SET actor_id = 'mallory' WHERE chain_seq = 3")
    broken = (await verify(trading)).first_break
    assert broken.sequence == 3 and "actor_id does not match the actor the chain recorded" in broken.reason


async def test_bad_requests_are_refused(trading):
    for request, field in (({"from_sequence": -1}, "from_sequence"), ({"page_size": 50_001}, "page_size")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await verify(trading, **request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in refused.value.details()


def _entry(n: int, at: datetime) -> AuditEntry:
    return AuditEntry(
        audit_id=f"aud_t{n:06d}",
        actor_type="system",
        actor_id="orders",
        action="fill",
        entity_type="order",
        entity_id=f"ord_{n}",
        user_id=f"user{n % 4}",
        before=None,
        after={"n": float(n)},
        request_id="req_concurrent",
        service="orders",
        occurred_at=at,
        recorded_at=at,
    )


async def test_concurrent_appends_make_one_chain(databases):
    url = databases.new("activities")
    settings = Settings.from_env({})
    migrate.upgrade("activities", url, settings=settings)
    db = Database(url)
    key, at = actor_key(settings), datetime(2012, 6, 21, 14, tzinfo=UTC)

    async def append(worker: int) -> None:
        for n in range(25):
            async with db.writing() as session:  # each its own connection: the appends race in the database
                await ActivityRepository(session).add_audit(_entry(worker * 100 + n, at), key)

    await asyncio.gather(*(append(worker) for worker in range(8)))
    result = await AuditTrail(db, key).verify(1, 0)
    await db.aclose()
    assert result.broken is None and result.verified_rows == 200 and result.last.sequence == 200


async def test_the_migration_chains_the_rows_already_there_in_the_order_they_were_recorded(databases):
    url = databases.new("activities")
    migrate.upgrade("activities", url, revision="0002")
    engine = create_engine(normalize_url(url))
    at = datetime(2012, 6, 21, 14, tzinfo=UTC)
    columns = (
        "audit_id, actor_type, actor_id, action, entity_type, entity_id, user_id, request_id, service, "
        "occurred_at, recorded_at"
    )
    with engine.begin() as connection:
        for n, offset in enumerate((3, 1, 2)):  # inserted out of their recorded order
            connection.execute(
                text(
                    f"INSERT INTO audit_log ({columns}) VALUES (:id, 'user', 'alice', 'submit', "
                    "'order', :entity, 'alice', 'req_migrated', 'orders', :at, :at)"
                ),
                {"id": f"aud_m{n}", "entity": f"ord_{n}", "at": at + timedelta(seconds=offset)},
            )
    engine.dispose()
    with pytest.raises(RuntimeError, match="MBT_AUDIT_ACTOR_KEY"):
        migrate.upgrade("activities", url)
    settings = Settings.from_env({})
    migrate.upgrade("activities", url, settings=settings)
    db = Database(url)
    async with db.reading() as session:
        order = [entry.audit_id for entry in await ActivityRepository(session).chain_entries(1, 10)]
    result = await AuditTrail(db, actor_key(settings)).verify(1, 0)
    await db.aclose()
    assert order == ["aud_m1", "aud_m2", "aud_m0"] and result.broken is None and result.verified_rows == 3
