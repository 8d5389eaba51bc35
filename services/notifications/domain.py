"""Subscriptions, matching, and the retry policy of deliveries. No infrastructure here."""

from __future__ import annotations

import copy
import hashlib
import hmac
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from kokeilu.contracts import BY_NAME
from kokeilu.contracts.envelope import TYPE_PREFIX
from kokeilu.contracts.proposals import EMAIL_PATTERN, Environment, FocusArea, Language
from kokeilu.privacy import REDACTED, redact


class SubscriptionFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    types: list[str] = Field(default_factory=list, max_length=50)
    focus_areas: list[FocusArea] = Field(default_factory=list, max_length=10)
    environments: list[Environment] = Field(default_factory=list, max_length=10)
    proposal_id: str | None = Field(default=None, max_length=64)

    @field_validator("types")
    @classmethod
    def _known_types(cls, types: list[str]) -> list[str]:
        unknown = [t for t in types if t not in BY_NAME]
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {sorted(BY_NAME)}")
        return types


Mode = Literal["immediate", "daily_digest"]


def _no_credentials(url: HttpUrl | None) -> HttpUrl | None:
    if url is not None and (url.username or url.password):
        raise ValueError(
            "a webhook URL must not carry credentials (user:password@); "
            "receivers verify deliveries with the signing secret instead"
        )
    return url


def public_url(url: str | None) -> str | None:
    """`url` without any user:password@ part (a URL stored before credentials were refused)."""
    if not url:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _check_channel(channel: str, url: object, email: str | None, mode: str) -> None:
    if channel == "webhook" and url is None:
        raise ValueError("a webhook subscription needs a url")
    if channel == "email" and email is None:
        raise ValueError("an e-mail subscription needs an email address")
    if mode == "daily_digest" and channel != "email":
        raise ValueError("a daily digest is an e-mail: use channel email")


class NewSubscription(BaseModel):
    """`POST /v1/subscriptions` body: a webhook or e-mail, now or in a daily digest, and a filter (docs/results.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subscriber: str = Field(min_length=1, max_length=200)
    channel: Literal["webhook", "email"]
    url: HttpUrl | None = None
    email: str | None = Field(default=None, pattern=EMAIL_PATTERN, max_length=254)
    mode: Mode = "immediate"
    # Language of digests; an immediate e-mail is in its proposal's language when that is known.
    language: Language = Language.fi
    filter: SubscriptionFilter = SubscriptionFilter()

    _url_has_no_credentials = field_validator("url")(_no_credentials)

    @model_validator(mode="after")
    def _channel_has_an_address(self) -> Self:
        _check_channel(self.channel, self.url, self.email, self.mode)
        return self


class SubscriptionChange(BaseModel):
    """`PATCH /v1/subscriptions/{id}` body: the fields to change (the channel stays)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subscriber: str | None = Field(default=None, min_length=1, max_length=200)
    url: HttpUrl | None = None
    email: str | None = Field(default=None, pattern=EMAIL_PATTERN, max_length=254)
    mode: Mode | None = None
    language: Language | None = None
    filter: SubscriptionFilter | None = None

    _url_has_no_credentials = field_validator("url")(_no_credentials)


class InvalidChange(ValueError):
    """A change that would leave a subscription invalid (e.g. a webhook without a URL)."""


@dataclass(frozen=True)
class Caller:
    """Who calls the subscriptions API: the token's name; `admin` sees and manages every
    subscription; `personal_data` is the personal-data scope (webhooks and e-mails unredacted)."""

    name: str
    admin: bool = False
    personal_data: bool = False

    def owns(self, subscription: Subscription) -> bool:
        return self.admin or subscription.owner == self.name


@dataclass(frozen=True)
class Subscription:
    id: str
    subscriber: str
    channel: str
    url: str | None
    filter: SubscriptionFilter
    created_at: datetime
    email: str | None = None
    mode: str = "immediate"
    secret: str | None = None
    language: str = "fi"
    # The token principal that created it (subscriptions made before owners existed: "admin").
    owner: str = "admin"
    # Whether its owner had the personal-data scope when it was made (or last changed by them).
    personal_data: bool = False

    def matches(
        self, event_type: str, focus_area: str | None, environment: str | None = None, proposal_id: str | None = None
    ) -> bool:
        f = self.filter
        if f.types and event_type not in f.types:
            return False
        if f.proposal_id and proposal_id != f.proposal_id:
            return False
        if f.environments and (environment is None or environment not in {e.value for e in f.environments}):
            return False
        if f.focus_areas:
            return focus_area is not None and focus_area in {a.value for a in f.focus_areas}
        return True

    def changed(self, change: SubscriptionChange) -> Subscription:
        """This subscription with `change` applied; InvalidChange when the result is not a valid subscription."""
        given = change.model_dump(exclude_unset=True)
        values = dict(self.__dict__)
        for name in ("subscriber", "mode"):
            if name in given and given[name] is not None:
                values[name] = given[name]
        if "url" in given and change.url is not None:
            values["url"] = str(change.url)
        if "email" in given and change.email is not None:
            values["email"] = change.email
        if change.language is not None:
            values["language"] = change.language.value
        if change.filter is not None:
            values["filter"] = change.filter
        try:
            _check_channel(values["channel"], values["url"], values["email"], values["mode"])
        except ValueError as exc:
            raise InvalidChange(str(exc)) from None
        return Subscription(**values)


# -- personal data in what subscribers receive -----------------------------------------------
# Keys of event data that are ids, codes, enums or times: never free text, left as they are.
_STRUCTURAL = {
    "specversion",
    "language",
    "focus_area",
    "environment",
    "kind",
    "from_status",
    "to_status",
    "action",
    "status",
    "outcome",
    "decision",
    "rule",
    "proposer_kind",
    "licence",
    "license",
    "intake_type",
    "contact_unit",
    "channel",
    "event_type",
}
_ID_OR_TIME = re.compile(r"(^id$|_id$|_at$|^due_at$)")


def _redact_tree(value: Any, names: tuple[str, ...], key: str | None = None) -> Any:
    if isinstance(value, str):
        if key is not None and (key in _STRUCTURAL or _ID_OR_TIME.search(key)):
            return value
        return redact(value, names)
    if isinstance(value, list):
        return [_redact_tree(v, names, key) for v in value]
    if isinstance(value, dict):
        return {k: _redact_tree(v, names, k) for k, v in value.items()}
    return value


def redact_event_data(event_type: str, data: Any, names: tuple[str, ...] = ()) -> Any:
    """Event data as a subscriber without the personal-data scope receives it: every free-text
    value without e-mail addresses and without `names` (a resident proposer's name), a resident
    proposer's organisation (their own name) replaced by `[…]`, evaluators' names replaced by `[…]`.
    Ids, codes, numbers and times are unchanged, so the data still fits its schema."""
    if not isinstance(data, dict):
        return data
    data = copy.deepcopy(data)
    proposer = data.get("proposer")
    if isinstance(proposer, dict) and proposer.get("kind") == "resident":
        proposer["organisation"] = REDACTED
    if event_type == TYPE_PREFIX + "evaluation.opened" and isinstance(data.get("evaluators"), list):
        data["evaluators"] = [REDACTED for _ in data["evaluators"]]
    return _redact_tree(data, names)


def resident_name(data: Any) -> str | None:
    """The name of a resident proposer in proposal.submitted/revised data ("organisation"), if any."""
    proposer = getattr(data, "proposer", None)
    kind = getattr(getattr(proposer, "kind", None), "value", getattr(proposer, "kind", None))
    return proposer.organisation if proposer is not None and kind == "resident" else None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`Kokeilu-Signature` header value: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """What a receiver does: recompute, compare in constant time, refuse old timestamps (replays)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), f"t={timestamp},v1={parts.get('v1', '')}")


def window_end(now: datetime, seconds: float) -> datetime:
    """The end of the last closed digest window: windows of `seconds` aligned on the Unix epoch."""
    epoch = now.timestamp()
    return datetime.fromtimestamp(epoch - (epoch % seconds), tz=UTC)


# The neutral reason of a delivery the address guard refused: permanent, never retried, and it
# says nothing of what the name resolved to.
ADDRESS_REFUSED = "refused: address not allowed"
PERMANENT_ERRORS = frozenset({ADDRESS_REFUSED})


class DeliveryStatus(str, Enum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 1.0
    cap_seconds: float = 300.0

    def retryable(self, status_code: int | None, channel: str = "webhook", error: str | None = None) -> bool:
        """Timeouts and connection errors (no status) are worth another try; so are HTTP 429 and 5xx,
        and SMTP's transient 4xx replies. Other HTTP 4xx and SMTP 5xx replies are final, and so is
        a destination the address guard refuses."""
        if error in PERMANENT_ERRORS:
            return False
        if status_code is None:
            return True
        if channel == "email":
            return 400 <= status_code < 500
        return status_code == 429 or status_code >= 500

    def next_attempt(self, attempts: int, now: datetime, rng: random.Random | None = None) -> datetime:
        """Exponential backoff with full jitter after `attempts` tries."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** (attempts - 1)))
        return now + timedelta(seconds=(rng or random).uniform(ceiling / 2, ceiling))


# -- e-mail ---------------------------------------------------------------------------------
_DOMAIN_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def check_domain(domain: str) -> str:
    """`domain` (lower case) when it is a full domain name (at least two labels, an alphabetic
    top-level label); ValueError otherwise."""
    domain = domain.strip().lower().rstrip(".")
    labels = domain.split(".")
    if (
        len(domain) > 253
        or len(labels) < 2
        or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
        or not re.fullmatch(r"[a-z]{2,63}", labels[-1])
    ):
        raise ValueError(f"{domain!r} is not a full domain name (such as kokeilu.espoo.fi)")
    return domain
