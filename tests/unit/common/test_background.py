"""Background work (services/common/background.py): held until it ends, its failure logged
when it happens — with the traceback — rather than reported by asyncio as "never retrieved"."""

from __future__ import annotations

import asyncio
import gc
import logging

from services.common.background import spawn


async def test_a_failing_background_task_is_logged_once_and_leaves_its_set(caplog):
    loop = asyncio.get_running_loop()
    reports: list[str] = []
    loop.set_exception_handler(lambda _loop, context: reports.append(context["message"]))
    tasks: set[asyncio.Future[None]] = set()

    async def fails() -> None:
        raise RuntimeError("the orders service answered garbage")

    async def succeeds() -> None:
        await asyncio.sleep(0)

    try:
        with caplog.at_level(logging.ERROR, logger="services.common.background"):
            spawn(fails(), tasks)
            spawn(succeeds(), tasks)
            assert len(tasks) == 2
            for _ in range(3):
                await asyncio.sleep(0)
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert tasks == set()
    [record] = caplog.records
    assert record.getMessage().startswith("background task") and record.getMessage().endswith("died")
    assert record.exc_info is not None and str(record.exc_info[1]) == "the orders service answered garbage"
    assert reports == []
