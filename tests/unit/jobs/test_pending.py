"""The loop that offers what is pending to its job: each key once, with its arguments, until
its offer went through; every key again after ``reoffer_seconds``; a failed pass retried."""

import asyncio
import logging
from collections.abc import Mapping

from services.jobs.pending import PendingOffers

JOB = "mbt.some_job"


class Harness:
    """What is pending (set by the test), the offers made, and each pass as it starts.

    A pass's offers are all made once the next pass has started: the test wakes the loop and
    waits for that pass (a wake during a pass is kept for the next one). The tests stop the
    loop in a pass that has nothing to offer."""

    def __init__(self, offers: PendingOffers, failing: frozenset[str] = frozenset()) -> None:
        self.offers = offers
        self.pending: dict[str, Mapping[str, object]] = {}
        self.offered: list[tuple[str, str, dict[str, object]]] = []
        self.failing = set(failing)
        self.passes: asyncio.Queue[int] = asyncio.Queue()
        self._count = 0

    async def read(self) -> Mapping[str, Mapping[str, object]]:
        self._count += 1
        self.passes.put_nowait(self._count)
        return dict(self.pending)

    def offer(self, job: str, key: str, **arguments: object) -> None:
        self.offered.append((job, key, arguments))
        if key in self.failing:
            self.failing.discard(key)  # fails once, then the queue is back
            raise ConnectionError("the jobs' broker is away")

    async def next_pass(self) -> None:
        self.offers.wake()
        await self.passes.get()


async def running(harness: Harness) -> asyncio.Task[None]:
    task = asyncio.create_task(harness.offers.run(harness.read, harness.offer))
    await harness.passes.get()
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def loop(**times: float) -> PendingOffers:
    return PendingOffers(JOB, "things", logging.getLogger("tests.jobs.pending"), **{"retry_seconds": 0.0, **times})


async def test_each_pending_key_is_offered_once_with_its_arguments_and_a_new_one_when_woken():
    harness = Harness(loop())
    harness.pending = {"a": {"user_id": "usr_1"}, "b": {}}
    task = await running(harness)
    await harness.next_pass()
    harness.pending["c"] = {"user_id": "usr_2"}
    await harness.next_pass()
    await harness.next_pass()
    await stop(task)
    assert harness.offered == [(JOB, "a", {"user_id": "usr_1"}), (JOB, "b", {}), (JOB, "c", {"user_id": "usr_2"})]


async def test_a_failed_offer_is_logged_and_made_again_on_the_next_pass_until_it_goes_through(caplog):
    harness = Harness(loop(), failing={"b"})
    harness.pending = {"a": {}, "b": {}, "c": {}}
    with caplog.at_level(logging.WARNING, logger="tests.jobs.pending"):
        task = await running(harness)
        await harness.passes.get()  # the retry pass, after retry_seconds without being woken
        await harness.next_pass()
        await stop(task)
    assert [key for _, key, _ in harness.offered] == ["a", "b", "b", "c"]
    assert [r.getMessage() for r in caplog.records] == ["cannot offer things to the jobs queue; retrying"]


async def test_a_failed_read_of_what_is_pending_is_retried():
    harness = Harness(loop())
    harness.pending = {"a": {}}
    reads = 0
    read = harness.read

    async def read_failing_once() -> Mapping[str, Mapping[str, object]]:
        nonlocal reads
        reads += 1
        if reads == 1:
            raise ConnectionError("the service's database is away")
        return await read()

    task = asyncio.create_task(harness.offers.run(read_failing_once, harness.offer))
    await harness.passes.get()  # the first read that worked: the retry
    await harness.next_pass()
    await stop(task)
    assert harness.offered == [(JOB, "a", {})]


async def test_with_reoffer_seconds_what_is_still_pending_is_offered_again():
    harness = Harness(loop(reoffer_seconds=0.0))
    harness.pending = {"a": {}}
    task = await running(harness)
    await harness.next_pass()
    harness.pending = {"b": {}}
    await harness.next_pass()
    await harness.next_pass()
    harness.pending = {}
    await harness.next_pass()
    await stop(task)
    assert [key for _, key, _ in harness.offered] == ["a", "a", "b", "b"]
