"""A fill's notification: its message (stocks and OCC options), one per fill, and the
webhook's signature as a receiver checks it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from services.activities.domain import (
    WEBHOOK_NONE,
    WEBHOOK_PENDING,
    fill_message,
    fill_notification,
    verify_webhook_signature,
    webhook_body,
    webhook_signature,
)
from services.common.trading import Side

ON = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)
SECRET = b"s" * 32


def test_stock_and_option_fills_read_as_a_person_would_say_them():
    assert fill_message(Side.BUY, Decimal(10), "AMZN", Decimal("224.05"), ON) == "Bought 10 AMZN at $224.05"
    assert (
        fill_message(Side.SELL, Decimal(1), "AMZN120720C00230000", Decimal("2.15"), ON)
        == "Sold 1 AMZN Jul 20 $230 call at $2.15"
    )
    # another year's expiry names the year; a fractional strike stays exact; the root is the class's
    assert (
        fill_message(Side.BUY, Decimal(2), "SPXW130118P01352500", Decimal("2.1"), ON)
        == "Bought 2 SPXW Jan 18 2013 $1,352.5 put at $2.10"
    )
    assert fill_message(Side.BUY, Decimal(100), "SIRI", Decimal("0.51234"), ON) == "Bought 100 SIRI at $0.5123"


def test_one_notification_per_fill_whatever_else_differs():
    def made(now: datetime, webhook: bool):
        return fill_notification(
            fill_id="fill_" + "a" * 24,
            user_id="alice",
            account_id="acc_x",
            order_id="ord_x",
            symbol="AMZN",
            side=Side.BUY,
            qty=Decimal(10),
            price=Decimal("224.05"),
            filled_at=ON,
            now=now,
            webhook=webhook,
        )

    first, again = made(ON, True), made(datetime(2012, 6, 22, tzinfo=UTC), False)
    assert first.notification_id == again.notification_id and first.notification_id.startswith("ntf_")
    assert (first.webhook_state, again.webhook_state) == (WEBHOOK_PENDING, WEBHOOK_NONE)
    assert first.outstanding and again.outstanding  # neither is in the inbox yet


def test_the_signature_verifies_and_nothing_altered_or_stale_does():
    notification = fill_notification(
        fill_id="fill_" + "b" * 24,
        user_id="alice",
        account_id="acc_x",
        order_id="ord_x",
        symbol="AMZN",
        side=Side.SELL,
        qty=Decimal(1),
        price=Decimal(3),
        filled_at=ON,
        now=ON,
        webhook=True,
    )
    body = webhook_body(notification)
    header = webhook_signature(SECRET, 1_700_000_000, body)
    assert verify_webhook_signature(SECRET, header, body, now=1_700_000_100)
    assert not verify_webhook_signature(SECRET, header, body.replace(b"Sold", b"Sole"), now=1_700_000_100)
    assert not verify_webhook_signature(b"t" * 32, header, body, now=1_700_000_100)
    assert not verify_webhook_signature(SECRET, header, body, now=1_700_000_000 + 301)  # a replay, too late
    assert not verify_webhook_signature(SECRET, "v1=abc", body, now=1_700_000_000)
