"""The notifications service: subscriptions; webhooks, e-mails and daily digests for matching
events; e-mails to proposers about their own proposals."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import eventlet
from pydantic import BaseModel
from werkzeug.wrappers import Response

from kokeilu import service_base
from kokeilu.contracts import CloudEvent, catalog, topics
from kokeilu.http import NotFound, api
from kokeilu.http.entrypoint import ApiRequest
from kokeilu.kafka.consumer import consume
from kokeilu.platform import Store, timer

from . import handlers, metrics
from .api import (
    CHANGE_EXAMPLE,
    ERRORS,
    SUBSCRIPTION_EXAMPLE,
    DeliveryList,
    DeliveryQuery,
    SubscriptionList,
    SubscriptionView,
    caller,
    check_webhook_url,
    subscription_json,
)
from .domain import NewSubscription, SubscriptionChange
from .emails import MailSender, unsubscribe_page
from .settings import address_policy, settings
from .store import NotificationsUnitOfWork
from .unsubscribe import UnsubscribeLinks
from .webhook import WebhookSender

log = logging.getLogger(__name__)
# The event types of the topics it reads: all of them go to the bulk method.
CONSUMED = tuple(t for t in catalog.ALL if t.topic in (topics.PROPOSALS, topics.EVALUATIONS, topics.RESULTS))
# Attempts in flight at once: a slow receiver holds up only its own deliveries.
DELIVERY_CONCURRENCY = 20


class NotificationsService(service_base.PlatformService):
    name = "notifications"
    uow: Callable[[], NotificationsUnitOfWork] = Store(NotificationsUnitOfWork)  # a factory, in a worker
    errors = ERRORS
    # Read when the class is defined (nameko's dependencies and timers take them then), through
    # the same cached accessors as everywhere else.
    send = WebhookSender(policy=address_policy())
    mail = MailSender(domain=settings().mail_domain)
    links = UnsubscribeLinks(settings().unsubscribe_key(), settings().unsubscribe_base())
    retry_policy = settings().retry_policy()

    @api(
        "POST",
        "/v1/subscriptions",
        scope="subscriptions:write",
        body=NewSubscription,
        response=SubscriptionView,
        status=201,
        example=SUBSCRIPTION_EXAMPLE,
    )
    def subscribe(self, request: ApiRequest, body: NewSubscription) -> tuple[int, dict[str, Any]]:
        """Subscribe a webhook or an e-mail address to events; the answer carries the signing secret, once."""
        sub = handlers.create_subscription(body, self.uow(), caller(request), check_url=check_webhook_url)
        return 201, subscription_json(sub, with_secret=True)

    # A subscription belongs to the token that made it: another token (but admin) gets 404 for it.
    @api("GET", "/v1/subscriptions", scope="subscriptions:write", response=SubscriptionList)
    def subscriptions(self, request: ApiRequest) -> dict[str, Any]:
        """The token's subscriptions (admin: all)."""
        return {"items": [subscription_json(s) for s in handlers.list_subscriptions(self.uow(), caller(request))]}

    @api(
        "PATCH",
        "/v1/subscriptions/<subscription_id>",
        scope="subscriptions:write",
        body=SubscriptionChange,
        response=SubscriptionView,
        example=CHANGE_EXAMPLE,
    )
    def change(self, request: ApiRequest, subscription_id: str, body: SubscriptionChange) -> dict[str, Any]:
        """Change a subscription (the channel stays)."""
        sub = handlers.update_subscription(
            subscription_id, body, self.uow(), caller(request), check_url=check_webhook_url
        )
        if sub is None:
            raise NotFound(f"no subscription {subscription_id}", {"subscription_id": "unknown"})
        return subscription_json(sub)

    @api("DELETE", "/v1/subscriptions/<subscription_id>", scope="subscriptions:write", status=204)
    def unsubscribe(self, request: ApiRequest, subscription_id: str) -> tuple[int, None]:
        """Delete a subscription."""
        if not handlers.delete_subscription(subscription_id, self.uow(), caller(request)):
            raise NotFound(f"no subscription {subscription_id}", {"subscription_id": "unknown"})
        return 204, None

    @api("GET", "/v1/deliveries", scope="subscriptions:write", query=DeliveryQuery, response=DeliveryList)
    def deliveries(self, request: ApiRequest) -> dict[str, Any]:
        """Deliveries of the token's subscriptions with every attempt (admin: all, proposer e-mails too)."""
        q = DeliveryQuery.model_validate(request.args.to_dict())
        return {
            "items": handlers.list_deliveries(
                self.uow(),
                q.subscription_id,
                q.status,
                q.limit,
                caller=caller(request),
                channel=q.channel,
                event_type=q.event_type,
                kind=q.kind,
            )
        }

    # Unsubscribe links (every e-mail has one): no bearer token, the link's signature is the authority.
    @api("GET", "/v1/unsubscribe/<token>", public=True, media_type="text/html")
    def unsubscribe_confirm_page(self, request: ApiRequest, token: str) -> Response:
        """The page an e-mail's unsubscribe link opens, with a button that stops those e-mails.

        Opening it changes nothing (mail scanners open links). The link's signature is the
        authority: 400 (`invalid_unsubscribe_link`, naming the problem) for a link this service did
        not make, or one altered or cut short."""
        return Response(unsubscribe_page(self.links.verify(token).kind, done=False), mimetype="text/html")

    @api("POST", "/v1/unsubscribe/<token>", public=True, media_type="text/html")
    def unsubscribe_one_click(self, request: ApiRequest, token: str) -> Response:
        """One-click unsubscribe (RFC 8058): stop the e-mails the link came with.

        What mail programs POST (`List-Unsubscribe=One-Click`; the body is not read), and what the
        page's button sends. Stops the subscription (for a digest, every subscription it gathered)
        or, in a proposer's e-mail, further e-mails about that proposal. Idempotent: 200 again for
        what is stopped already. 400 (`invalid_unsubscribe_link`) for a link this service did not make."""
        target = self.links.verify(token)
        stopped = handlers.unsubscribe(target.kind, target.id, self.uow())
        log.info("unsubscribe link followed: %s %s (%d stopped now)", target.kind, target.id, stopped)
        return Response(unsubscribe_page(target.kind, done=True), mimetype="text/html")

    # Every record goes to on_events in runs (one inbox read and write, and one write of the
    # deliveries and digest items, for a run); on_event applies one record when a run fails as a whole.
    @consume(topics.PROPOSALS, topics.EVALUATIONS, topics.RESULTS, bulk=dict.fromkeys(CONSUMED, "on_events"))
    def on_event(self, event: CloudEvent, data: BaseModel) -> str:
        return handlers.on_event(event, data, self.uow())

    def on_events(self, items: Sequence[tuple[CloudEvent, BaseModel]]) -> list[str]:
        return handlers.on_events(items, self.uow())

    @timer(interval=0.5)
    def deliver(self) -> None:
        # Bounded, so that a stop is not held up for long; the timer comes back in half a second.
        deadline = time.monotonic() + 5
        pool = eventlet.GreenPool(DELIVERY_CONCURRENCY)
        while handlers.deliver_due(
            self.uow,
            self.send,
            self.retry_policy,
            observe=metrics.observe_delivery,
            mail=self.mail.send,
            render=self.mail.render,
            links=self.links.url,
            run_all=lambda fn, items: list(pool.imap(fn, items)),
        ):
            if time.monotonic() > deadline:
                break

    @timer(interval=max(0.5, min(settings().digest_window_seconds / 10, 60)))
    def digests(self) -> None:
        """One job per digest window: the first run after a window closes builds its digests."""
        for size in handlers.build_digests(self.uow, settings().digest_window_seconds):
            metrics.observe_digest(size)
