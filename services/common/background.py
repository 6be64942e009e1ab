"""Work that runs on after whoever started it: tasks kept in their owner's set (so they are not
garbage-collected mid-way and a drain can await them) whose unexpected failure is logged when
it happens, with its traceback, instead of surfacing as asyncio's "Task exception was never
retrieved" whenever the task happens to be collected."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def log_failure(task: asyncio.Future[T]) -> None:
    """A done callback: a task that raised is logged at error level (name and traceback)."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
        log.error("background task %s died", name, exc_info=exc)


def spawn(work: Awaitable[T], tasks: set[asyncio.Future[T]]) -> asyncio.Future[T]:
    """Run ``work`` in the background, held in ``tasks`` until it ends; a failure is logged."""
    task = asyncio.ensure_future(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    task.add_done_callback(log_failure)
    return task
