"""The notifications service: subscriptions; webhooks, e-mails and daily digests for matching
events; e-mails to proposers about their own proposals."""
from __future__ import annotations

import logging
import os
import re
import time
from datetime import datetime
from typing import Literal

import eventlet
from nameko.timer import timer
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from werkzeug.wrappers import Response

from kokeilu import service_base
from kokeilu.contracts import topics
from kokeilu.http import ApiError, NotFound, Unprocessable, api
from kokeilu.kafka.consumer import consume
from kokeilu.metrics import metrics_for
from kokeilu.netguard import AddressPolicy, AddressRefused, UnresolvedHost
from kokeilu.platform import Store

from . import handlers
from .domain import Caller, Mode, NewSubscription, RetryPolicy, SubscriptionChange, SubscriptionFilter, public_url
from .emails import MailSender, check_domain, unsubscribe_page
from .store import NotificationsUnitOfWork
from .unsubscribe import MIN_SECRET_LENGTH, InvalidToken, UnsubscribeLinks
from .webhook import WebhookSender

_registry = metrics_for("notifications").registry
DELIVERIES = Counter("kokeilu_deliveries", "Delivery attempts by channel and outcome "
                     "(succeeded, retrying, dead_lettered).", ["service", "channel", "outcome"], registry=_registry)
DELIVERY_LATENCY = Histogram("kokeilu_delivery_latency_seconds", "Time one delivery attempt took.",
                             ["service", "channel"], registry=_registry)
RETRIES = Counter("kokeilu_delivery_retries", "Delivery attempts that failed and were scheduled again.",
                  ["service", "channel"], registry=_registry)
DEAD_LETTERED = Counter("kokeilu_deliveries_dead_lettered", "Deliveries given up after their last attempt "
                        "(listed by GET /v1/deliveries?status=dead_lettered).", ["service", "channel"],
                        registry=_registry)
DIGEST_SIZE = Histogram("kokeilu_digest_size_events", "Events grouped into one digest e-mail.", ["service"],
                        registry=_registry, buckets=(1, 2, 5, 10, 20, 50, 100, 250, 1000))
# Exported at 0 from the start, so that increase() (the alerts) and rate() (the dashboard) see the
# first one too, and "deliveries by outcome" shows every outcome, 0 while it does not happen.
for _channel in ("webhook", "email"):
    DEAD_LETTERED.labels(service="notifications", channel=_channel)
    RETRIES.labels(service="notifications", channel=_channel)
    DELIVERY_LATENCY.labels(service="notifications", channel=_channel)
    for _outcome in ("succeeded", "retrying", "dead_lettered"):
        DELIVERIES.labels(service="notifications", channel=_channel, outcome=_outcome)
DIGEST_SIZE.labels(service="notifications")


class NotificationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOKEILU_", extra="ignore")
    digest_window_seconds: float = 86400  # one digest a day
    delivery_max_attempts: int = 6
    delivery_retry_base_seconds: float = 1.0
    delivery_retry_cap_seconds: float = 300.0
    # Webhook destinations allowed although they are not public (local development, tests):
    # comma-separated CIDRs, addresses or host names, e.g. "127.0.0.0/8,::1". Empty: public only.
    webhook_allowlist: str = ""
    # The domain of every e-mail's Message-ID (<delivery id@domain>): a full domain name of the city's.
    mail_domain: str = "kokeilu.espoo.fi"
    # The key that signs unsubscribe links (at least 32 characters). Unset: derived from the admin
    # token, with a warning in the log (services/notifications/unsubscribe.py).
    unsubscribe_secret: SecretStr | None = None
    # Where this service's /v1/unsubscribe/<token> is reached from the readers' mail programs.
    # Unset: this process's own address (WEB_SERVER_ADDRESS), right for a local run only.
    unsubscribe_base_url: str | None = None

    @field_validator("mail_domain")
    @classmethod
    def _full_domain(cls, value: str) -> str:
        return check_domain(value)

    @field_validator("unsubscribe_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"KOKEILU_UNSUBSCRIBE_SECRET must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("unsubscribe_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?", value):
            raise ValueError("KOKEILU_UNSUBSCRIBE_BASE_URL is an http(s) URL with no query, e.g. "
                             "https://kokeilu.espoo.fi/notifications")
        return value.rstrip("/") if value else value

    def unsubscribe_base(self) -> str:
        if self.unsubscribe_base_url:
            return self.unsubscribe_base_url
        host, _, port = os.environ.get("WEB_SERVER_ADDRESS", "127.0.0.1:8003").rpartition(":")
        host = "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host
        return f"http://{host}:{port}"


SETTINGS = NotificationSettings()
log = logging.getLogger(__name__)
ADDRESS_POLICY = AddressPolicy.parse(SETTINGS.webhook_allowlist)
# With it, a subscription's webhooks and e-mails carry residents' personal data unredacted.
PERSONAL_DATA = "personal-data:read"
# Attempts in flight at once: a slow receiver holds up only its own deliveries.
DELIVERY_CONCURRENCY = 20


def _observe(channel: str, outcome: str, latency: float) -> None:
    DELIVERIES.labels(service="notifications", channel=channel, outcome=outcome).inc()
    DELIVERY_LATENCY.labels(service="notifications", channel=channel).observe(latency)
    if outcome == "retrying":
        RETRIES.labels(service="notifications", channel=channel).inc()
    elif outcome == "dead_lettered":
        DEAD_LETTERED.labels(service="notifications", channel=channel).inc()


class InvalidLink(ApiError):
    status, code = 400, "invalid_unsubscribe_link"


def caller(request) -> Caller:
    principal = request.principal
    return Caller(principal.name, admin="admin" in principal.scopes, personal_data=principal.has(PERSONAL_DATA))


def check_webhook_url(url: str) -> None:
    """422 naming `url` for a webhook that points inward (or at a name that does not resolve)."""
    try:
        ADDRESS_POLICY.check_url(url)
    except AddressRefused:
        message = "the webhook URL points to an address that is not allowed (loopback, private, link-local ...)"
        raise Unprocessable(message, {"url": message}) from None
    except UnresolvedHost:
        message = "the webhook URL's host name does not resolve"
        raise Unprocessable(message, {"url": message}) from None


def subscription_json(s, with_secret: bool = False) -> dict:
    body = {"id": s.id, "subscriber": s.subscriber, "channel": s.channel, "url": public_url(s.url), "email": s.email,
            "mode": s.mode, "language": s.language, "filter": s.filter.model_dump(mode="json"),
            "created_at": s.created_at.isoformat(), "signed": s.secret is not None, "owner": s.owner,
            "personal_data": s.personal_data}
    if with_secret and s.secret:
        body["secret"] = s.secret  # shown once: the receiver verifies signatures with it
    return body


# Responses: what subscription_json and the deliveries list write (described in the OpenAPI document).
class View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscriptionView(View):
    model_config = ConfigDict(title="Subscription")
    id: str
    subscriber: str
    channel: Literal["webhook", "email"]
    url: str | None
    email: str | None
    mode: Mode
    language: Literal["fi", "sv", "en"]
    filter: SubscriptionFilter
    created_at: datetime
    signed: bool = Field(description="Webhook deliveries carry a Kokeilu-Signature.")
    owner: str = Field(description="The token (principal) that made it.")
    personal_data: bool = Field(description="Its deliveries carry residents' personal data unredacted.")
    secret: str | None = Field(default=None, description="The signing secret: in the answer to its creation only.")


class SubscriptionList(View):
    items: list[SubscriptionView]


class AttemptView(View):
    attempt: int
    at: datetime
    status_code: int | None
    latency_seconds: float
    error: str | None


class DeliveryView(View):
    model_config = ConfigDict(title="Delivery")
    id: str
    subscription_id: str
    event_id: str
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    dead_lettered: bool
    channel: Literal["webhook", "email"] | None
    kind: Literal["event", "proposer", "digest"]
    attempts: list[AttemptView]
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DeliveryList(View):
    items: list[DeliveryView] = Field(description="Newest first.")


# An e-mail digest (a webhook's URL must resolve to a public address when the subscription is made).
SUBSCRIPTION_EXAMPLE = {"subscriber": "Education department", "channel": "email",
                        "email": "kokeilu@education.example.com", "mode": "daily_digest", "language": "fi",
                        "filter": {"types": ["fi.espoo.kokeilu.result.published"], "focus_areas": ["learning"]}}
CHANGE_EXAMPLE = {"mode": "daily_digest", "language": "sv"}


class DeliveryQuery(BaseModel):
    model_config = {"extra": "forbid"}
    subscription_id: str | None = Field(default=None, max_length=80)
    status: str | None = Field(default=None, pattern="^(pending|succeeded|failed|dead_lettered)$")
    channel: str | None = Field(default=None, pattern="^(webhook|email)$")
    event_type: str | None = Field(default=None, max_length=200)
    kind: str | None = Field(default=None, pattern="^(event|proposer|digest)$")
    limit: int = Field(default=100, ge=1, le=500)


class NotificationsService(service_base.PlatformService):
    name = "notifications"
    uow = Store(NotificationsUnitOfWork)
    send = WebhookSender(policy=ADDRESS_POLICY)
    mail = MailSender(domain=SETTINGS.mail_domain)
    links = UnsubscribeLinks(SETTINGS.unsubscribe_secret.get_secret_value() if SETTINGS.unsubscribe_secret else None,
                             SETTINGS.unsubscribe_base())
    retry_policy = RetryPolicy(SETTINGS.delivery_max_attempts, SETTINGS.delivery_retry_base_seconds,
                               SETTINGS.delivery_retry_cap_seconds)

    @api("POST", "/v1/subscriptions", scope="subscriptions:write", body=NewSubscription,
         response=SubscriptionView, status=201, example=SUBSCRIPTION_EXAMPLE)
    def subscribe(self, request, body: NewSubscription):
        """Subscribe a webhook or an e-mail address to events; the answer carries the signing secret, once."""
        sub = handlers.create_subscription(body, self.uow(), caller(request), check_url=check_webhook_url)
        return 201, subscription_json(sub, with_secret=True)

    # A subscription belongs to the token that made it: another token (but admin) gets 404 for it.
    @api("GET", "/v1/subscriptions", scope="subscriptions:write", response=SubscriptionList)
    def subscriptions(self, request):
        """The token's subscriptions (admin: all)."""
        return {"items": [subscription_json(s) for s in handlers.list_subscriptions(self.uow(), caller(request))]}

    @api("PATCH", "/v1/subscriptions/<subscription_id>", scope="subscriptions:write", body=SubscriptionChange,
         response=SubscriptionView, example=CHANGE_EXAMPLE)
    def change(self, request, subscription_id, body: SubscriptionChange):
        """Change a subscription (the channel stays)."""
        try:
            sub = handlers.update_subscription(subscription_id, body, self.uow(), caller(request),
                                               check_url=check_webhook_url)
        except ValueError as exc:
            raise Unprocessable(str(exc), {"(body)": str(exc)}) from None
        if sub is None:
            raise NotFound(f"no subscription {subscription_id}", {"subscription_id": "unknown"})
        return subscription_json(sub)

    @api("DELETE", "/v1/subscriptions/<subscription_id>", scope="subscriptions:write", status=204)
    def unsubscribe(self, request, subscription_id):
        """Delete a subscription."""
        if not handlers.delete_subscription(subscription_id, self.uow(), caller(request)):
            raise NotFound(f"no subscription {subscription_id}", {"subscription_id": "unknown"})
        return 204, None

    @api("GET", "/v1/deliveries", scope="subscriptions:write", query=DeliveryQuery, response=DeliveryList)
    def deliveries(self, request):
        """Deliveries of the token's subscriptions with every attempt (admin: all, proposer e-mails too)."""
        q = DeliveryQuery.model_validate(request.args.to_dict())
        return {"items": handlers.list_deliveries(self.uow(), q.subscription_id, q.status, q.limit,
                                                  caller=caller(request), channel=q.channel,
                                                  event_type=q.event_type, kind=q.kind)}

    # Unsubscribe links (every e-mail has one): no bearer token, the link's signature is the authority.
    @api("GET", "/v1/unsubscribe/<token>", public=True, media_type="text/html")
    def unsubscribe_confirm_page(self, request, token):
        """The page an e-mail's unsubscribe link opens, with a button that stops those e-mails.

        Opening it changes nothing (mail scanners open links). The link's signature is the
        authority: 400 (`invalid_unsubscribe_link`, naming the problem) for a link this service did
        not make, or one altered or cut short."""
        target = self._unsubscribe_target(token)
        return Response(unsubscribe_page(target.kind, done=False), mimetype="text/html")

    @api("POST", "/v1/unsubscribe/<token>", public=True, media_type="text/html")
    def unsubscribe_one_click(self, request, token):
        """One-click unsubscribe (RFC 8058): stop the e-mails the link came with.

        What mail programs POST (`List-Unsubscribe=One-Click`; the body is not read), and what the
        page's button sends. Stops the subscription (for a digest, every subscription it gathered)
        or, in a proposer's e-mail, further e-mails about that proposal. Idempotent: 200 again for
        what is stopped already. 400 (`invalid_unsubscribe_link`) for a link this service did not make."""
        target = self._unsubscribe_target(token)
        stopped = handlers.unsubscribe(target.kind, target.id, self.uow())
        log.info("unsubscribe link followed: %s %s (%d stopped now)", target.kind, target.id, stopped)
        return Response(unsubscribe_page(target.kind, done=True), mimetype="text/html")

    def _unsubscribe_target(self, token):
        try:
            return self.links.verify(token)
        except InvalidToken as exc:
            raise InvalidLink(f"not a valid unsubscribe link: {exc.problem}; open the whole link from the e-mail",
                           {"token": exc.problem}) from None

    @consume(topics.PROPOSALS, topics.EVALUATIONS, topics.RESULTS)
    def on_event(self, event, data):
        return handlers.on_event(event, data, self.uow())

    @timer(interval=0.5)
    def deliver(self):
        # Bounded, so that a stop is not held up for long; the timer comes back in half a second.
        deadline = time.monotonic() + 5
        pool = eventlet.GreenPool(DELIVERY_CONCURRENCY)
        while handlers.deliver_due(self.uow, self.send, self.retry_policy, observe=_observe,
                                   mail=self.mail.send, render=self.mail.render, links=self.links.url,
                                   run_all=lambda fn, items: list(pool.imap(fn, items))):
            if time.monotonic() > deadline:
                break

    @timer(interval=max(0.5, min(SETTINGS.digest_window_seconds / 10, 60)))
    def digests(self):
        """One job per digest window: the first run after a window closes builds its digests."""
        for size in handlers.build_digests(self.uow, SETTINGS.digest_window_seconds):
            DIGEST_SIZE.labels(service="notifications").observe(size)
