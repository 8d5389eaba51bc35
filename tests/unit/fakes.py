"""In-memory fakes of the services' units of work and repositories, for unit tests.

They keep the contract of the SQLAlchemy ones (same method names and arguments, same answers)
and their transaction semantics: everything done inside `with uow:` -- repository writes,
published events, inbox records -- takes effect only when the block calls `commit()` and
leaves without an exception; otherwise it is rolled back.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from kokeilu.contracts import CloudEvent
from kokeilu.contracts.catalog import BY_NAME
from kokeilu.contracts.evaluation import RuleFailure, ScreeningCompleted
from kokeilu.contracts.results import Result
from services.catalogue.domain import Entry


@dataclass(frozen=True)
class Published:
    topic: str
    key: str | None
    event: CloudEvent


class FakeUnitOfWork:
    """Base: outbox (`publish`), inbox (`first_time`) and all-or-nothing transactions.

    Subclasses create their repositories in `__init__` and list them in `repositories`.
    """

    repositories: tuple[str, ...] = ()

    def __init__(self):
        self.outbox: list[Published] = []          # committed, in order
        self.inbox: set[tuple[str, str]] = set()   # committed (consumer, source#id)
        self.commits = 0
        self.rollbacks = 0
        self._in_transaction = False

    # transaction ----------------------------------------------------------------------
    def __enter__(self):
        assert not self._in_transaction, "nested `with uow:`"
        repos = [getattr(self, name) for name in self.repositories]
        # Repositories may refer to each other: keep those references, copy only their data.
        memo = {id(r): r for r in repos}
        self._snapshot = copy.deepcopy({name: vars(getattr(self, name)) for name in self.repositories}, memo)
        self._pending: list[Published] = []
        self._pending_inbox: set[tuple[str, str]] = set()
        self._committed = False
        self._in_transaction = True
        return self

    def commit(self) -> None:
        assert self._in_transaction, "commit() outside `with uow:`"
        self._committed = True

    def __exit__(self, exc_type, exc, tb):
        self._in_transaction = False
        if exc_type is None and self._committed:
            self.outbox.extend(self._pending)
            self.inbox |= self._pending_inbox
            self.commits += 1
        else:
            for name, state in self._snapshot.items():
                repo = getattr(self, name)
                vars(repo).clear()
                vars(repo).update(state)
            self.rollbacks += 1
        return False

    # outbox ---------------------------------------------------------------------------
    def publish(self, event: CloudEvent, key: str | None = None) -> None:
        assert self._in_transaction, "publish() outside `with uow:`"
        topic = BY_NAME[event.type].topic  # an unknown type fails here, as in the real outbox
        self._pending.append(Published(topic, key or event.subject, event))

    @property
    def published(self) -> list[CloudEvent]:
        return [p.event for p in self.outbox]

    def published_of(self, event_type) -> list[CloudEvent]:
        name = getattr(event_type, "name", event_type)
        return [e for e in self.published if e.type == name]

    # inbox ----------------------------------------------------------------------------
    def first_time(self, consumer: str, event: CloudEvent) -> bool:
        assert self._in_transaction, "first_time() outside `with uow:`"
        key = (consumer, f"{event.source}#{event.id}")
        if key in self.inbox or key in self._pending_inbox:
            return False
        self._pending_inbox.add(key)
        return True


# proposals --------------------------------------------------------------------------------
class FakeProposalRepository:
    def __init__(self):
        self.rows: dict = {}

    def add(self, p) -> None:
        if p.id in self.rows:
            raise KeyError(f"duplicate proposal id {p.id}")  # the primary key would refuse it
        self.rows[p.id] = p

    def save(self, p) -> None:
        assert p.id in self.rows, f"save() of a proposal never added: {p.id}"
        self.rows[p.id] = p

    def get(self, proposal_id: str):
        return self.rows.get(proposal_id)

    def list(self, status: str | None = None, limit: int = 50, after: str | None = None) -> list:
        ordered = sorted(self.rows.values(), key=lambda p: (p.submitted_at, p.id), reverse=True)
        if status:
            ordered = [p for p in ordered if p.status.value == status]
        if after and after in self.rows:
            anchor = self.rows[after]
            ordered = [p for p in ordered if (p.submitted_at, p.id) < (anchor.submitted_at, anchor.id)]
        return ordered[:limit]

    def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.rows.values():
            counts[p.status.value] = counts.get(p.status.value, 0) + 1
        return counts


class FakeProposalsUnitOfWork(FakeUnitOfWork):
    repositories = ("proposals",)

    def __init__(self):
        super().__init__()
        self.proposals = FakeProposalRepository()


# evaluation -------------------------------------------------------------------------------
class FakeScreeningRepository:
    def __init__(self):
        self.rows: dict[str, dict] = {}

    def add(self, s: ScreeningCompleted, focus_area: str, title: str, submitted_at) -> None:
        if s.proposal_id in self.rows:
            raise KeyError(f"duplicate screening for {s.proposal_id}")
        self.rows[s.proposal_id] = dict(outcome=s, focus_area=focus_area, title=title, submitted_at=submitted_at)

    def get(self, proposal_id: str) -> dict | None:
        row = self.rows.get(proposal_id)
        if row is None:
            return None
        s: ScreeningCompleted = row["outcome"]
        return {
            "proposal_id": s.proposal_id, "title": row["title"], "focus_area": row["focus_area"],
            "screening": {
                "passed": s.passed,
                "failed_rules": [RuleFailure.model_validate(f).model_dump() for f in s.failed_rules],
                "screened_at": s.screened_at.isoformat(),
                "time_in_screening_seconds": (s.screened_at - row["submitted_at"]).total_seconds(),
            },
        }


class FakeEvaluationUnitOfWork(FakeUnitOfWork):
    repositories = ("screenings",)

    def __init__(self):
        super().__init__()
        self.screenings = FakeScreeningRepository()


# catalogue --------------------------------------------------------------------------------
class FakeEntryRepository:
    def __init__(self):
        self.rows: dict = {}

    def get(self, proposal_id: str) -> Entry:
        return self.rows.get(proposal_id) or Entry(proposal_id)

    def save(self, e) -> None:
        self.rows[e.proposal_id] = e

    def published(self, limit: int, after: str | None) -> list[Result]:
        done = sorted((e for e in self.rows.values() if e.result is not None),
                      key=lambda e: (e.result.published_at, e.proposal_id), reverse=True)
        if after and after in self.rows and self.rows[after].result is not None:
            anchor = self.rows[after]
            done = [e for e in done if (e.result.published_at, e.proposal_id) < (anchor.result.published_at, after)]
        return [e.result for e in done[:limit]]

    def count_published(self) -> int:
        return sum(1 for e in self.rows.values() if e.result is not None)


class FakeCatalogueUnitOfWork(FakeUnitOfWork):
    repositories = ("entries",)

    def __init__(self):
        super().__init__()
        self.entries = FakeEntryRepository()


# notifications ----------------------------------------------------------------------------
class FakeSubscriptionRepository:
    def __init__(self):
        self.rows: dict = {}          # id -> Subscription, in creation order
        self.deleted: dict = {}       # id -> deleted_at
        self.areas: dict[str, str] = {}

    def add(self, s) -> None:
        if s.id in self.rows:
            raise KeyError(f"duplicate subscription id {s.id}")
        self.rows[s.id] = s

    def active(self) -> list:
        return sorted((s for s in self.rows.values() if s.id not in self.deleted), key=lambda s: s.created_at)

    def delete(self, subscription_id: str, now: datetime) -> bool:
        if subscription_id not in self.rows or subscription_id in self.deleted:
            return False
        self.deleted[subscription_id] = now
        return True

    def remember_focus_area(self, proposal_id: str, focus_area: str) -> None:
        self.areas.setdefault(proposal_id, focus_area)

    def focus_area_of(self, proposal_id: str | None) -> str | None:
        return self.areas.get(proposal_id) if proposal_id else None


@dataclass
class FakeDelivery:
    id: str
    subscription_id: str
    event_id: str
    event_type: str
    payload: bytes
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    locked_until: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    tries: list[dict] = field(default_factory=list)


class FakeDeliveryRepository:
    def __init__(self, subscriptions: FakeSubscriptionRepository):
        self.subscriptions = subscriptions
        self.rows: dict[str, FakeDelivery] = {}

    def add(self, delivery_id, subscription_id, event_id, event_type, payload: bytes, now) -> None:
        if delivery_id in self.rows:
            raise KeyError(f"duplicate delivery id {delivery_id}")
        if any(d.subscription_id == subscription_id and d.event_id == event_id for d in self.rows.values()):
            raise KeyError(f"a delivery of {event_id} to {subscription_id} exists")  # uq_delivery_per_event
        self.rows[delivery_id] = FakeDelivery(delivery_id, subscription_id, event_id, event_type, payload,
                                              "pending", 0, now, now, now)

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list:
        due = sorted((d for d in self.rows.values()
                      if d.status == "pending" and d.next_attempt_at <= now
                      and (d.locked_until is None or d.locked_until < now)),
                     key=lambda d: d.next_attempt_at)[:limit]
        out = []
        for d in due:
            d.locked_until = now + lease
            sub = self.subscriptions.rows[d.subscription_id]
            out.append(SimpleNamespace(id=d.id, attempts=d.attempts, payload=d.payload, event_id=d.event_id,
                                       event_type=d.event_type, subscription_id=d.subscription_id,
                                       url=sub.url, channel=sub.channel))
        return out

    def record_attempt(self, delivery_id, attempt, at, status_code, latency, error, status, next_attempt_at) -> None:
        d = self.rows[delivery_id]
        d.tries.append({"attempt": attempt, "at": at.isoformat(), "status_code": status_code,
                        "latency_seconds": round(latency, 4), "error": error})
        d.attempts, d.status, d.next_attempt_at, d.locked_until = attempt, status.value, next_attempt_at, None
        d.last_status_code, d.last_error, d.updated_at = status_code, error, at

    def list(self, subscription_id: str | None, status: str | None, limit: int) -> list[dict]:
        rows = sorted(self.rows.values(), key=lambda d: d.created_at, reverse=True)
        if subscription_id:
            rows = [d for d in rows if d.subscription_id == subscription_id]
        if status:
            rows = [d for d in rows if d.status == status]
        return [{
            "id": d.id, "subscription_id": d.subscription_id, "event_id": d.event_id, "event_type": d.event_type,
            "status": d.status, "attempts": list(d.tries),
            "next_attempt_at": d.next_attempt_at.isoformat() if d.next_attempt_at and d.status == "pending" else None,
            "created_at": d.created_at.isoformat(), "updated_at": d.updated_at.isoformat(),
        } for d in rows[:limit]]


class FakeNotificationsUnitOfWork(FakeUnitOfWork):
    repositories = ("subscriptions", "deliveries")

    def __init__(self):
        super().__init__()
        self.subscriptions = FakeSubscriptionRepository()
        self.deliveries = FakeDeliveryRepository(self.subscriptions)


# collaborators ----------------------------------------------------------------------------
class FakeClock:
    """A clock that moves only when told; install it where a module reads `utcnow`."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeSender:
    """The webhook sender: answers from a script of (status code, error) and records every call."""

    def __init__(self, *answers: tuple[int | None, str | None]):
        self.answers = list(answers)
        self.calls: list[tuple[str, bytes, dict]] = []

    def __call__(self, url: str, body: bytes, headers: dict):
        self.calls.append((url, body, headers))
        if len(self.answers) > 1:
            return self.answers.pop(0)
        return self.answers[0]  # the last answer repeats
