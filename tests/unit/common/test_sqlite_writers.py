"""SQLite write transactions of one process take turns, first come first served, instead of
polling SQLite's busy handler (services/common/persistence/db.py): under fifty concurrent
submits the busy handler's sleeps had pushed answers past the gateway's deadline."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from services.common.persistence.db import Database


async def test_concurrent_write_transactions_run_one_at_a_time_in_arrival_order(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'writers.db'}")
    async with db.writing() as session:
        await session.execute(text("CREATE TABLE turns (n INTEGER PRIMARY KEY, writer INTEGER, inside INTEGER)"))
    inside = 0

    async def writer(number: int) -> None:
        nonlocal inside
        async with db.writing() as session:
            inside += 1
            await session.execute(
                text("INSERT INTO turns (writer, inside) VALUES (:writer, :inside)"),
                {"writer": number, "inside": inside},
            )
            await asyncio.sleep(0)  # other writers get the loop while this one holds its transaction
            inside -= 1

    try:
        await asyncio.gather(*(writer(number) for number in range(50)))
        async with db.reading() as session:
            rows = (await session.execute(text("SELECT writer, inside FROM turns ORDER BY n"))).all()
    finally:
        await db.aclose()
    assert [writer for writer, _ in rows] == list(range(50))
    assert {inside for _, inside in rows} == {1}


async def test_a_failed_write_transaction_rolls_back_and_lets_the_next_writer_in(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'writers.db'}")
    async with db.writing() as session:
        await session.execute(text("CREATE TABLE notes (body TEXT)"))

    async def failing() -> None:
        async with db.writing() as session:
            await session.execute(text("INSERT INTO notes VALUES ('rolled back')"))
            raise RuntimeError("the block failed")

    try:
        results = await asyncio.gather(failing(), failing(), return_exceptions=True)
        async with db.writing() as session:
            await session.execute(text("INSERT INTO notes VALUES ('kept')"))
        async with db.reading() as session:
            bodies = (await session.execute(text("SELECT body FROM notes"))).scalars().all()
    finally:
        await db.aclose()
    assert [type(result) for result in results] == [RuntimeError, RuntimeError]
    assert bodies == ["kept"]
