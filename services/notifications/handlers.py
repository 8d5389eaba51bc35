"""Use cases of the notifications service."""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from kokeilu.contracts import CloudEvent, utcnow
from kokeilu.contracts import catalog as types
from kokeilu.contracts.evaluation import ScreeningCompleted
from kokeilu.contracts.notifications import DeliveryOutcome
from kokeilu.contracts.proposals import ProposalContact, ProposalRevised, ProposalStatusChanged, ProposalSubmitted
from kokeilu.privacy import redact

from .domain import (
    Caller,
    DeliveryStatus,
    NewSubscription,
    RetryPolicy,
    Subscription,
    SubscriptionChange,
    redact_event_data,
    resident_name,
    signature,
    window_end,
)
from .ports import AttemptMade, DigestItem, DueDelivery, NewDelivery, NewDigestItem, NotificationsUnitOfWork

CONSUMER = "notifications"
LEASE = timedelta(seconds=60)
# Status changes a proposer hears about (the step into screening is internal and immediate).
PROPOSER_STATUSES = {
    "screening_failed",
    "in_evaluation",
    "approved",
    "rejected",
    "revision_requested",
    "piloting",
    "completed",
    "withdrawn",
}

# send(url, body, headers) -> (status code or None, error or None)
Sender = Callable[[str, bytes, dict[str, str]], tuple[int | None, str | None]]
# mail(to, rendered, message_id, unsubscribe_url) -> (SMTP reply code or None, error or None); the
# message id is the delivery's, the same on every attempt
Mailer = Callable[[str, Any, str, str | None], tuple[int | None, str | None]]
# render(kind, payload: dict, language, unsubscribe_url) -> the e-mail's words (emails.Rendered)
Renderer = Callable[[str, dict[str, Any], str, str | None], Any]
# unsubscribe_url(kind, id) -> the signed link that stops this mail (unsubscribe.Links.url): kind
# "s" a subscription, "d" a digest delivery, "p" a proposer's e-mails about one proposal
LinkMaker = Callable[[str, str], str]
# check_url(url) raises when a webhook URL points somewhere it must not (kokeilu.netguard)
UrlCheck = Callable[[str], None]


def _no_check(url: str) -> None:
    return None


def create_subscription(
    body: NewSubscription, uow: NotificationsUnitOfWork, caller: Caller, check_url: UrlCheck = _no_check
) -> Subscription:
    """A new subscription owned by `caller`; a webhook gets its signing secret (shown to the caller
    once, at creation). `check_url` refuses a webhook URL that points inward (it raises)."""
    if body.url is not None:
        check_url(str(body.url))
    secret = secrets.token_hex(32) if body.channel == "webhook" else None
    sub = Subscription(
        str(uuid.uuid4()),
        body.subscriber,
        body.channel,
        str(body.url) if body.url else None,
        body.filter,
        utcnow(),
        email=body.email,
        mode=body.mode,
        secret=secret,
        language=body.language.value,
        owner=caller.name,
        personal_data=caller.personal_data,
    )
    with uow:
        uow.subscriptions.add(sub)
        uow.commit()
    return sub


def update_subscription(
    subscription_id: str,
    change: SubscriptionChange,
    uow: NotificationsUnitOfWork,
    caller: Caller,
    check_url: UrlCheck = _no_check,
) -> Subscription | None:
    """The changed subscription; None when there is none that `caller` may manage; ValueError when
    the change makes it invalid. A change by the owner records whether they have the personal-data
    scope now; an admin changing another's subscription leaves that as it was."""
    if change.url is not None:
        check_url(str(change.url))
    with uow:
        sub = uow.subscriptions.get(subscription_id)
        if sub is None or not caller.owns(sub):
            return None
        sub = sub.changed(change)
        if sub.owner == caller.name:
            sub = Subscription(**{**sub.__dict__, "personal_data": caller.personal_data})
        uow.subscriptions.update(sub)
        uow.commit()
    return sub


def list_subscriptions(uow: NotificationsUnitOfWork, caller: Caller) -> list[Subscription]:
    with uow:
        return [s for s in uow.subscriptions.active() if caller.owns(s)]


def delete_subscription(subscription_id: str, uow: NotificationsUnitOfWork, caller: Caller) -> bool:
    """False when there is no such subscription that `caller` may manage."""
    with uow:
        sub = uow.subscriptions.get(subscription_id)
        if sub is None or not caller.owns(sub):
            return False
        deleted = uow.subscriptions.delete(subscription_id, utcnow())
        uow.commit()
    return deleted


def unsubscribe_target(d: DueDelivery) -> tuple[str, str]:
    """What an e-mail delivery's unsubscribe link stops: its subscription; for a digest, the
    digest (every subscription it gathered); for a proposer, e-mails about that proposal."""
    kind = getattr(d, "kind", "event")
    if kind == "proposer":
        return "p", d.subscription_id.removeprefix("proposer:")
    if kind == "digest":
        return "d", d.id
    return "s", d.subscription_id


def unsubscribe(kind: str, ident: str, uow: NotificationsUnitOfWork) -> int:
    """Follow a (verified) unsubscribe link: `kind` subscription deactivates the subscription,
    digest every subscription whose items that digest carried, proposer records that the
    proposer of that proposal wants no more e-mails about it. Idempotent: what is already
    stopped stays so. Returns how many subscriptions (or proposals) it stopped just now."""
    now = utcnow()
    with uow:
        if kind == "subscription":
            stopped = int(uow.subscriptions.delete(ident, now))
        elif kind == "digest":
            stopped = sum(uow.subscriptions.delete(sid, now) for sid in uow.digests.subscriptions_of(ident))
        elif kind == "proposer":
            stopped = int(uow.subscriptions.opt_out_proposer(ident, now))
        else:
            raise ValueError(f"nothing to unsubscribe from: {kind}")
        uow.commit()
    return stopped


def list_deliveries(
    uow: NotificationsUnitOfWork,
    subscription_id: str | None,
    status: str | None,
    limit: int,
    *,
    caller: Caller,
    **filters: Any,
) -> list[dict[str, Any]]:
    """Deliveries of `caller`'s subscriptions (an admin: every delivery, proposer e-mails too)."""
    with uow:
        return uow.deliveries.list(
            subscription_id, status, limit, owner=None if caller.admin else caller.name, **filters
        )


def _remember(data: BaseModel, uow: NotificationsUnitOfWork) -> None:
    if isinstance(data, ProposalContact):
        known = uow.subscriptions.proposal(data.proposal_id)
        uow.subscriptions.remember_proposal(
            data.proposal_id,
            known["focus_area"] if known else "",
            known.get("environment") if known else None,
            data.language.value,
            known.get("title") if known else None,
            data.contact_email,
        )
    elif isinstance(data, (ProposalSubmitted, ProposalRevised)):
        uow.subscriptions.remember_proposal(
            data.proposal_id,
            data.focus_area.value,
            data.environment.value,
            data.language.value,
            data.title,
            None,
            resident_name=resident_name(data),
            content=True,
        )


def _email_payload(event: CloudEvent, facts: dict[str, Any] | None, names: tuple[str, ...] | None = None) -> bytes:
    """What an e-mail is rendered from; with `names` (not None), redacted as for a subscriber
    without the personal-data scope."""
    title = facts.get("title") if facts else None
    if names is not None:
        title = redact(title, names)
    proposal = {"proposal_id": event.subject, "title": title}
    # {"event": <the event's JSON>, "proposal": ...}: the event's JSON as it is written, not parsed
    # and written again (what reads the payload parses it: the same JSON value either way).
    return b'{"event": ' + event.to_bytes() + b', "proposal": ' + json.dumps(proposal).encode() + b"}"


_REFERENCED_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _resident_names(data: BaseModel, facts: dict[str, Any] | None, uow: NotificationsUnitOfWork) -> tuple[str, ...]:
    """Resident names that may be in this event's text: its own proposal's resident, and for a
    screening that found a near-duplicate, the resident of the proposal whose title it quotes."""
    names = {n for n in ((facts or {}).get("resident_name"), resident_name(data)) if n}
    if isinstance(data, ScreeningCompleted):
        for failure in data.failed_rules:
            for other in set(_REFERENCED_ID.findall(failure.reason)):
                name = (uow.subscriptions.proposal(other) or {}).get("resident_name")
                if name:
                    names.add(name)
    return tuple(sorted(names, key=len, reverse=True))


def _redacted(event: CloudEvent, names: tuple[str, ...]) -> CloudEvent:
    return event.model_copy(update={"data": redact_event_data(event.type, event.data, names)})


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def on_event(event: CloudEvent, data: BaseModel, uow: NotificationsUnitOfWork) -> str:
    """Queue `event` for every active subscription whose filter matches (now, or for its digest),
    and for the proposer when it is a status change of their own proposal."""
    with uow:
        if not uow.first_time(CONSUMER, event):
            return "duplicate"
        _queue(event, data, uow, lambda d: uow.deliveries.add(*d), lambda i: uow.digests.add_item(*i))
        uow.commit()
    return "applied"


def on_events(items: Sequence[tuple[CloudEvent, BaseModel]], uow: NotificationsUnitOfWork) -> list[str]:
    """A run of events, each applied once and in order as on_event applies it (the consumer's
    bulk method): one read and one write of the inbox for the run, and the deliveries and digest
    items it queues written together at its end (nothing in the run reads them). For each item:
    "applied", or "duplicate" (applied before, or earlier in the run)."""
    deliveries: list[NewDelivery] = []
    digest_items: list[NewDigestItem] = []
    with uow:
        fresh = uow.first_times(CONSUMER, [event for event, _ in items])
        for (event, data), first in zip(items, fresh, strict=True):
            if first:
                _queue(event, data, uow, deliveries.append, digest_items.append)
        uow.deliveries.add_many(deliveries)
        uow.digests.add_items(digest_items)
        uow.applied(CONSUMER, [event for (event, _), first in zip(items, fresh, strict=True) if first])
        uow.commit()
    return ["applied" if first else "duplicate" for first in fresh]


def _queue(
    event: CloudEvent,
    data: BaseModel,
    uow: NotificationsUnitOfWork,
    deliver: Callable[[NewDelivery], object],
    digest: Callable[[NewDigestItem], object],
) -> None:
    """What an event new to this service does: its facts remembered, then `deliver` each delivery
    and `digest` each digest item it queues."""
    if isinstance(data, ProposalContact):
        _remember(data, uow)
        return  # personal data: remembered, never forwarded to a subscriber
    proposal_id = getattr(data, "proposal_id", None)
    # Enums on proposal and result events, plain strings on evaluation events.
    focus_area = _plain(getattr(data, "focus_area", None))
    environment = _plain(getattr(data, "environment", None))
    _remember(data, uow)
    facts = uow.subscriptions.proposal(proposal_id)
    area = focus_area if focus_area is not None else (facts or {}).get("focus_area")
    env = environment if environment is not None else (facts or {}).get("environment")
    now = utcnow()
    # A subscriber whose owner lacks the personal-data scope gets the event redacted (made
    # once, for the first such subscriber).
    hiding: tuple[CloudEvent, tuple[str, ...]] | None = None
    # The e-mail payload of the event as it is (key None) and as redacted (key the names hidden),
    # made once each.
    payloads: dict[tuple[str, ...] | None, bytes] = {}

    def email_payload(sent: CloudEvent, hidden: tuple[str, ...] | None) -> bytes:
        if hidden not in payloads:
            payloads[hidden] = _email_payload(sent, facts, hidden)
        return payloads[hidden]

    correlation_id = event.correlationid or event.id  # the flow of the event delivered
    for sub in uow.subscriptions.matching(event.type, area or None, env, proposal_id):
        if sub.personal_data:
            sent, hidden = event, None
        else:
            if hiding is None:
                names = _resident_names(data, facts, uow)
                hiding = (_redacted(event, names), names)
            sent, hidden = hiding
        if sub.mode == "daily_digest":
            digest(NewDigestItem(sub.id, event.id, event.type, email_payload(sent, hidden), now))
        elif sub.channel == "email":
            deliver(
                NewDelivery(
                    str(uuid.uuid4()),
                    sub.id,
                    event.id,
                    event.type,
                    email_payload(sent, hidden),
                    now,
                    kind="event",
                    language=(facts or {}).get("language") or sub.language,
                    correlation_id=correlation_id,
                    traceparent=event.traceparent,
                )
            )
        else:
            deliver(
                NewDelivery(
                    str(uuid.uuid4()),
                    sub.id,
                    event.id,
                    event.type,
                    sent.to_bytes(),
                    now,
                    correlation_id=correlation_id,
                    traceparent=event.traceparent,
                )
            )
    if (
        isinstance(data, ProposalStatusChanged)
        and data.to_status.value in PROPOSER_STATUSES
        and facts
        and facts.get("contact_email")
        and not facts.get("proposer_opted_out_at")
    ):
        deliver(
            NewDelivery(
                str(uuid.uuid4()),
                f"proposer:{proposal_id}",
                event.id,
                event.type,
                _email_payload(event, facts),
                now,
                kind="proposer",
                channel="email",
                recipient=facts["contact_email"],
                language=facts.get("language") or "fi",
                correlation_id=correlation_id,
                traceparent=event.traceparent,
            )
        )


def build_digests(
    uow_factory: Callable[[], NotificationsUnitOfWork], window_seconds: float, now: datetime | None = None
) -> list[int]:
    """The digest job: once per window (whichever instance claims it first), group the items
    recorded before the window closed into one e-mail per subscriber and address, queued as
    deliveries (sent, retried and logged like any other). Returns the size of each digest."""
    now = now or utcnow()
    end = window_end(now, window_seconds)
    with uow_factory() as uow:
        if not uow.digests.claim_window(end, now):
            return []
        # One digest per owner, subscriber and address: never one owner's items in another's digest.
        groups: dict[tuple[str, str, str | None], list[DigestItem]] = {}
        for item in uow.digests.pending(end):
            groups.setdefault((item.owner, item.subscriber, item.email), []).append(item)
        sizes: list[int] = []
        for (_owner, subscriber, email), items in groups.items():
            digest_id = str(uuid.uuid4())
            seen: set[str] = set()
            entries: list[Any] = []
            for item in items:
                if item.event_id not in seen:  # one event matched by two subscriptions is listed once
                    seen.add(item.event_id)
                    entries.append(json.loads(item.payload))
            body = {"subscriber": subscriber, "window_end": end.isoformat(), "items": entries}
            uow.deliveries.add(
                digest_id,
                items[0].subscription_id,
                f"digest:{end.isoformat()}",
                "digest",
                json.dumps(body).encode(),
                now,
                kind="digest",
                channel="email",
                recipient=email,
                language=items[0].language,
            )
            uow.digests.mark([i.id for i in items], digest_id)
            sizes.append(len(entries))
        uow.digests.record_run(end, sum(sizes), len(sizes))
        uow.commit()
    return sizes


def _send_one(
    d: DueDelivery, send: Sender, mail: Mailer | None, render: Renderer | None, links: LinkMaker | None = None
) -> tuple[int | None, str | None]:
    channel = d.channel
    if d.url is None:  # neither the delivery nor its subscription has an address
        return None, "no address to send to"
    if channel == "email":
        if mail is None or render is None:
            return None, "e-mail is not configured in this process"
        try:
            link = links(*unsubscribe_target(d)) if links is not None else None
        except ValueError:  # an id no link can name (not a plain id): the e-mail goes without one
            link = None
        try:
            rendered = render(
                getattr(d, "kind", "event"),
                json.loads(d.payload),
                getattr(d, "language", None) or getattr(d, "subscription_language", None) or "fi",
                link,
            )
        except Exception as exc:  # a template that cannot render this payload will not next time either
            return 554, f"could not render the e-mail: {exc.__class__.__name__}: {exc}"[:500]
        return mail(d.url, rendered, d.id, link)
    headers = {
        "Content-Type": "application/cloudevents+json",
        "Kokeilu-Delivery-Id": d.id,
        "Kokeilu-Event-Id": d.event_id,
        "Idempotency-Key": d.id,
    }
    secret = getattr(d, "secret", None)
    if secret:
        timestamp = int(time.time())
        headers["Kokeilu-Timestamp"] = str(timestamp)
        headers["Kokeilu-Signature"] = signature(secret, timestamp, d.payload)
    return send(d.url, d.payload, headers)


def deliver_due(
    uow_factory: Callable[[], NotificationsUnitOfWork],
    send: Sender,
    policy: RetryPolicy,
    limit: int = 50,
    observe: Callable[[str, str, float], None] | None = None,
    mail: Mailer | None = None,
    render: Renderer | None = None,
    links: LinkMaker | None = None,
    run_all: Callable[[Callable[[DueDelivery], None], Sequence[DueDelivery]], object] = lambda fn, items: list(
        map(fn, items)
    ),
) -> int:
    """Send the deliveries that are due, outside any transaction, and record each attempt.

    `run_all(fn, deliveries)` runs the attempts: the service passes a green pool, so that one slow
    receiver does not hold up the others. An attempt is recorded once it was made (a delivery is
    done only after it was sent): attempts that end while others are being recorded are recorded
    together, in the next transaction (_Attempts). What was sent but not recorded (a crash, the
    store gone) is sent again when its lease ends, with the same delivery id."""
    with uow_factory() as uow:
        due = uow.deliveries.claim_due(utcnow(), limit, LEASE)
        uow.commit()
    recorded = _Attempts(uow_factory)

    def attempt_one(d: DueDelivery) -> None:
        # A delivery has a channel (its own, or its subscription's); one without would be sent
        # as a webhook (_send_one), and is reported as one.
        channel = d.channel or "webhook"
        attempt = d.attempts + 1
        started = time.perf_counter()
        status_code, error = _send_one(d, send, mail, render, links)
        latency = time.perf_counter() - started
        ok = status_code is not None and 200 <= status_code < 300 and error is None
        now = utcnow()
        if ok:
            status, next_at = DeliveryStatus.succeeded, None
        elif policy.retryable(status_code, channel, error) and attempt < policy.max_attempts:
            status, next_at = DeliveryStatus.pending, policy.next_attempt(attempt, now)
        else:
            status, next_at = DeliveryStatus.failed, None
        error = error or (None if ok else f"HTTP {status_code}")
        made = AttemptMade(d.id, attempt, now, status_code, latency, error, status, next_at)
        recorded.add(_Attempt(d, channel, made, ok))
        if observe:
            observe(
                channel,
                "succeeded" if ok else ("retrying" if status is DeliveryStatus.pending else "dead_lettered"),
                latency,
            )

    run_all(attempt_one, due)
    recorded.flush()
    return len(due)


@dataclass(frozen=True)
class _Attempt:
    """One attempt made, to be recorded (`made`), with what its outcome event says besides."""

    delivery: DueDelivery
    channel: str
    made: AttemptMade
    ok: bool


class _Attempts:
    """Attempts made and not yet recorded. The attempt that finds no one recording records every
    attempt waiting, one transaction a turn, until none waits; attempts that end meanwhile (the
    others in the pool, while that transaction commits) are only added, and recorded in its next
    turn: a run of attempts costs a few transactions, not one each."""

    def __init__(self, uow_factory: Callable[[], NotificationsUnitOfWork]) -> None:
        self.uow_factory = uow_factory
        self.waiting: list[_Attempt] = []
        self.recording = False
        self.lock = threading.Lock()

    def add(self, attempt: _Attempt) -> None:
        with self.lock:
            self.waiting.append(attempt)
            if self.recording:
                return  # the one recording takes it in its next turn
            self.recording = True
        self._record_waiting()

    def flush(self) -> None:
        """Record whatever still waits (nothing, unless a turn failed)."""
        with self.lock:
            if self.recording:
                return
            self.recording = True
        self._record_waiting()

    def _record_waiting(self) -> None:
        try:
            while True:
                with self.lock:
                    turn, self.waiting = self.waiting, []
                    if not turn:
                        self.recording = False
                        return
                self._record(turn)
        except BaseException:
            with self.lock:
                self.recording = False
            raise

    def _record(self, turn: list[_Attempt]) -> None:
        with self.uow_factory() as uow:
            uow.deliveries.record_attempts([a.made for a in turn])
            for a in turn:
                d, made = a.delivery, a.made
                if made.status is not DeliveryStatus.pending:
                    outcome = types.DELIVERY_SUCCEEDED if a.ok else types.DELIVERY_FAILED
                    uow.emit(
                        outcome,
                        DeliveryOutcome(
                            delivery_id=d.id,
                            subscription_id=d.subscription_id,
                            channel=a.channel,
                            event_id=d.event_id,
                            event_type=d.event_type,
                            attempts=made.attempt,
                            status_code=made.status_code,
                            error=made.error,
                        ),
                        d.subscription_id,
                        correlationid=d.correlation_id,
                        traceparent=d.traceparent,
                    )  # the delivered event's flow
            uow.commit()
