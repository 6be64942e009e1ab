"""A submit's saga runs on when its caller goes away (the gateway's deadline cancels the RPC):
its outcome is then seen by the saga itself, so a refusal nobody awaits any more leaves no
"Task exception was never retrieved" report behind (services/orders/usecases/submit.py)."""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace

import pytest

from services.common.errors import DomainError
from services.orders.usecases.submit import SubmitSaga


async def test_a_refused_run_whose_caller_went_away_reports_nothing_unretrieved():
    saga = SubmitSaga(deps=None)  # _complete is replaced below: no dependency is used
    gate = asyncio.Event()

    async def refused(order):
        await gate.wait()
        raise DomainError("INSUFFICIENT_BUYING_POWER", "the order may cost up to $4,000.00; buying power is $0.00")

    saga._complete = refused
    loop = asyncio.get_running_loop()
    reports: list[str] = []
    loop.set_exception_handler(lambda _loop, context: reports.append(context["message"]))
    try:
        caller = asyncio.ensure_future(saga._complete_once(SimpleNamespace(order_id="ord_1")))
        await asyncio.sleep(0)
        caller.cancel()  # the deadline: the caller goes, the run goes on
        with pytest.raises(asyncio.CancelledError):
            await caller
        gate.set()
        for _ in range(3):
            await asyncio.sleep(0)
        assert saga._running == {}
        del caller
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert reports == []
