"""What the notifications service's use cases need of its store, as Protocols: its unit of work
and the repositories it binds. services/notifications/store.py has them, and so do the unit
tests' fakes (tests/unit/fakes.py, where mypy checks that they do)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from kokeilu import ports

from .domain import DeliveryStatus, Subscription


class SubscriptionRepository(Protocol):
    def add(self, s: Subscription) -> None: ...

    def get(self, subscription_id: str) -> Subscription | None:
        """None when there is none, or it was deleted."""
        ...

    def update(self, s: Subscription) -> None: ...

    def active(self) -> list[Subscription]:
        """In the order they were made."""
        ...

    def matching(
        self, event_type: str, focus_area: str | None, environment: str | None, proposal_id: str | None
    ) -> list[Subscription]:
        """The active ones whose filter matches, in the order they were made."""
        ...

    def delete(self, subscription_id: str, now: datetime) -> bool:
        """False when there is no such active subscription."""
        ...

    def remember_proposal(
        self,
        proposal_id: str,
        focus_area: str,
        environment: str | None,
        language: str,
        title: str | None,
        contact_email: str | None,
        resident_name: str | None = None,
        content: bool = False,
    ) -> None: ...

    def proposal(self, proposal_id: str | None) -> dict[str, Any] | None:
        """What is known of a proposal (a row of facts: focus_area, environment, language, title,
        contact_email, resident_name, proposer_opted_out_at)."""
        ...

    def focus_area_of(self, proposal_id: str | None) -> str | None: ...

    def opt_out_proposer(self, proposal_id: str, now: datetime) -> bool:
        """False when the proposer had opted out already."""
        ...


class DueDelivery(Protocol):
    """A delivery claimed to be sent now, with what its subscription says of where and how."""

    @property
    def id(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def event_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def subscription_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def language(self) -> str | None: ...
    @property
    def channel(self) -> str | None: ...
    @property
    def url(self) -> str | None:  # the webhook's URL or the e-mail address
        ...
    @property
    def secret(self) -> str | None: ...
    @property
    def subscriber(self) -> str | None: ...
    @property
    def subscription_language(self) -> str | None: ...
    @property
    def correlation_id(self) -> str | None: ...
    @property
    def traceparent(self) -> str | None: ...


class NewDelivery(NamedTuple):
    """A delivery to queue: DeliveryRepository.add's arguments, in its order."""

    delivery_id: str
    subscription_id: str
    event_id: str
    event_type: str
    payload: bytes
    now: datetime
    kind: str = "event"
    channel: str | None = None
    recipient: str | None = None
    language: str | None = None
    correlation_id: str | None = None
    traceparent: str | None = None


class NewDigestItem(NamedTuple):
    """An event for a subscription's next digest: DigestRepository.add_item's arguments, in its order."""

    subscription_id: str
    event_id: str
    event_type: str
    payload: bytes
    now: datetime


class AttemptMade(NamedTuple):
    """An attempt to record: DeliveryRepository.record_attempt's arguments, in its order."""

    delivery_id: str
    attempt: int
    at: datetime
    status_code: int | None
    latency: float
    error: str | None
    status: DeliveryStatus
    next_attempt_at: datetime | None


class DeliveryRepository(Protocol):
    def add(
        self,
        delivery_id: str,
        subscription_id: str,
        event_id: str,
        event_type: str,
        payload: bytes,
        now: datetime,
        kind: str = "event",
        channel: str | None = None,
        recipient: str | None = None,
        language: str | None = None,
        correlation_id: str | None = None,
        traceparent: str | None = None,
    ) -> None: ...

    def add_many(self, deliveries: Sequence[NewDelivery]) -> None:
        """Each of `deliveries` as add() queues it, in one statement."""
        ...

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> Sequence[DueDelivery]:
        """Due deliveries, leased for `lease` so that another instance does not send them too."""
        ...

    def record_attempt(
        self,
        delivery_id: str,
        attempt: int,
        at: datetime,
        status_code: int | None,
        latency: float,
        error: str | None,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> None: ...

    def record_attempts(self, attempts: Sequence[AttemptMade]) -> None:
        """Each of `attempts` as record_attempt() records it, in one statement for the attempts'
        rows and one for their deliveries."""
        ...

    def list(
        self,
        subscription_id: str | None,
        status: str | None,
        limit: int,
        channel: str | None = None,
        event_type: str | None = None,
        kind: str | None = None,
        owner: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first, as the API shows them (JSON objects)."""
        ...


class DigestItem(Protocol):
    """An event waiting for its subscription's digest, with the subscription's address."""

    @property
    def id(self) -> int: ...
    @property
    def subscription_id(self) -> str: ...
    @property
    def event_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def subscriber(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def language(self) -> str: ...
    @property
    def owner(self) -> str: ...


class DigestRepository(Protocol):
    def add_item(self, subscription_id: str, event_id: str, event_type: str, payload: bytes, now: datetime) -> None: ...

    def add_items(self, items: Sequence[NewDigestItem]) -> None:
        """Each of `items` as add_item() records it, in one statement."""
        ...

    def claim_window(self, end: datetime, now: datetime) -> bool:
        """True for the one job that builds the digests of the window ending at `end`."""
        ...

    def pending(self, before: datetime) -> Sequence[DigestItem]:
        """Oldest first."""
        ...

    def subscriptions_of(self, digest_id: str) -> list[str]: ...

    def mark(self, item_ids: list[int], digest_id: str) -> None: ...

    def record_run(self, end: datetime, items: int, digests: int) -> None: ...


class NotificationsUnitOfWork(ports.UnitOfWork, Protocol):
    """The notifications service's unit of work (services/notifications/store.py's NotificationsUnitOfWork)."""

    @property
    def subscriptions(self) -> SubscriptionRepository: ...
    @property
    def deliveries(self) -> DeliveryRepository: ...
    @property
    def digests(self) -> DigestRepository: ...
