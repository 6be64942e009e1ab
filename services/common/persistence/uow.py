"""The unit of work: one local transaction of a service — its rows, the domain events its
aggregates recorded, and the outbox messages and audit rows those events become — committed
together or not at all (DESIGN §4; cosmicpython's unit of work, with the outbox in place of
publishing after commit).

A use case opens one with ``async with self.uow() as uow:``, loads and saves aggregates
through repositories bound to it (``OrderRepository(uow)``), and a repository's ``save``
hands the aggregate's new events to ``uow.collect``. When the block ends the events are
published through the service's ``publish`` (its ``events.py``: domain event -> outbox
message and audit row) inside the same transaction, then the transaction commits and the
relay is woken.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.messaging.outbox import Outbox
from services.common.persistence.db import Database


@dataclass
class UnitOfWork:
    """One transaction of a service: its session, the outbox its messages go to, and the
    domain events collected from the aggregates it saved."""

    session: AsyncSession
    outbox: Outbox
    publish: Callable[[UnitOfWork, Any], Awaitable[None]] | None = None
    # Subscribers with new pending messages: their relays are woken after commit.
    subscribers: set[str] = field(default_factory=set)
    _events: list[Any] = field(default_factory=list)

    def collect(self, events: Iterable[Any]) -> None:
        """Domain events an aggregate recorded; published when the unit of work ends."""
        self._events.extend(events)

    async def emit(self, payload: Message, **kwargs: Any) -> None:
        """Write one outbox message (``Outbox.add``'s keywords)."""
        self.subscribers.update(await self.outbox.add(self.session, payload, **kwargs))

    async def audit(self, **kwargs: Any) -> None:
        """Write one audit message (``Outbox.audit``'s keywords)."""
        self.subscribers.update(await self.outbox.audit(self.session, **kwargs))

    async def publish_collected(self) -> None:
        while self._events:
            event = self._events.pop(0)
            if self.publish is None:
                raise RuntimeError(f"{type(event).__name__} was recorded but this unit of work publishes nothing")
            await self.publish(self, event)


@asynccontextmanager
async def unit_of_work(
    db: Database, outbox: Outbox, publish: Callable[[UnitOfWork, Any], Awaitable[None]] | None = None
) -> AsyncIterator[UnitOfWork]:
    """Commit the block's rows, events and audit rows together; wake the relay after commit.
    An exception in the block rolls everything back."""
    async with db.writing() as session:
        uow = UnitOfWork(session, outbox, publish)
        yield uow
        await uow.publish_collected()
    if uow.subscribers:
        outbox.notify(frozenset(uow.subscribers))
