"""The events activities consumes (wired in ``app.py``, as the topology routes them): each
becomes an activity or an audit entry through ``wire`` and the use cases; a fill also
becomes a notification. Activities emits
no events of its own."""

from __future__ import annotations

from services.activities import wire
from services.activities.usecases import Activities, Notifications
from services.common.clock import Clock
from services.common.persistence.uow import UnitOfWork


class Handlers:
    def __init__(self, activities: Activities, notifications: Notifications, clock: Clock) -> None:
        self.activities = activities
        self.notifications = notifications
        self.clock = clock

    def by_event_type(self) -> dict:
        return {
            "mbt.orders.v1.OrderFilled": self.on_order_filled,
            "mbt.accounts.v1.AccountOpened": self.on_account_opened,
            "mbt.accounts.v1.DividendPosted": self.on_dividend_posted,
            "mbt.accounts.v1.MarginInterestCharged": self.on_interest_charged,
            "mbt.accounts.v1.OptionSettled": self.on_option_settled,
            "mbt.common.v1.AuditRecorded": self.on_audit,
        }

    async def on_order_filled(self, uow: UnitOfWork, event, payload) -> None:
        now = self.clock.now()
        for activity in wire.fill_activities(payload, now):
            await self.activities.record_activity(uow, activity)
        webhook = self.notifications.webhook is not None
        await self.notifications.record(uow, wire.fill_notification(payload, now, webhook=webhook))

    async def on_account_opened(self, uow: UnitOfWork, event, payload) -> None:
        await self.activities.record_activity(uow, wire.opening_activity(payload, self.clock.now()))

    async def on_dividend_posted(self, uow: UnitOfWork, event, payload) -> None:
        await self.activities.record_activity(uow, wire.dividend_activity(payload, self.clock.now()))

    async def on_interest_charged(self, uow: UnitOfWork, event, payload) -> None:
        await self.activities.record_activity(uow, wire.interest_activity(payload, self.clock.now()))

    async def on_option_settled(self, uow: UnitOfWork, event, payload) -> None:
        await self.activities.record_activity(uow, wire.expiration_activity(payload, self.clock.now()))

    async def on_audit(self, uow: UnitOfWork, event, payload) -> None:
        await self.activities.record_audit(uow, wire.audit_entry(payload, self.clock.now()))
