"""The notifications service: subscriptions, and webhooks for every matching event."""
from __future__ import annotations

from nameko.timer import timer
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, Field

from kokeilu.contracts import topics
from kokeilu.http import NotFound, api
from kokeilu.kafka.consumer import consume
from kokeilu.metrics import metrics_for
from kokeilu.platform import Store
from kokeilu import service_base

from . import handlers
from .domain import DeliveryStatus, NewSubscription, RetryPolicy
from .store import NotificationsUnitOfWork
from .webhook import WebhookSender

_registry = metrics_for("notifications").registry
DELIVERIES = Counter("kokeilu_deliveries", "Delivery attempts by channel and outcome "
                     "(succeeded, retrying, dead_lettered).", ["service", "channel", "outcome"], registry=_registry)
DELIVERY_LATENCY = Histogram("kokeilu_delivery_latency_seconds", "Time one delivery attempt took.",
                             ["service", "channel"], registry=_registry)


def _observe(channel: str, outcome: str, latency: float) -> None:
    DELIVERIES.labels(service="notifications", channel=channel, outcome=outcome).inc()
    DELIVERY_LATENCY.labels(service="notifications", channel=channel).observe(latency)


def subscription_json(s) -> dict:
    return {"id": s.id, "subscriber": s.subscriber, "channel": s.channel, "url": s.url,
            "filter": s.filter.model_dump(mode="json"), "created_at": s.created_at.isoformat()}


class DeliveryQuery(BaseModel):
    model_config = {"extra": "forbid"}
    subscription_id: str | None = Field(default=None, max_length=64)
    status: DeliveryStatus | None = None
    limit: int = Field(default=100, ge=1, le=500)


class NotificationsService(service_base.PlatformService):
    name = "notifications"
    uow = Store(NotificationsUnitOfWork)
    send = WebhookSender()
    retry_policy = RetryPolicy()

    @api("POST", "/v1/subscriptions", scope="subscriptions:write", body=NewSubscription)
    def subscribe(self, request, body: NewSubscription):
        return 201, subscription_json(handlers.create_subscription(body, self.uow()))

    @api("GET", "/v1/subscriptions", scope="subscriptions:write")
    def subscriptions(self, request):
        return {"items": [subscription_json(s) for s in handlers.list_subscriptions(self.uow())]}

    @api("DELETE", "/v1/subscriptions/<subscription_id>", scope="subscriptions:write")
    def unsubscribe(self, request, subscription_id):
        if not handlers.delete_subscription(subscription_id, self.uow()):
            raise NotFound(f"no subscription {subscription_id}", {"subscription_id": "unknown"})
        return 204, None

    @api("GET", "/v1/deliveries", scope="subscriptions:write")
    def deliveries(self, request):
        q = DeliveryQuery.model_validate(request.args.to_dict())
        return {"items": handlers.list_deliveries(self.uow(), q.subscription_id, q.status and q.status.value, q.limit)}

    @consume(topics.PROPOSALS, topics.EVALUATIONS, topics.RESULTS)
    def on_event(self, event, data):
        return handlers.on_event(event, data, self.uow())

    @timer(interval=0.5)
    def deliver(self):
        while handlers.deliver_due(self.uow, self.send, self.retry_policy, observe=_observe):
            pass
