"""Use cases of the notifications service."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from kokeilu.contracts import CloudEvent, new_event, utcnow
from kokeilu.contracts import catalog as types
from kokeilu.contracts.notifications import DeliveryOutcome

from .domain import DeliveryStatus, NewSubscription, RetryPolicy, Subscription

SOURCE = "kokeilu/notifications"
CONSUMER = "notifications"
LEASE = timedelta(seconds=60)

# send(url, body, headers) -> (status code or None, error or None)
Sender = Callable[[str, bytes, dict], "tuple[int | None, str | None]"]


def create_subscription(body: NewSubscription, uow) -> Subscription:
    sub = Subscription(str(uuid.uuid4()), body.subscriber, body.channel, str(body.url), body.filter, utcnow())
    with uow:
        uow.subscriptions.add(sub)
        uow.commit()
    return sub


def list_subscriptions(uow) -> list[Subscription]:
    with uow:
        return uow.subscriptions.active()


def delete_subscription(subscription_id: str, uow) -> bool:
    with uow:
        deleted = uow.subscriptions.delete(subscription_id, utcnow())
        uow.commit()
    return deleted


def list_deliveries(uow, subscription_id: str | None, status: str | None, limit: int) -> list[dict]:
    with uow:
        return uow.deliveries.list(subscription_id, status, limit)


def on_event(event: CloudEvent, data, uow) -> str:
    """Queue a delivery of `event` to every active subscription whose filter matches."""
    proposal_id = getattr(data, "proposal_id", None)
    focus_area = getattr(data, "focus_area", None)
    with uow:
        if not uow.first_time(CONSUMER, event):
            return "duplicate"
        if proposal_id and focus_area is not None:
            uow.subscriptions.remember_focus_area(proposal_id, focus_area.value)
        area = focus_area.value if focus_area is not None else uow.subscriptions.focus_area_of(proposal_id)
        now = utcnow()
        payload = event.to_bytes()
        for sub in uow.subscriptions.active():
            if sub.matches(event.type, area):
                uow.deliveries.add(str(uuid.uuid4()), sub.id, event.id, event.type, payload, now)
        uow.commit()
    return "applied"


def deliver_due(uow_factory, send: Sender, policy: RetryPolicy, limit: int = 50,
                observe: Callable[[str, str, float], None] | None = None) -> int:
    """Send the deliveries that are due, outside any transaction, and record each attempt."""
    with uow_factory() as uow:
        due = uow.deliveries.claim_due(utcnow(), limit, LEASE)
        uow.commit()
    for d in due:
        attempt = d.attempts + 1
        headers = {"Content-Type": "application/cloudevents+json", "Kokeilu-Delivery-Id": d.id,
                   "Kokeilu-Event-Id": d.event_id, "Idempotency-Key": d.id}
        started = time.perf_counter()
        status_code, error = send(d.url, d.payload, headers)
        latency = time.perf_counter() - started
        ok = status_code is not None and 200 <= status_code < 300
        now = utcnow()
        if ok:
            status, next_at = DeliveryStatus.succeeded, None
        elif policy.retryable(status_code) and attempt < policy.max_attempts:
            status, next_at = DeliveryStatus.pending, policy.next_attempt(attempt, now)
        else:
            status, next_at = DeliveryStatus.failed, None
        error = error or (None if ok else f"HTTP {status_code}")
        with uow_factory() as uow:
            uow.deliveries.record_attempt(d.id, attempt, now, status_code, latency, error, status, next_at)
            if status is not DeliveryStatus.pending:
                outcome = types.DELIVERY_SUCCEEDED if ok else types.DELIVERY_FAILED
                uow.publish(new_event(outcome.name, DeliveryOutcome(
                    delivery_id=d.id, subscription_id=d.subscription_id, channel=d.channel, event_id=d.event_id,
                    event_type=d.event_type, attempts=attempt, status_code=status_code, error=error),
                    source=SOURCE, subject=d.subscription_id, dataschema=outcome.dataschema))
            uow.commit()
        if observe:
            observe(d.channel, "succeeded" if ok else ("retrying" if status is DeliveryStatus.pending else "dead_lettered"),
                    latency)
    return len(due)
