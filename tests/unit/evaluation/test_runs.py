"""Evaluation's bulk method (`handlers.on_proposal_events`, the consumer's runs): a run of the
proposals' events leaves the screenings, the duplicate rule's index, the evaluations, the
evaluators' workload and the published events exactly as applying them one by one does, on the
fake and on the real store (whose repositories hold a run's writes until commit and answer the
run's later reads from what they hold)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kokeilu.contracts import decode, parse_envelope
from kokeilu.contracts.sources import service_source
from services.evaluation import handlers
from services.evaluation.screening import ScreeningPolicy
from services.evaluation.settings import Workflow
from services.evaluation.store import EvaluationUnitOfWork
from tests import builders as ev
from tests.support import Store, stores_of
from tests.unit.fakes import FakeEvaluationUnitOfWork

POLICY = ScreeningPolicy()
WORKFLOW = Workflow()
SHUTTLE = "Autonomous shuttle feeder for Kera station"


def parsed(raw: dict):
    event = parse_envelope(json.dumps(raw).encode())
    return event, decode(event)


def revised(pid: str, title: str, revision: int = 2, time: str = "2026-03-05T10:00:00Z") -> dict:
    data = ev.submitted(pid, title=title)["data"]
    data.pop("submitted_at")
    data |= {"revision": revision, "revised_at": time}
    return ev.cloudevent(ev.T + "proposal.revised", data, subject=pid, source=service_source("proposals"))


def stream() -> list[dict]:
    """Submissions, near-duplicates of one another inside the run (one after the first closes),
    a revision with a new title, a status change that closes nothing, a redelivery, a withdrawal."""
    events = [
        ev.submitted("p-1", title=SHUTTLE, focus_area="smart_mobility", environment="kera"),
        ev.status("p-1", "submitted", "screening"),  # closes nothing: ignored
        ev.submitted(
            "p-2", title=SHUTTLE + " 2027", focus_area="smart_mobility", environment="kera"
        ),  # near p-1: fails
        ev.submitted("p-3", title="Library robot tutors"),
        revised("p-1", "Stormwater sensors in Leppavaara"),  # p-1's title changes: p-1 passes again
        ev.submitted("p-4", title=SHUTTLE),  # p-1 no longer has that title: passes
        ev.status("p-3", "in_evaluation", "withdrawn"),  # its evaluation closes, its title is free
        ev.submitted("p-5", title="Library robot tutor"),  # passes: p-3 is withdrawn
        ev.submitted("p-6", title="Stormwater sensors in Leppävaara"),  # near p-1's revision: fails
        ev.status("p-4", "in_evaluation", "rejected"),
        ev.submitted("p-7", title=SHUTTLE + "s"),  # p-4 is closed, p-2 failed: passes
        ev.submitted("p-8", title="Snow-melt cycle lanes in Otaniemi", budget_eur=10**7),  # over the cap
    ]
    events.insert(4, events[2])  # a redelivery inside the run
    return events


def one_by_one(uow_of, raws) -> list[str]:
    out = []
    for raw in raws:
        event, data = parsed(raw)
        out.append(handlers.on_proposal_events([(event, data)], uow_of(), POLICY, WORKFLOW)[0])
    return out


def in_runs(uow_of, raws, cuts) -> list[str]:
    """`raws` applied as runs, cut before each index in `cuts`."""
    out = []
    for run in ev.cut_at(raws, cuts):
        out += handlers.on_proposal_events([parsed(r) for r in run], uow_of(), POLICY, WORKFLOW)
    return out


PIDS = [f"p-{n}" for n in range(1, 9)]


def state(store: Store) -> tuple:
    """What the run leaves: the events published (without their own ids and times), each
    proposal's screening, evaluation and duplicate candidates, and the evaluators' workload."""
    published = [
        (e.type, e.subject, {k: v for k, v in e.data.items() if not k.endswith("_at")}) for e in store.published()
    ]

    def read(uow):
        screenings = {pid: _screening(uow.screenings.get(pid)) for pid in PIDS}
        evaluations = {}
        for pid in PIDS:
            e = uow.evaluations.current(pid)
            evaluations[pid] = None if e is None else (e.revision, e.status, [a.evaluator for a in e.assignments])
        candidates = {t: uow.known.near_duplicate_candidates(t, 0.9) for t in (SHUTTLE, "Library robot tutors")}
        return screenings, evaluations, candidates, uow.evaluations.workload()

    return published, store.read(read), store.inbox_size()


def _screening(s) -> object:
    if s is None:
        return None
    return s["revision"], s["screening"]["passed"], [f["rule"] for f in s["screening"]["failed_rules"]]


@pytest.fixture(params=["fake", "sqlite"])
def stores(request, tmp_path):
    with stores_of(request.param, tmp_path, "evaluation", FakeEvaluationUnitOfWork, EvaluationUnitOfWork) as make:
        yield make


def test_one_run_does_what_the_events_one_by_one_do(stores):
    raws = stream()
    alone, run = stores("a"), stores("b")
    expected = one_by_one(alone.uow, raws)
    assert expected == ["applied", "ignored", "applied", "applied", "duplicate"] + ["applied"] * 8
    assert in_runs(run.uow, raws, []) == expected
    assert state(run) == state(alone)
    published, (screenings, evaluations, _, workload), _ = state(run)
    # what the rule decided inside the run, as it would have one by one
    assert [pid for pid in PIDS if not screenings[pid][1]] == ["p-2", "p-6", "p-8"]
    assert screenings["p-2"][2] == ["duplicate"] and screenings["p-6"][2] == ["duplicate"]
    assert evaluations["p-1"][:2] == (2, "open") and evaluations["p-3"][1] == "closed"
    assert sum(workload.values()) == WORKFLOW.evaluators_per_proposal * 4  # p-1 (rev. 2), p-4, p-5, p-7


def test_a_run_of_events_already_applied_changes_nothing(stores):
    store = stores("a")
    raws = stream()
    in_runs(store.uow, raws, [])
    before = state(store)
    again = in_runs(store.uow, raws, [5])
    assert again == ["duplicate" if o != "ignored" else o for o in one_by_one(stores("b").uow, raws)]
    assert state(store) == before


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(stream()) - 1), max_size=5))
def test_wherever_the_runs_are_cut_the_outcome_is_the_same(tmp_path_factory, cuts):
    raws = stream()
    alone = Store("fake", tmp_path_factory.mktemp("a"), "evaluation", FakeEvaluationUnitOfWork, EvaluationUnitOfWork)
    runs = Store("sqlite", tmp_path_factory.mktemp("b"), "evaluation", FakeEvaluationUnitOfWork, EvaluationUnitOfWork)
    try:
        assert in_runs(runs.uow, raws, cuts) == one_by_one(alone.uow, raws)
        assert state(runs) == state(alone)
    finally:
        runs.close()


# The consumer's side: runs as the evaluation service's consumer makes them --------------------
def consumer(db, calls: list[int]):
    """Evaluation's consumer of the proposals' topic, as EvaluationService declares it, without
    nameko: its workers get units of work in the batch, as kokeilu.platform's Store hands them out."""
    from types import SimpleNamespace

    from kokeilu.config import Settings
    from kokeilu.contracts import topics
    from kokeilu.kafka.consumer import EventConsumer
    from kokeilu.metrics import metrics_for
    from services.evaluation.service import PROPOSAL_EVENTS

    c = EventConsumer.__new__(EventConsumer)
    c.topic_names, c.group, c._stopping = (topics.PROPOSALS,), "kokeilu.evaluation", False
    c.types = {t.name for t in PROPOSAL_EVENTS}
    c.bulk = dict.fromkeys(c.types, "on_proposal_events")
    c.on_reject = None
    c.settings = Settings(kokeilu_consumer_batch_seconds=60)
    c.container = SimpleNamespace(service_name="evaluation")
    c.store = SimpleNamespace(database=db)
    c.metrics, c.relay = metrics_for("evaluation"), SimpleNamespace(wake=lambda: None)
    c.counted = []

    def committed(batch, counted):
        c.counted.extend(counted)
        EventConsumer._committed(c, batch, counted)

    c._committed = committed

    def run_worker(*args, method=None):
        uow = EvaluationUnitOfWork.joining(db, c.batch.conn, c.batch.outbox, c.batch.record)
        if method is None:
            return handlers.on_proposal_events([args], uow, POLICY, WORKFLOW)[0]
        calls.append(len(args[0]))
        return handlers.on_proposal_events(args[0], uow, POLICY, WORKFLOW)

    c._run_worker = run_worker
    return c


def test_events_of_a_type_the_service_ignores_do_not_cut_a_run_of_the_same_key(tmp_path):
    """The proposals' topic carries, per proposal, contact-recorded (which evaluation does not
    read), submitted and status-changed, all keyed by the proposal: an ignored one does not make
    the run before it go first, so the whole poll is one run."""
    from types import SimpleNamespace

    raws = []
    for n in range(5):
        pid = f"p-{n}"
        raws += [
            ev.contact(pid, f"{pid}@example.com"),
            ev.submitted(pid, title=f"Pilot number {n} of a series with different words {n * 7}"),
            ev.status(pid, "submitted", "screening"),
            ev.contact(pid, f"{pid}@example.org"),  # (as a revision records it again)
        ]
    polled = [
        SimpleNamespace(
            topic="kokeilu.proposals.v1",
            partition=0,
            offset=i,
            key=raw["subject"].encode(),
            value=json.dumps(raw).encode(),
            headers=[],
        )
        for i, raw in enumerate(raws)
    ]
    store = Store("sqlite", tmp_path, "evaluation", FakeEvaluationUnitOfWork, EvaluationUnitOfWork)
    try:
        calls: list[int] = []
        c = consumer(store.db, calls)
        assert c._try_batch(polled) == len(raws)
        assert calls == [10]  # the submissions and status changes, at once
        outcomes = sorted((event_type.rsplit(".", 1)[-1], outcome) for _, event_type, outcome, _ in c.counted)
        expected = [("contact-recorded", "ignored")] * 10 + [
            ("submitted", "applied"),
            ("status-changed", "ignored"),
        ] * 5
        assert outcomes == sorted(expected)
        assert len(store.published("screening.completed")) == 5
    finally:
        store.close()
