"""The proposals service's use cases, each run on both stores: the in-memory fake and the real
store on a SQLite file of the test's own (migrated by Alembic)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kokeilu.contracts import catalog as types
from kokeilu.contracts import decode, topics
from kokeilu.contracts.evaluation import Decision, EvaluationDecided, RuleFailure, ScreeningCompleted
from kokeilu.contracts.proposals import IntakeMeasurement, KpiActual, PilotOutcome
from kokeilu.contracts.sources import service_source
from kokeilu.errors import PermanentError
from services.proposals import handlers
from services.proposals.domain import IllegalTransition, Proposal, Status, UnknownProposal
from services.proposals.store import ProposalsUnitOfWork
from tests.builders import CONTACT_EMAIL, WHEN, a_screening, a_submission, an_event, leaf_strings, redelivery_of
from tests.support import Store
from tests.unit.fakes import FakeProposalsUnitOfWork

FAILURES = [
    RuleFailure(rule="completeness", reason="missing a hypothesis"),
    RuleFailure(rule="budget_cap", reason="over the cap"),
]
NEW_PROPOSAL_EVENTS = [
    types.PROPOSAL_CONTACT_RECORDED.name,
    types.PROPOSAL_SUBMITTED.name,
    types.PROPOSAL_STATUS_CHANGED.name,
]


@pytest.fixture(params=["fake", "sqlite"])
def store(request, tmp_path):
    s = Store(request.param, tmp_path, "proposals", FakeProposalsUnitOfWork, ProposalsUnitOfWork)
    yield s
    s.close()


def submitted(store, figures=handlers.UNCOUNTED, **overrides) -> Proposal:
    return handlers.submit_proposal(a_submission(**overrides), store.uow(), figures=figures)


def get(store, proposal_id: str) -> Proposal:
    return handlers.get_proposal(proposal_id, store.uow())


def screening_event(proposal_id: str, passed: bool = True, failures=None, **kw):
    return an_event(
        types.SCREENING_COMPLETED, a_screening(proposal_id, passed, failures), source=service_source("evaluation"), **kw
    )


def decided_event(proposal_id: str, decision: Decision = Decision.approved):
    data = EvaluationDecided(
        proposal_id=proposal_id,
        decision=decision,
        weighted_score=4.0,
        threshold=3.5,
        criterion_averages={"impact": 4.0},
        rationale="Weighted score 4.00",
        decided_at=WHEN,
    )
    return an_event(types.EVALUATION_DECIDED, data, source=service_source("evaluation"))


def apply(store, event, figures=handlers.UNCOUNTED) -> str:
    """`event` (a screening outcome or a decision) as the consumer hands it to its use case."""
    data = decode(event)
    if isinstance(data, ScreeningCompleted):
        return handlers.on_screening_completed(event, data, store.uow(), figures)
    return handlers.on_evaluation_decided(event, data, store.uow(), figures)


def screen(store, proposal_id: str, passed: bool, failures=None) -> str:
    return apply(store, screening_event(proposal_id, passed, failures))


def to_piloting(store, figures=handlers.UNCOUNTED) -> str:
    p = submitted(store, figures)
    for event in (screening_event(p.id), decided_event(p.id)):
        apply(store, event, figures)
    handlers.start_pilot(p.id, None, store.uow(), figures)
    return p.id


def mine(store, proposal_id: str, type_: str | None = None):
    return [e for e in store.published(type_) if e.subject == proposal_id]


# submitting ----------------------------------------------------------------------------------
def test_submitting_stores_a_proposal_that_went_straight_into_screening(store):
    p = submitted(store)
    assert get(store, p.id) == p
    assert p.status is Status.screening
    assert p.source == "http"
    assert p.submitted_at == p.updated_at, "no time is spent in submitted"
    assert store.read(lambda u: u.proposals.count_by_status()) == {"screening": 1}


def test_submitting_publishes_contact_submitted_and_the_move_to_screening_in_one_transaction(store):
    p = submitted(store)
    if store.fake is not None:
        assert store.fake.commits == 1
    assert [e.type for e in store.published()] == NEW_PROPOSAL_EVENTS
    assert {(topic, key, e.subject) for topic, key, e in store.records()} == {(topics.PROPOSALS, p.id, p.id)}
    contact, event, change = store.published()
    assert event.dataschema == types.PROPOSAL_SUBMITTED.dataschema
    assert decode(event, topics.PROPOSALS).proposal_id == p.id
    assert change.data == {
        "proposal_id": p.id,
        "from_status": "submitted",
        "to_status": "screening",
        "action": "start_screening",
        "changed_at": change.data["changed_at"],
    }
    recorded = decode(contact, topics.PROPOSALS)
    assert (recorded.proposal_id, recorded.contact_email, recorded.language.value) == (p.id, CONTACT_EMAIL, "en")


def test_only_the_internal_contact_event_carries_the_contact_email(store):
    p = submitted(store)
    for event in store.published():
        wire = event.to_bytes().decode()
        if event.type == types.PROPOSAL_CONTACT_RECORDED.name:
            assert CONTACT_EMAIL in wire
            assert types.PROPOSAL_CONTACT_RECORDED.topic == topics.PROPOSALS  # internal, never public
        else:
            assert "contact_email" not in leaf_strings(json.loads(wire)), event.type
            assert CONTACT_EMAIL not in wire, event.type
    assert get(store, p.id).submission.proposer.contact_email == CONTACT_EMAIL, "it stays in the store"


# screening outcomes --------------------------------------------------------------------------
def test_a_passed_screening_moves_the_proposal_into_evaluation_and_says_so(store):
    p = submitted(store)
    assert screen(store, p.id, passed=True) == "applied"
    assert get(store, p.id).status is Status.in_evaluation
    changes = store.published(types.PROPOSAL_STATUS_CHANGED.name)
    assert len(changes) == 2
    data = decode(changes[-1])
    assert (data.from_status, data.to_status, data.action, data.reason) == (
        Status.screening,
        Status.in_evaluation,
        "pass_screening",
        None,
    )


def test_a_failed_screening_keeps_the_failures_and_gives_them_as_the_reason(store):
    p = submitted(store)
    event = screening_event(p.id, passed=False, failures=FAILURES)
    assert apply(store, event) == "applied"
    stored = get(store, p.id)
    assert stored.status is Status.screening_failed
    assert stored.screening_failures == tuple(FAILURES)
    change = store.published(types.PROPOSAL_STATUS_CHANGED.name)[-1]
    assert decode(change).reason == "completeness: missing a hypothesis; budget_cap: over the cap"
    assert change.causationid == event.id
    assert change.correlationid == event.correlationid


def test_a_second_screening_outcome_on_a_moved_proposal_is_refused_and_changes_nothing(store):
    p = submitted(store)
    screen(store, p.id, passed=False, failures=FAILURES)
    published, inbox = store.published(), store.inbox_size()
    with pytest.raises(IllegalTransition) as caught:
        screen(store, p.id, passed=True)
    assert "pass_screening" not in caught.value.allowed
    assert get(store, p.id).status is Status.screening_failed
    assert store.published() == published and store.inbox_size() == inbox


def test_a_screening_of_an_unknown_proposal_fails_permanently(store):
    with pytest.raises(PermanentError, match="unknown proposal"):
        screen(store, "no-such-proposal", passed=True)
    assert store.published() == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["pass", "fail", "approved", "rejected", "revision_requested"]), st.integers(1, 3)),
        min_size=1,
        max_size=6,
    )
)
def test_a_redelivered_or_duplicated_event_changes_nothing(store, steps):
    p = submitted(store)
    for kind, copies in steps:
        e = screening_event(p.id, kind == "pass") if kind in ("pass", "fail") else decided_event(p.id, Decision(kind))
        try:
            assert apply(store, e) in ("applied", "ignored")
        except (IllegalTransition, PermanentError):
            continue  # refused: the consumer dead-letters it
        state, published, inbox = get(store, p.id), store.published(), store.inbox_size()
        for _ in range(copies):
            assert apply(store, redelivery_of(e)) == "duplicate"
        assert get(store, p.id) == state
        assert store.published() == published and store.inbox_size() == inbox


# commands --------------------------------------------------------------------------------------
def test_the_whole_lifecycle_publishes_each_step(store):
    pid = to_piloting(store)
    handlers.record_measurement(pid, "daily riders", 120, WHEN, "http:tests", store.uow())
    done = handlers.complete_pilot(
        pid,
        PilotOutcome.scale_up,
        [KpiActual(name="daily riders", actual=210)],
        "Residents used it daily.",
        store.uow(),
    )
    assert done.status is Status.completed and done.pilot.outcome is PilotOutcome.scale_up
    kinds = [e.type.rsplit("kokeilu.", 1)[-1] for e in mine(store, pid)]
    assert kinds == [
        "proposal.contact-recorded",
        "proposal.submitted",
        "proposal.status-changed",
        "proposal.status-changed",
        "proposal.status-changed",
        "pilot.started",
        "proposal.status-changed",
        "pilot.measurement-recorded",
        "pilot.completed",
        "proposal.status-changed",
    ]
    actions = [e.data["action"] for e in mine(store, pid, "status-changed")]
    assert actions == ["start_screening", "pass_screening", "approve", "start_pilot", "complete_pilot"]


def test_an_illegal_command_changes_nothing(store):
    p = submitted(store)
    before = store.published()
    with pytest.raises(IllegalTransition) as caught:
        handlers.start_pilot(p.id, None, store.uow())
    assert caught.value.status is Status.screening
    assert store.published() == before and get(store, p.id).status is Status.screening


def test_withdrawing_then_a_late_decision_is_ignored(store):
    p = submitted(store)
    apply(store, screening_event(p.id))
    handlers.withdraw(p.id, "found funding elsewhere", store.uow())
    before = store.published()
    assert apply(store, decided_event(p.id)) == "ignored"
    assert get(store, p.id).status is Status.withdrawn
    assert store.published() == before


def test_a_revision_publishes_the_contact_then_the_revision_without_it(store):
    p = submitted(store)
    screen(store, p.id, passed=True)
    assert apply(store, decided_event(p.id, Decision.revision_requested)) == "applied"
    before = len(store.published())
    revised = handlers.revise(p.id, a_submission(title="Shuttle feeder, second revision"), store.uow())
    assert (revised.status, revised.revision) == (Status.screening, 2)
    new = store.published()[before:]
    assert [e.type for e in new] == [
        types.PROPOSAL_CONTACT_RECORDED.name,
        types.PROPOSAL_REVISED.name,
        types.PROPOSAL_STATUS_CHANGED.name,
    ]
    assert decode(new[0]).contact_email == CONTACT_EMAIL
    assert new[1].data["revision"] == 2
    for event in new[1:]:
        assert CONTACT_EMAIL not in event.to_bytes().decode()
        assert "contact_email" not in leaf_strings(json.loads(event.to_bytes()))


def test_listing_filters_by_status_newest_first(store):
    first, second, third = (submitted(store) for _ in range(3))
    screen(store, second.id, passed=True)
    assert [p.id for p in handlers.list_proposals(store.uow(), "screening", 10, None)] == [
        p.id for p in sorted([first, third], key=lambda p: (p.submitted_at, p.id), reverse=True)
    ]
    assert handlers.list_proposals(store.uow(), "submitted", 10, None) == [], "no proposal rests in submitted"
    assert [p.id for p in handlers.list_proposals(store.uow(), "in_evaluation", 10, None)] == [second.id]
    assert get(store, second.id).status is Status.in_evaluation
    with pytest.raises(UnknownProposal):
        get(store, "nope")


# intake from city systems ----------------------------------------------------------------------
def intake(source: str = "espoo/e-services", event_id: str = "42"):
    return an_event(types.INTAKE_PROPOSAL, a_submission(), source=source, event_id=event_id)


def test_intake_submits_a_proposal_from_a_city_system(store):
    event = intake()
    assert handlers.on_intake(event, decode(event), store.uow()) == "applied"
    [proposal] = handlers.list_proposals(store.uow(), None, 10, None)
    assert proposal.source == "espoo/e-services"
    assert proposal.status is Status.screening
    assert [e.type for e in store.published()] == NEW_PROPOSAL_EVENTS
    for out in store.published():
        assert out.causationid == event.id
        assert out.correlationid == event.correlationid
    contact, public, change = store.published()
    assert CONTACT_EMAIL not in public.to_bytes().decode()
    assert CONTACT_EMAIL not in change.to_bytes().decode()


def test_intake_is_idempotent_on_source_and_id(store):
    event = intake()
    assert handlers.on_intake(event, decode(event), store.uow()) == "applied"
    published = store.published()
    assert handlers.on_intake(redelivery_of(event), decode(event), store.uow()) == "duplicate"
    assert len(handlers.list_proposals(store.uow(), None, 10, None)) == 1
    assert store.published() == published and len(published) == len(NEW_PROPOSAL_EVENTS)


def test_intake_events_with_the_same_id_from_different_sources_are_different_submissions(store):
    a, b = intake("espoo/e-services"), intake("espoo/school-systems")
    assert handlers.on_intake(a, decode(a), store.uow()) == "applied"
    assert handlers.on_intake(b, decode(b), store.uow()) == "applied"
    listed = handlers.list_proposals(store.uow(), None, 10, None)
    assert sorted(p.source for p in listed) == ["espoo/e-services", "espoo/school-systems"]
    assert [e.type for e in store.published()] == NEW_PROPOSAL_EVENTS * 2


def measurement(pid, kpi="daily riders", source="sensors/kera", event_id=None):
    return an_event(
        types.INTAKE_MEASUREMENT,
        IntakeMeasurement(proposal_id=pid, kpi=kpi, value=42, measured_at=WHEN),
        source=source,
        event_id=event_id,
    )


def test_a_measurement_for_a_piloting_proposal_is_recorded_once(store):
    pid = to_piloting(store)
    e = measurement(pid)
    assert handlers.on_intake_measurement(e, decode(e), store.uow()) == "applied"
    assert handlers.on_intake_measurement(redelivery_of(e), decode(e), store.uow()) == "duplicate"
    [m] = handlers.measurements_of(pid, store.uow())
    assert (m["kpi"], m["value"], m["source"]) == ("daily riders", 42, "sensors/kera")
    [recorded] = mine(store, pid, "measurement-recorded")
    assert recorded.causationid == e.id


@pytest.mark.parametrize("case", ["unknown proposal", "not piloting", "unknown kpi"])
def test_a_measurement_that_cannot_apply_is_refused_permanently_and_changes_nothing(store, case):
    if case == "unknown proposal":
        e = measurement("no-such-proposal")
    elif case == "not piloting":
        e = measurement(submitted(store).id)
    else:
        e = measurement(to_piloting(store), kpi="co2 saved")
    before, inbox = store.published(), store.inbox_size()
    with pytest.raises(handlers.IntakeRefused) as caught:
        handlers.on_intake_measurement(e, decode(e), store.uow())
    assert isinstance(caught.value, PermanentError)
    assert {"unknown proposal": "unknown proposal", "not piloting": "not piloting", "unknown kpi": "no KPI named"}[
        case
    ] in str(caught.value)
    assert store.published() == before and store.inbox_size() == inbox


def test_a_rejection_tells_the_source_once_keyed_by_the_intake_id(store):
    e = measurement("no-such-proposal", source="school-systems/espoo", event_id="school-77")
    for _ in range(2):
        with store.uow() as u:
            handlers.intake_rejected(e.to_bytes(), e, "unknown proposal no-such-proposal", u)
            u.commit()
    [rejected] = [r for r in store.published("intake-rejected") if r.subject == "school-77"]
    assert rejected.data["intake_source"] == "school-systems/espoo"
    assert rejected.data["reason"] == "unknown proposal no-such-proposal"
    assert rejected.data["intake_type"] == "fi.espoo.kokeilu.intake.measurement"


@pytest.mark.parametrize(
    "raw, told",
    [
        (b"not json at all", False),
        (b"[1, 2]", False),
        (json.dumps({"id": "x"}).encode(), False),
        (json.dumps({"id": "raw-1", "source": "portal", "type": "fi.espoo.kokeilu.intake.proposal"}).encode(), True),
        (json.dumps({"id": 17, "source": "portal"}).encode(), True),
    ],
)
def test_an_unparseable_record_is_answered_when_it_says_who_sent_it(store, raw, told):
    with store.uow() as u:
        handlers.intake_rejected(raw, None, "not a valid CloudEvent", u)
        u.commit()
    assert len(store.published("intake-rejected")) == (1 if told else 0)


# what a use case tells beyond its events ---------------------------------------------------------
def test_each_state_a_proposal_leaves_is_timed_from_when_it_entered_it(store):
    from services.proposals import metrics

    def count(state):
        return metrics._registry.get_sample_value(
            "kokeilu_proposal_state_seconds_count", {"service": "proposals", "state": state}
        )

    # Every state that can be left is exported before any proposal leaves it (rate() sees the first).
    assert count("in_evaluation") is not None and count("completed") is None
    before = {s: count(s) for s in ("submitted", "screening", "in_evaluation", "approved")}
    to_piloting(store, figures=metrics)  # what the service passes its use cases
    assert {s: count(s) - before[s] for s in before} == {
        "submitted": 1,
        "screening": 1,
        "in_evaluation": 1,
        "approved": 1,
    }
    assert count("piloting") is not None


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # the flow of a proposal is kept by the real store
def test_every_event_about_a_proposal_stays_in_the_flow_its_submission_began(store):
    """One correlation id and one trace per proposal (kokeilu/tracing.py), whoever acts on it."""
    from kokeilu import tracing

    with tracing.serving("POST", "/v1/proposals", {"X-Correlation-Id": "case-7"}):
        p = submitted(store)
    began = mine(store, p.id)[0].traceparent
    for e in (screening_event(p.id), decided_event(p.id)):
        e = e.model_copy(update={"correlationid": "case-7", "traceparent": began})  # as evaluation publishes them
        with tracing.consuming(e, "kokeilu.evaluations.v1", 0, 1, "g"):
            apply(store, e)
    with tracing.serving("POST", "/v1/proposals/{id}/pilot/start", {"X-Correlation-Id": "manager-request"}):
        handlers.start_pilot(p.id, None, store.uow())
    sensor = measurement(p.id).model_copy(
        update={"correlationid": "sensor-batch", "traceparent": f"00-{'5' * 32}-{'6' * 16}-01"}
    )
    with tracing.consuming(sensor, "kokeilu.intake.v1", 0, 2, "g"):
        handlers.on_intake_measurement(sensor, decode(sensor), store.uow())
    events = mine(store, p.id)
    assert len(events) == 8
    assert {e.correlationid for e in events} == {"case-7"}
    assert len({tracing.trace_id_of(e.traceparent) for e in events}) == 1
    [measured] = [e for e in events if e.type.endswith("measurement-recorded")]
    assert measured.causationid == sensor.id
