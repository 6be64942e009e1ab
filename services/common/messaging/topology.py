"""Who consumes which event: the one place the event topology is declared.

Keys are full protobuf names of event payloads; values the services whose
``EventSinkService.Deliver`` receives them. The outbox resolves subscribers when an
event is written, so a change here affects events written from then on.
"""

from __future__ import annotations

from collections.abc import Mapping

SUBSCRIPTIONS: Mapping[str, tuple[str, ...]] = {
    # Orders: the matcher keeps its book from these; accounts releases the holds of
    # replaced and ended orders and applies fills; activities records fills.
    "mbt.orders.v1.OrderAccepted": ("matcher",),
    "mbt.orders.v1.OrderReplaced": ("accounts", "matcher"),
    "mbt.orders.v1.OrderCanceled": ("accounts", "matcher"),
    "mbt.orders.v1.OrderExpired": ("accounts", "matcher"),
    "mbt.orders.v1.OrderFilled": ("accounts", "matcher", "activities"),
    # Accounts.
    "mbt.accounts.v1.AccountOpened": ("activities",),
    "mbt.accounts.v1.DividendPosted": ("activities",),
    "mbt.accounts.v1.MarginInterestCharged": ("activities",),
    "mbt.accounts.v1.OptionSettled": ("activities",),
    # Every service's audit messages end in activities' audit_log.
    "mbt.common.v1.AuditRecorded": ("activities",),
}


def subscribers(event_type: str) -> tuple[str, ...]:
    return SUBSCRIPTIONS.get(event_type, ())


def routed_to(service: str) -> set[str]:
    """The event types the topology delivers to ``service``."""
    return {event_type for event_type, names in SUBSCRIPTIONS.items() if service in names}


def consumers() -> set[str]:
    return {name for names in SUBSCRIPTIONS.values() for name in names}
