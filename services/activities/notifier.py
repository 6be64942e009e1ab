"""The signed webhook, a ``Notifier``: each notification POSTed as JSON to
``MBT_NOTIFY_WEBHOOK_URL`` with ``X-MBT-Signature`` (``domain.webhook_signature``) and
``X-MBT-Notification-Id``. Any 2xx answer is a delivery; anything else, a timeout or a
refused connection is ``DeliveryFailed`` (the job retries it with backoff). A notification may
reach the webhook more than once (an answer lost on the way): receivers drop ids they have seen."""

from __future__ import annotations

import httpx

from services.activities.domain import (
    SIGNATURE_HEADER,
    DeliveryFailed,
    Notification,
    webhook_body,
    webhook_signature,
)
from services.common.clock import Clock


class WebhookNotifier:
    def __init__(self, url: str, secret: bytes, timeout_seconds: float, clock: Clock) -> None:
        self.url = url
        self.secret = secret
        self.timeout = timeout_seconds
        # The signature's timestamp is the receiver's wall time, not the market clock.
        self.clock = clock

    async def deliver(self, notification: Notification) -> None:
        body = webhook_body(notification)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: webhook_signature(self.secret, int(self.clock.now().timestamp()), body),
            "X-MBT-Notification-Id": notification.notification_id,
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
                answer = await client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        if not answer.is_success:
            raise DeliveryFailed(f"the webhook answered HTTP {answer.status_code}")
