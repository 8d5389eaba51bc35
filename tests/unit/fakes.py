"""In-memory fakes of the services' units of work and repositories, for unit tests.

They keep the contract of the SQLAlchemy ones (same method names and arguments, same answers)
and their transaction semantics: everything done inside `with uow:` -- repository writes,
published events, inbox records -- takes effect only when the block calls `commit()` and
leaves without an exception; otherwise it is rolled back.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Self

from pydantic import BaseModel

from kokeilu.contracts import CloudEvent, new_event, service_source
from kokeilu.contracts.catalog import BY_NAME, EventType
from kokeilu.contracts.evaluation import RuleFailure, ScreeningCompleted
from kokeilu.contracts.results import KpiPoint, Result
from kokeilu.store import Database
from services.catalogue import ports as catalogue_ports
from services.catalogue import store as catalogue_store
from services.catalogue.domain import DailyKpi, Entry
from services.catalogue.search import FACETS, SearchPage, SearchQuery, decode_cursor, encode_cursor
from services.evaluation import ports as evaluation_ports
from services.evaluation import store as evaluation_store
from services.evaluation.domain import Evaluation
from services.evaluation.screening import title_keys, title_profile, within_reach
from services.notifications import ports as notifications_ports
from services.notifications import store as notifications_store
from services.notifications.domain import DeliveryStatus, Subscription
from services.proposals import ports as proposals_ports
from services.proposals import store as proposals_store
from services.proposals.domain import Measurement, Proposal

# A savepoint's (or the transaction's) snapshot: every repository's state, the pending outbox's
# length, the pending inbox and whether the level outside had committed.
_Level = tuple[dict[str, dict[str, Any]], int, set[tuple[str, str]], bool]


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
    source: str | None = None  # the service's, as on its real unit of work

    def __init__(self) -> None:
        self.outbox: list[Published] = []  # committed, in order
        self.inbox: set[tuple[str, str]] = set()  # committed (consumer, source#id)
        self.commits = 0
        self.rollbacks = 0
        self.locks_taken: list[str] = []
        # The flows the use cases remember and join (the real unit of work keeps them in the store).
        self.flows_remembered: list[str] = []
        self.flows_joined: list[str] = []
        self._in_transaction = False
        self._levels: list[_Level] = []
        self._pending: list[Published] = []
        self._pending_inbox: set[tuple[str, str]] = set()
        self._committed = False

    # transaction ----------------------------------------------------------------------
    def __enter__(self) -> Self:
        # Nested: a savepoint, as in the real unit of work (its commit keeps its changes for the
        # outer one; leaving without commit undoes only them).
        repos = [getattr(self, name) for name in self.repositories]
        # Repositories may refer to each other: keep those references, copy only their data.
        memo = {id(r): r for r in repos}
        snapshot = copy.deepcopy({name: vars(getattr(self, name)) for name in self.repositories}, memo)
        if self._in_transaction:
            self._levels.append((snapshot, len(self._pending), set(self._pending_inbox), self._committed))
        else:
            self._levels = [(snapshot, 0, set(), False)]
            self._pending = []
            self._pending_inbox = set()
        self._committed = False
        self._in_transaction = True
        return self

    def commit(self) -> None:
        assert self._in_transaction, "commit() outside `with uow:`"
        self._committed = True

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        snapshot, pending, pending_inbox, outer_committed = self._levels.pop()
        keep = exc_type is None and self._committed
        if not keep:
            for name, state in snapshot.items():
                repo = getattr(self, name)
                vars(repo).clear()
                vars(repo).update(state)
            del self._pending[pending:]
            self._pending_inbox = pending_inbox
        if self._levels:  # a savepoint ends; the outer transaction goes on
            self._committed = outer_committed
            return False
        self._in_transaction = False
        if keep:
            self.outbox.extend(self._pending)
            self.inbox |= self._pending_inbox
            self.commits += 1
        else:
            self.rollbacks += 1
        return False

    def lock(self, name: str) -> None:
        """One process, one transaction at a time: nothing to wait for; the names taken are kept."""
        assert self._in_transaction, "lock() outside `with uow:`"
        self.locks_taken.append(name)

    # outbox ---------------------------------------------------------------------------
    def emit(
        self,
        event_type: EventType,
        data: BaseModel,
        subject: str,
        cause: CloudEvent | None = None,
        *,
        correlationid: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        """As kokeilu.store.UnitOfWork.emit (without the flow the real one puts the event in)."""
        assert self.source, f"{type(self).__name__} has no source"
        self.publish(
            new_event(
                event_type.name,
                data,
                source=self.source,
                subject=subject,
                dataschema=event_type.dataschema,
                cause=cause,
                correlationid=correlationid,
                traceparent=traceparent,
            )
        )

    def sharing(self, cls: type[Any]) -> Self:
        return self

    def publish(self, event: CloudEvent, key: str | None = None) -> None:
        assert self._in_transaction, "publish() outside `with uow:`"
        topic = BY_NAME[event.type].topic  # an unknown type fails here, as in the real outbox
        self._pending.append(Published(topic, key or event.subject, event))

    @property
    def published(self) -> list[CloudEvent]:
        return [p.event for p in self.outbox]

    def published_of(self, event_type: EventType | str) -> list[CloudEvent]:
        name = getattr(event_type, "name", event_type)
        return [e for e in self.published if e.type == name]

    # inbox ----------------------------------------------------------------------------
    def remember_flow(self, subject: str) -> None:
        self.flows_remembered.append(subject)

    def remember_flows(self, causes: Sequence[tuple[str, CloudEvent]]) -> None:
        self.flows_remembered.extend(subject for subject, _ in causes)

    def join_flow(self, subject: str) -> None:
        self.flows_joined.append(subject)

    def join_flows(self, subjects: Iterable[str]) -> None:
        for subject in dict.fromkeys(subjects):
            self.join_flow(subject)

    def first_time(self, consumer: str, event: CloudEvent) -> bool:
        return self.first_time_key(consumer, f"{event.source}#{event.id}", event.type)

    def first_times(self, consumer: str, events: Sequence[CloudEvent]) -> list[bool]:
        assert self._in_transaction, "first_times() outside `with uow:`"
        seen = set(self.inbox) | self._pending_inbox
        fresh = []
        for e in events:
            key = (consumer, f"{e.source}#{e.id}")
            fresh.append(key not in seen)
            seen.add(key)
        return fresh

    def applied(self, consumer: str, events: Sequence[CloudEvent]) -> None:
        for e in events:
            key = (consumer, f"{e.source}#{e.id}")
            if key in self.inbox or key in self._pending_inbox:
                raise KeyError(f"inbox already has {key}")  # the primary key would refuse it
            self._pending_inbox.add(key)

    def first_time_key(self, consumer: str, key: str, kind: str) -> bool:
        assert self._in_transaction, "first_time() outside `with uow:`"
        entry = (consumer, key)
        if entry in self.inbox or entry in self._pending_inbox:
            return False
        self._pending_inbox.add(entry)
        return True


# proposals --------------------------------------------------------------------------------
class FakeProposalRepository:
    def __init__(self) -> None:
        self.rows: dict[str, Proposal] = {}

    def add(self, p: Proposal) -> None:
        if p.id in self.rows:
            raise KeyError(f"duplicate proposal id {p.id}")  # the primary key would refuse it
        self.rows[p.id] = p

    def add_many(self, ps: list[Proposal]) -> None:
        for p in ps:
            self.add(p)

    def save(self, p: Proposal) -> None:
        assert p.id in self.rows, f"save() of a proposal never added: {p.id}"
        self.rows[p.id] = p

    def save_many(self, ps: Iterable[Proposal]) -> None:
        for p in ps:
            self.save(p)

    def get(self, proposal_id: str) -> Proposal | None:
        return self.rows.get(proposal_id)

    def get_many(self, proposal_ids: Iterable[str]) -> dict[str, Proposal]:
        return {i: self.rows[i] for i in proposal_ids if i in self.rows}

    def list(
        self,
        status: str | None = None,
        limit: int = 50,
        after: str | None = None,
        focus_area: str | None = None,
        environment: str | None = None,
        submitted_from: datetime | None = None,
        submitted_to: datetime | None = None,
    ) -> list[Proposal]:
        ordered = sorted(self.rows.values(), key=lambda p: (p.submitted_at, p.id), reverse=True)
        if status:
            ordered = [p for p in ordered if p.status.value == status]
        if focus_area:
            ordered = [p for p in ordered if p.submission.focus_area.value == focus_area]
        if environment:
            ordered = [p for p in ordered if p.submission.environment.value == environment]
        if submitted_from:
            ordered = [p for p in ordered if p.submitted_at >= submitted_from]
        if submitted_to:
            ordered = [p for p in ordered if p.submitted_at < submitted_to]  # exclusive, as documented
        if after and after in self.rows:
            anchor = self.rows[after]
            ordered = [p for p in ordered if (p.submitted_at, p.id) < (anchor.submitted_at, anchor.id)]
        return ordered[:limit]

    def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.rows.values():
            counts[p.status.value] = counts.get(p.status.value, 0) + 1
        return counts


class FakeMeasurementRepository:
    def __init__(self) -> None:
        self.rows: dict[str, Measurement] = {}

    def add(self, m: Measurement) -> None:
        if m["id"] in self.rows:
            raise KeyError(f"duplicate measurement id {m['id']}")
        self.rows[m["id"]] = m.copy()

    def add_many(self, ms: list[Measurement]) -> None:
        for m in ms:
            self.add(m)

    def for_proposal(self, proposal_id: str) -> list[Measurement]:
        mine = [m.copy() for m in self.rows.values() if m["proposal_id"] == proposal_id]
        return sorted(mine, key=lambda m: (m["measured_at"], m["id"]))


@dataclass
class FakeStoredAnswer:
    principal: str
    key: str
    route: str
    status: int
    body: Any
    created_at: datetime


class FakeIdempotencyRepository:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], FakeStoredAnswer] = {}

    def get(self, principal: str, key: str) -> FakeStoredAnswer | None:
        return self.rows.get((principal, key))

    def add(self, principal: str, key: str, route: str, now: datetime) -> None:
        if (principal, key) in self.rows:
            raise KeyError(f"duplicate idempotency key {key!r} of {principal}")
        self.rows[(principal, key)] = FakeStoredAnswer(principal, key, route, 0, None, now)

    def complete(self, principal: str, key: str, status: int, body: Any) -> None:
        row = self.rows[(principal, key)]
        row.status, row.body = status, copy.deepcopy(body)

    def release(self, principal: str, key: str) -> None:
        self.rows.pop((principal, key), None)


class FakeProposalsUnitOfWork(FakeUnitOfWork):
    source = service_source("proposals")
    repositories = ("proposals", "measurements", "idempotency")

    def __init__(self) -> None:
        super().__init__()
        self.proposals = FakeProposalRepository()
        self.measurements = FakeMeasurementRepository()
        self.idempotency = FakeIdempotencyRepository()


# evaluation -------------------------------------------------------------------------------
class FakeScreeningRepository:
    def flush(self) -> None:
        """Nothing is held back: the fake writes at once."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def add(
        self, s: ScreeningCompleted, focus_area: str, title: str, submitted_at: datetime, revision: int = 1
    ) -> None:
        """The latest screening of a proposal (a revision replaces the one before)."""
        self.rows[s.proposal_id] = dict(
            outcome=s, focus_area=focus_area, title=title, submitted_at=submitted_at, revision=revision
        )

    def get(self, proposal_id: str) -> dict[str, Any] | None:
        row = self.rows.get(proposal_id)
        if row is None:
            return None
        s: ScreeningCompleted = row["outcome"]
        return {
            "proposal_id": s.proposal_id,
            "title": row["title"],
            "focus_area": row["focus_area"],
            "revision": row["revision"],
            "screening": {
                "passed": s.passed,
                "failed_rules": [RuleFailure.model_validate(f).model_dump() for f in s.failed_rules],
                "screened_at": s.screened_at.isoformat(),
                "time_in_screening_seconds": (s.screened_at - row["submitted_at"]).total_seconds(),
            },
        }


class FakeKnownProposalRepository:
    def flush(self) -> None:
        """Nothing is held back: the fake writes at once."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def upsert(self, proposal_id: str, title: str, is_open: bool, now: datetime) -> None:
        self.rows[proposal_id] = dict(title=title, is_open=is_open, updated_at=now)

    def close(self, proposal_id: str, now: datetime) -> None:
        if proposal_id in self.rows:
            self.rows[proposal_id].update(is_open=False, updated_at=now)

    def near_duplicate_candidates(self, title: str, similarity: float = 0.0) -> list[tuple[str, str]]:
        keys = set(title_keys(title))
        shared = [
            (pid, r["title"]) for pid, r in self.rows.items() if r["is_open"] and keys & set(title_keys(r["title"]))
        ]
        reach = within_reach(title_profile(title), [title_profile(t) for _, t in shared], similarity)
        return [c for c, ok in zip(shared, reach, strict=True) if ok]


class FakeEvaluationRepository:
    def flush(self) -> None:
        """Nothing is held back: the fake writes at once."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], Evaluation] = {}

    def add(self, e: Evaluation) -> None:
        if (e.proposal_id, e.revision) in self.rows:
            raise KeyError(f"duplicate evaluation of {e.proposal_id} revision {e.revision}")
        self.rows[(e.proposal_id, e.revision)] = e

    def save(self, e: Evaluation) -> None:
        # the real UPDATE of a row never added changes nothing; a test should not rely on it
        assert (e.proposal_id, e.revision) in self.rows, f"save() of an evaluation never added: {e.proposal_id}"
        self.rows[(e.proposal_id, e.revision)] = e

    def current(self, proposal_id: str, for_update: bool = False) -> Evaluation | None:
        mine = [e for (pid, _), e in self.rows.items() if pid == proposal_id]
        return max(mine, key=lambda e: e.revision) if mine else None

    def mark_overdue(self, e: Evaluation, now: datetime) -> bool:
        stored = self.rows.get((e.proposal_id, e.revision))
        if stored is None or stored.overdue_at is not None:
            return False
        self.rows[(e.proposal_id, e.revision)] = replace(stored, overdue_at=now)
        return True

    def open_ones(self, due_before: datetime | None = None) -> list[Evaluation]:
        found = [e for e in self.rows.values() if e.status == "open"]
        if due_before is not None:
            found = [e for e in found if e.due_at <= due_before and e.overdue_at is None]
        return sorted(found, key=lambda e: e.opened_at)

    def workload(self) -> dict[str, int]:
        load: dict[str, int] = {}
        for e in self.rows.values():
            if e.status != "open":
                continue
            for a in e.assignments:
                if not a.recused and a.scored_at is None:
                    load[a.evaluator] = load.get(a.evaluator, 0) + 1
        return load

    def counted_workload(self) -> dict[str, int]:
        return self.workload()

    def queue(self, evaluator: str) -> list[Evaluation]:
        mine = [
            e
            for e in self.rows.values()
            if e.status == "open" and any(a.evaluator == evaluator and not a.recused for a in e.assignments)
        ]
        return sorted(mine, key=lambda e: e.due_at)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.rows.values():
            out[e.status] = out.get(e.status, 0) + 1
            if e.status == "open" and e.overdue_at is not None:
                out["open_overdue"] = out.get("open_overdue", 0) + 1
        return out


class FakeEvaluationUnitOfWork(FakeUnitOfWork):
    source = service_source("evaluation")
    repositories = ("screenings", "known", "evaluations")

    def __init__(self) -> None:
        super().__init__()
        self.screenings = FakeScreeningRepository()
        self.known = FakeKnownProposalRepository()
        self.evaluations = FakeEvaluationRepository()


# catalogue --------------------------------------------------------------------------------
def _words(text: str | None) -> set[str]:
    return set(re.findall(r"\w+", (text or "").casefold()))


class FakeEntryRepository:
    def __init__(self) -> None:
        self.rows: dict[str, Entry] = {}
        # (result id, kpi) -> {day: (DailyKpi, last measured at)}
        self.days: dict[tuple[str, str], dict[date, tuple[DailyKpi, datetime]]] = {}

    def get(self, proposal_id: str) -> Entry:
        return self.rows.get(proposal_id) or Entry(proposal_id)

    def get_many(self, proposal_ids: Iterable[str]) -> dict[str, Entry]:
        return {proposal_id: self.get(proposal_id) for proposal_id in proposal_ids}

    def save_many(self, changes: Sequence[tuple[Entry, Entry | None]]) -> None:
        for e, _ in changes:
            self.rows[e.proposal_id] = e

    def _newest_first(self) -> list[Result]:
        return sorted(
            (e.result for e in self.rows.values() if e.result is not None),
            key=lambda r: (r.published_at, r.result_id),
            reverse=True,
        )

    def search(self, query: SearchQuery) -> SearchPage:
        """The filters, facets and orders of the real search; full text as "every word of `q` is a
        word of the title, summary or lessons"; the cursor is an offset (it is opaque to callers)."""
        found = self._newest_first()
        for name in ("focus_area", "environment", "outcome", "status"):
            wanted = {v.value for v in getattr(query, name)}
            if wanted:
                found = [r for r in found if getattr(r, name) is not None and getattr(r, name).value in wanted]
        if query.year:
            found = [r for r in found if r.published_at.year in set(query.year)]
        if query.q:
            terms = _words(query.q)
            found = [r for r in found if terms <= (_words(r.title) | _words(r.summary) | _words(r.lessons_learned))]
        facets: dict[str, dict[str, int]] = {}
        for name in FACETS:
            counts: dict[str, int] = {}
            for r in found:
                value = r.published_at.year if name == "year" else getattr(r, name)
                if value is not None:
                    key = str(getattr(value, "value", value))
                    counts[key] = counts.get(key, 0) + 1
            facets[name] = dict(sorted(counts.items()))
        if query.order == "title":
            found.sort(key=lambda r: (r.title, r.result_id))
        offset = int(decode_cursor(query.cursor).get("o", 0)) if query.cursor else 0
        page = found[offset : offset + query.limit]
        more = offset + query.limit < len(found)
        return SearchPage(page, len(found), facets, encode_cursor({"o": offset + len(page)}) if more else None)

    def all_results(self) -> list[Result]:
        return self._newest_first()

    def languages(self) -> dict[str, str]:
        return {
            e.result.result_id: e.proposal.language.value
            for e in self.rows.values()
            if e.result is not None and e.proposal is not None
        }

    def count_entries(self) -> int:
        return len(self.rows)

    def count_published(self) -> int:
        return sum(1 for e in self.rows.values() if e.result is not None)

    def record_measurement(self, result_id: str, kpi: str, value: float, measured_at: datetime) -> None:
        days = self.days.setdefault((result_id, kpi), {})
        day = measured_at.astimezone(UTC).date()
        found = days.get(day)
        if found is None:
            days[day] = (DailyKpi(day, 1, value, value, value, value), measured_at)
        else:
            d, at = found
            later = measured_at >= at
            days[day] = (
                DailyKpi(
                    day, d.count + 1, d.total + value, min(d.min, value), max(d.max, value), value if later else d.last
                ),
                measured_at if later else at,
            )

    def daily(self, result_id: str) -> dict[str, list[DailyKpi]]:
        return {
            kpi: [d for _, (d, _) in sorted(days.items())]
            for (rid, kpi), days in sorted(self.days.items())
            if rid == result_id
        }

    def series(self, result_id: str, kpis: int = 1) -> dict[str, list[KpiPoint]]:
        from kokeilu.contracts.results import series_budget
        from services.catalogue.domain import series_points

        return {kpi: series_points(days, series_budget(kpis)) for kpi, days in self.daily(result_id).items()}


class FakeCatalogueUnitOfWork(FakeUnitOfWork):
    source = service_source("catalogue")
    repositories = ("entries",)

    def __init__(self) -> None:
        super().__init__()
        self.entries = FakeEntryRepository()


# notifications ----------------------------------------------------------------------------
class FakeSubscriptionRepository:
    def __init__(self) -> None:
        self.rows: dict[str, Subscription] = {}  # in creation order
        self.deleted: dict[str, datetime] = {}  # id -> deleted_at
        self.proposals: dict[str, dict[str, Any]] = {}  # proposal id -> what notifications knows of it

    def add(self, s: Subscription) -> None:
        if s.id in self.rows:
            raise KeyError(f"duplicate subscription id {s.id}")
        self.rows[s.id] = s

    def get(self, subscription_id: str) -> Subscription | None:
        return None if subscription_id in self.deleted else self.rows.get(subscription_id)

    def update(self, s: Subscription) -> None:
        if s.id in self.rows:
            self.rows[s.id] = s

    def active(self) -> list[Subscription]:
        return sorted((s for s in self.rows.values() if s.id not in self.deleted), key=lambda s: s.created_at)

    def matching(
        self, event_type: str, focus_area: str | None, environment: str | None, proposal_id: str | None
    ) -> list[Subscription]:
        return [s for s in self.active() if s.matches(event_type, focus_area, environment, proposal_id)]

    def delete(self, subscription_id: str, now: datetime) -> bool:
        if subscription_id not in self.rows or subscription_id in self.deleted:
            return False
        self.deleted[subscription_id] = now
        return True

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
    ) -> None:
        """The latest facts of a proposal; a revision (which has no address) keeps the address known."""
        row = self.proposals.setdefault(
            proposal_id,
            dict(proposal_id=proposal_id, contact_email=None, resident_name=None, proposer_opted_out_at=None),
        )
        row.update(focus_area=focus_area, environment=environment, language=language, title=title)
        if contact_email:
            row["contact_email"] = contact_email
        if content:
            row["resident_name"] = resident_name

    def proposal(self, proposal_id: str | None) -> dict[str, Any] | None:
        row = self.proposals.get(proposal_id) if proposal_id else None
        return dict(row) if row else None

    def focus_area_of(self, proposal_id: str | None) -> str | None:
        return (self.proposal(proposal_id) or {}).get("focus_area")

    def opt_out_proposer(self, proposal_id: str, now: datetime) -> bool:
        row = self.proposals.setdefault(
            proposal_id,
            dict(
                proposal_id=proposal_id,
                focus_area="",
                environment=None,
                language=None,
                title=None,
                contact_email=None,
                resident_name=None,
                proposer_opted_out_at=None,
            ),
        )
        if row["proposer_opted_out_at"] is not None:
            return False
        row["proposer_opted_out_at"] = now
        return True


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
    kind: str = "event"
    channel: str | None = None
    recipient: str | None = None
    language: str | None = None
    correlation_id: str | None = None
    traceparent: str | None = None
    locked_until: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    tries: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class FakeDueDelivery:
    """A claimed delivery, with its subscription's address (the real store's row)."""

    id: str
    attempts: int
    payload: bytes
    event_id: str
    event_type: str
    subscription_id: str
    kind: str
    language: str | None
    channel: str | None
    url: str | None
    secret: str | None
    subscriber: str | None
    subscription_language: str | None
    correlation_id: str | None
    traceparent: str | None


@dataclass(frozen=True)
class FakeDigestItem:
    id: int
    subscription_id: str
    event_id: str
    event_type: str
    payload: bytes
    subscriber: str
    email: str | None
    language: str
    owner: str


class FakeDeliveryRepository:
    def __init__(self, subscriptions: FakeSubscriptionRepository) -> None:
        self.subscriptions = subscriptions
        self.rows: dict[str, FakeDelivery] = {}

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
    ) -> None:
        if delivery_id in self.rows:
            raise KeyError(f"duplicate delivery id {delivery_id}")
        if any(d.subscription_id == subscription_id and d.event_id == event_id for d in self.rows.values()):
            raise KeyError(f"a delivery of {event_id} to {subscription_id} exists")  # uq_delivery_per_event
        self.rows[delivery_id] = FakeDelivery(
            delivery_id,
            subscription_id,
            event_id,
            event_type,
            payload,
            "pending",
            0,
            now,
            now,
            now,
            kind,
            channel,
            recipient,
            language,
            correlation_id,
            traceparent,
        )

    def add_many(self, deliveries: Sequence[notifications_ports.NewDelivery]) -> None:
        for d in deliveries:
            self.add(*d)

    def _channel(self, d: FakeDelivery) -> str | None:
        sub = self.subscriptions.rows.get(d.subscription_id)
        return d.channel or (sub.channel if sub else None)

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[FakeDueDelivery]:
        opted_out = {
            f"proposer:{pid}"
            for pid, p in self.subscriptions.proposals.items()
            if p.get("proposer_opted_out_at") is not None
        }
        due = sorted(
            (
                d
                for d in self.rows.values()
                if d.status == "pending"
                and d.next_attempt_at is not None
                and d.next_attempt_at <= now
                and d.subscription_id not in self.subscriptions.deleted
                and d.subscription_id not in opted_out
                and (d.locked_until is None or d.locked_until < now)
            ),
            key=lambda d: d.next_attempt_at or now,
        )[:limit]
        out = []
        for d in due:
            d.locked_until = now + lease
            sub = self.subscriptions.rows.get(d.subscription_id)  # none for a proposer's e-mail
            out.append(
                FakeDueDelivery(
                    id=d.id,
                    attempts=d.attempts,
                    payload=d.payload,
                    event_id=d.event_id,
                    event_type=d.event_type,
                    subscription_id=d.subscription_id,
                    kind=d.kind,
                    language=d.language,
                    channel=self._channel(d),
                    url=d.recipient or (sub.email if sub else None) or (sub.url if sub else None),
                    secret=sub.secret if sub else None,
                    subscriber=sub.subscriber if sub else None,
                    subscription_language=sub.language if sub else None,
                    correlation_id=d.correlation_id,
                    traceparent=d.traceparent,
                )
            )
        return out

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
    ) -> None:
        d = self.rows[delivery_id]
        d.tries.append(
            {
                "attempt": attempt,
                "at": at.isoformat(),
                "status_code": status_code,
                "latency_seconds": round(latency, 4),
                "error": error,
            }
        )
        d.attempts, d.status, d.next_attempt_at, d.locked_until = attempt, status.value, next_attempt_at, None
        d.last_status_code, d.last_error, d.updated_at = status_code, error, at

    def record_attempts(self, attempts: Sequence[notifications_ports.AttemptMade]) -> None:
        for a in attempts:
            self.record_attempt(*a)

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
        rows = sorted(self.rows.values(), key=lambda d: d.id)
        rows = sorted(rows, key=lambda d: d.created_at, reverse=True)
        if owner is not None:
            rows = [
                d
                for d in rows
                if d.subscription_id in self.subscriptions.rows
                and self.subscriptions.rows[d.subscription_id].owner == owner
            ]
        if subscription_id:
            rows = [d for d in rows if d.subscription_id == subscription_id]
        if status == "dead_lettered":  # every delivery that failed for good waits in the dead-letter list
            status = "failed"
        if status:
            rows = [d for d in rows if d.status == status]
        if channel:
            rows = [d for d in rows if self._channel(d) == channel]
        if event_type:
            rows = [d for d in rows if d.event_type == event_type]
        if kind:
            rows = [d for d in rows if d.kind == kind]
        return [
            {
                "id": d.id,
                "subscription_id": d.subscription_id,
                "event_id": d.event_id,
                "event_type": d.event_type,
                "status": d.status,
                "dead_lettered": d.status == "failed",
                "channel": self._channel(d),
                "kind": d.kind,
                "attempts": list(d.tries),
                "next_attempt_at": d.next_attempt_at.isoformat()
                if d.next_attempt_at and d.status == "pending"
                else None,
                "created_at": d.created_at.isoformat(),
                "updated_at": d.updated_at.isoformat(),
            }
            for d in rows[:limit]
        ]


class FakeDigestRepository:
    def __init__(self, subscriptions: FakeSubscriptionRepository) -> None:
        self.subscriptions = subscriptions
        self.items: dict[int, dict[str, Any]] = {}
        self.runs: dict[datetime, dict[str, Any]] = {}

    def add_item(self, subscription_id: str, event_id: str, event_type: str, payload: bytes, now: datetime) -> None:
        if any(i["subscription_id"] == subscription_id and i["event_id"] == event_id for i in self.items.values()):
            raise KeyError(f"{event_id} is queued for {subscription_id} already")  # uq_digest_item_per_event
        item_id = max(self.items, default=0) + 1
        self.items[item_id] = dict(
            id=item_id,
            subscription_id=subscription_id,
            event_id=event_id,
            event_type=event_type,
            payload=payload,
            created_at=now,
            digest_id=None,
        )

    def add_items(self, items: Sequence[notifications_ports.NewDigestItem]) -> None:
        for item in items:
            self.add_item(*item)

    def claim_window(self, end: datetime, now: datetime) -> bool:
        if end in self.runs:
            return False
        self.runs[end] = dict(ran_at=now, items=0, digests=0)
        return True

    def pending(self, before: datetime) -> list[FakeDigestItem]:
        out = []
        for i in sorted(self.items.values(), key=lambda i: (i["created_at"], i["id"])):
            sub = self.subscriptions.get(i["subscription_id"])
            if i["digest_id"] is None and i["created_at"] < before and sub is not None:
                out.append(
                    FakeDigestItem(
                        id=i["id"],
                        subscription_id=i["subscription_id"],
                        event_id=i["event_id"],
                        event_type=i["event_type"],
                        payload=i["payload"],
                        subscriber=sub.subscriber,
                        email=sub.email,
                        language=sub.language,
                        owner=sub.owner,
                    )
                )
        return out

    def subscriptions_of(self, digest_id: str) -> list[str]:
        return sorted({i["subscription_id"] for i in self.items.values() if i["digest_id"] == digest_id})

    def mark(self, item_ids: list[int], digest_id: str) -> None:
        for item_id in item_ids:
            self.items[item_id]["digest_id"] = digest_id

    def record_run(self, end: datetime, items: int, digests: int) -> None:
        if end in self.runs:
            self.runs[end].update(items=items, digests=digests)


class FakeNotificationsUnitOfWork(FakeUnitOfWork):
    source = service_source("notifications")
    repositories = ("subscriptions", "deliveries", "digests")

    def __init__(self) -> None:
        super().__init__()
        self.subscriptions = FakeSubscriptionRepository()
        self.deliveries = FakeDeliveryRepository(self.subscriptions)
        self.digests = FakeDigestRepository(self.subscriptions)


# collaborators ----------------------------------------------------------------------------
class FakeClock:
    """A clock that moves only when told; install it where a module reads `utcnow`."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeSender:
    """The webhook sender: answers from a script of (status code, error) and records every call."""

    def __init__(self, *answers: tuple[int | None, str | None]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]:
        self.calls.append((url, body, headers))
        if len(self.answers) > 1:
            return self.answers.pop(0)
        return self.answers[0]  # the last answer repeats


# What mypy checks (tests/unit/fakes.py is in its `files`): each fake unit of work, like the real
# one, is structurally the Protocol its service's handlers take -- a fake without one of the
# methods, or with another signature, fails `make lint`. Never called.
def _stores_are_units_of_work(database: Database) -> None:
    _proposals: proposals_ports.ProposalsUnitOfWork = proposals_store.ProposalsUnitOfWork(database)
    _evaluation: evaluation_ports.EvaluationUnitOfWork = evaluation_store.EvaluationUnitOfWork(database)
    _catalogue: catalogue_ports.CatalogueUnitOfWork = catalogue_store.CatalogueUnitOfWork(database)
    _rebuild: catalogue_ports.CatalogueUnitOfWork = catalogue_store.RebuildUnitOfWork(database)
    _notifications: notifications_ports.NotificationsUnitOfWork = notifications_store.NotificationsUnitOfWork(database)


def _fakes_are_units_of_work() -> None:
    _proposals: proposals_ports.ProposalsUnitOfWork = FakeProposalsUnitOfWork()
    _evaluation: evaluation_ports.EvaluationUnitOfWork = FakeEvaluationUnitOfWork()
    _catalogue: catalogue_ports.CatalogueUnitOfWork = FakeCatalogueUnitOfWork()
    _notifications: notifications_ports.NotificationsUnitOfWork = FakeNotificationsUnitOfWork()
