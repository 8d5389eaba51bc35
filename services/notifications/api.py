"""Notifications over HTTP: responses, request bodies and queries, who is calling, and how the
domain's refusals are answered (ERRORS, read by the `api` entrypoint)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kokeilu.http import Unprocessable
from kokeilu.http.entrypoint import ApiRequest, Refusal
from kokeilu.netguard import AddressRefused, UnresolvedHost

from .domain import Caller, InvalidChange, Mode, SubscriptionFilter, public_url
from .settings import address_policy
from .unsubscribe import InvalidToken

# With it, a subscription's webhooks and e-mails carry residents' personal data unredacted.
PERSONAL_DATA = "personal-data:read"

ERRORS = {
    InvalidChange: Refusal(422, "validation_failed", fields=lambda exc: {"(body)": str(exc)}),
    InvalidToken: Refusal(
        400,
        "invalid_unsubscribe_link",
        fields=lambda exc: {"token": exc.problem},
        message=lambda exc: f"not a valid unsubscribe link: {exc.problem}; open the whole link from the e-mail",
    ),
}


def caller(request: ApiRequest) -> Caller:
    principal = request.principal
    assert principal is not None  # every route that asks is scoped: the request has its token's
    return Caller(principal.name, admin="admin" in principal.scopes, personal_data=principal.has(PERSONAL_DATA))


def check_webhook_url(url: str) -> None:
    """422 naming `url` for a webhook that points inward (or at a name that does not resolve)."""
    try:
        address_policy().check_url(url)
    except AddressRefused:
        message = "the webhook URL points to an address that is not allowed (loopback, private, link-local ...)"
        raise Unprocessable(message, {"url": message}) from None
    except UnresolvedHost:
        message = "the webhook URL's host name does not resolve"
        raise Unprocessable(message, {"url": message}) from None


def subscription_json(s: Any, with_secret: bool = False) -> dict[str, Any]:
    body = {
        "id": s.id,
        "subscriber": s.subscriber,
        "channel": s.channel,
        "url": public_url(s.url),
        "email": s.email,
        "mode": s.mode,
        "language": s.language,
        "filter": s.filter.model_dump(mode="json"),
        "created_at": s.created_at.isoformat(),
        "signed": s.secret is not None,
        "owner": s.owner,
        "personal_data": s.personal_data,
    }
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
SUBSCRIPTION_EXAMPLE = {
    "subscriber": "Education department",
    "channel": "email",
    "email": "kokeilu@education.example.com",
    "mode": "daily_digest",
    "language": "fi",
    "filter": {"types": ["fi.espoo.kokeilu.result.published"], "focus_areas": ["learning"]},
}
CHANGE_EXAMPLE = {"mode": "daily_digest", "language": "sv"}


class DeliveryQuery(BaseModel):
    model_config = {"extra": "forbid"}
    subscription_id: str | None = Field(default=None, max_length=80)
    status: str | None = Field(default=None, pattern="^(pending|succeeded|failed|dead_lettered)$")
    channel: str | None = Field(default=None, pattern="^(webhook|email)$")
    event_type: str | None = Field(default=None, max_length=200)
    kind: str | None = Field(default=None, pattern="^(event|proposer|digest)$")
    limit: int = Field(default=100, ge=1, le=500)
