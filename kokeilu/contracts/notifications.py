"""Events the notifications service publishes about its deliveries."""

from __future__ import annotations

from .envelope import Frozen


class DeliveryOutcome(Frozen):
    """`fi.espoo.kokeilu.delivery.succeeded` / `.failed`: one notification reached, or finally missed, a subscriber."""

    delivery_id: str
    subscription_id: str
    channel: str
    event_id: str
    event_type: str
    attempts: int
    status_code: int | None = None
    error: str | None = None
