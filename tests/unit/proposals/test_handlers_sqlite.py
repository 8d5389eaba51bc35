"""Proposals use cases on the real store (a SQLite file of the test's own)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kokeilu.contracts.evaluation import Decision, EvaluationDecided, RuleFailure, ScreeningCompleted
from kokeilu.contracts.proposals import IntakeMeasurement, KpiActual, PilotOutcome
from kokeilu.contracts.sources import service_source
from kokeilu.errors import PermanentError
from services.proposals import handlers
from services.proposals.domain import IllegalTransition, Status
from services.proposals.store import ProposalsUnitOfWork
from tests.unit.workflow.support import WHEN, database, event, inbox_size, outbox, redelivery, submission


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    d = database(tmp_path_factory.mktemp("proposals"), "proposals")
    yield d
    d.dispose()


@pytest.fixture
def uow(db):
    return lambda: ProposalsUnitOfWork(db)


def screened(pid, passed=True):
    return event(
        "screening.completed",
        ScreeningCompleted(
            proposal_id=pid,
            passed=passed,
            screened_at=WHEN,
            failed_rules=[] if passed else [RuleFailure(rule="budget_cap", reason="over")],
        ),
        source=service_source("evaluation"),
    )


def decided(pid, decision=Decision.approved):
    return event(
        "evaluation.decided",
        EvaluationDecided(
            proposal_id=pid,
            decision=decision,
            weighted_score=4.0,
            threshold=3.5,
            criterion_averages={"impact": 4.0},
            rationale="Weighted score 4.00",
            decided_at=WHEN,
        ),
        source=service_source("evaluation"),
    )


def mine(db, pid, type_=None):
    return [e for e in outbox(db, type_) if e.subject == pid]


def to_piloting(uow, figures=handlers.UNCOUNTED) -> str:
    p = handlers.submit_proposal(submission(), uow(), figures=figures)
    for e in (screened(p.id), decided(p.id)):
        apply(e, uow, figures)
    handlers.start_pilot(p.id, None, uow(), figures)
    return p.id


def _data(e):
    from kokeilu.contracts import decode

    return decode(e)


def apply(e, uow, figures=handlers.UNCOUNTED):
    data = _data(e)
    if isinstance(data, ScreeningCompleted):
        return handlers.on_screening_completed(e, data, uow(), figures)
    return handlers.on_evaluation_decided(e, data, uow(), figures)


def test_a_submission_goes_to_screening_in_the_same_transaction(db, uow):
    p = handlers.submit_proposal(submission(), uow())
    assert p.status is Status.screening
    events = mine(db, p.id)
    assert [e.type.rsplit(".", 1)[-1] for e in events] == ["contact-recorded", "submitted", "status-changed"]
    assert events[2].data == {
        "proposal_id": p.id,
        "from_status": "submitted",
        "to_status": "screening",
        "action": "start_screening",
        "changed_at": events[2].data["changed_at"],
    }
    # The address travels only in the internal contact event, for notifications.
    assert "pilot@example.com" not in json.dumps([e.data for e in events[1:]])


def test_the_whole_lifecycle_publishes_each_step(db, uow):
    pid = to_piloting(uow)
    handlers.record_measurement(pid, "daily riders", 120, WHEN, "http:tests", uow())
    done = handlers.complete_pilot(
        pid, PilotOutcome.scale_up, [KpiActual(name="daily riders", actual=210)], "Residents used it daily.", uow()
    )
    assert done.status is Status.completed and done.pilot.outcome is PilotOutcome.scale_up
    kinds = [e.type.rsplit("kokeilu.", 1)[-1] for e in mine(db, pid)]
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
    actions = [e.data["action"] for e in mine(db, pid, "status-changed")]
    assert actions == ["start_screening", "pass_screening", "approve", "start_pilot", "complete_pilot"]


def test_revision_requested_can_be_revised_and_goes_back_to_screening(db, uow):
    p = handlers.submit_proposal(submission(), uow())
    apply(screened(p.id), uow)
    apply(decided(p.id, Decision.revision_requested), uow)
    revised = handlers.revise(p.id, submission(title="Shuttle feeder, second revision"), uow())
    assert (revised.status, revised.revision) == (Status.screening, 2)
    [r] = mine(db, p.id, "revised")
    assert r.data["revision"] == 2 and "contact_email" not in json.dumps(r.data)


def test_an_illegal_command_changes_nothing(db, uow):
    p = handlers.submit_proposal(submission(), uow())
    before = outbox(db)
    with pytest.raises(IllegalTransition) as caught:
        handlers.start_pilot(p.id, None, uow())
    assert caught.value.status is Status.screening
    assert outbox(db) == before and handlers.get_proposal(p.id, uow()).status is Status.screening


def test_withdrawing_then_a_late_decision_is_ignored(db, uow):
    p = handlers.submit_proposal(submission(), uow())
    apply(screened(p.id), uow)
    handlers.withdraw(p.id, "found funding elsewhere", uow())
    assert apply(decided(p.id), uow) == "ignored"
    assert handlers.get_proposal(p.id, uow()).status is Status.withdrawn


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["pass", "fail", "approved", "rejected", "revision_requested"]), st.integers(1, 3)),
        min_size=1,
        max_size=6,
    )
)
def test_a_redelivered_or_duplicated_event_changes_nothing(db, uow, steps):
    p = handlers.submit_proposal(submission(), uow())
    for kind, copies in steps:
        e = screened(p.id, kind == "pass") if kind in ("pass", "fail") else decided(p.id, Decision(kind))
        try:
            apply(e, uow)
        except (IllegalTransition, PermanentError):
            continue  # refused: the consumer dead-letters it
        state, published, inbox = handlers.get_proposal(p.id, uow()), outbox(db), inbox_size(db)
        for _ in range(copies):
            assert apply(redelivery(e), uow) == "duplicate"
        assert handlers.get_proposal(p.id, uow()) == state
        assert outbox(db) == published and inbox_size(db) == inbox


# intake measurements -------------------------------------------------------------------------
def measurement(pid, kpi="daily riders", source="sensors/kera", event_id=None):
    return event(
        "intake.measurement",
        IntakeMeasurement(proposal_id=pid, kpi=kpi, value=42, measured_at=WHEN),
        source=source,
        event_id=event_id,
    )


def test_a_measurement_for_a_piloting_proposal_is_recorded_once(db, uow):
    pid = to_piloting(uow)
    e = measurement(pid)
    assert handlers.on_intake_measurement(e, _data(e), uow()) == "applied"
    assert handlers.on_intake_measurement(redelivery(e), _data(e), uow()) == "duplicate"
    [m] = handlers.measurements_of(pid, uow())
    assert (m["kpi"], m["value"], m["source"]) == ("daily riders", 42, "sensors/kera")
    [recorded] = mine(db, pid, "measurement-recorded")
    assert recorded.causationid == e.id


@pytest.mark.parametrize("case", ["unknown proposal", "not piloting", "unknown kpi"])
def test_a_measurement_that_cannot_apply_is_refused_permanently_and_changes_nothing(db, uow, case):
    if case == "unknown proposal":
        e = measurement("no-such-proposal")
    elif case == "not piloting":
        e = measurement(handlers.submit_proposal(submission(), uow()).id)
    else:
        e = measurement(to_piloting(uow), kpi="co2 saved")
    before, inbox = outbox(db), inbox_size(db)
    with pytest.raises(handlers.IntakeRefused) as caught:
        handlers.on_intake_measurement(e, _data(e), uow())
    assert isinstance(caught.value, PermanentError)
    assert {"unknown proposal": "unknown proposal", "not piloting": "not piloting", "unknown kpi": "no KPI named"}[
        case
    ] in str(caught.value)
    assert outbox(db) == before and inbox_size(db) == inbox


def test_a_rejection_tells_the_source_once_keyed_by_the_intake_id(db, uow):
    e = measurement("no-such-proposal", source="school-systems/espoo", event_id="school-77")
    for _ in range(2):
        with uow() as u:
            handlers.intake_rejected(e.to_bytes(), e, "unknown proposal no-such-proposal", u)
            u.commit()
    rejected = [r for r in outbox(db, "intake-rejected") if r.subject == "school-77"]
    assert len(rejected) == 1
    assert rejected[0].data["intake_source"] == "school-systems/espoo"
    assert rejected[0].data["reason"] == "unknown proposal no-such-proposal"
    assert rejected[0].data["intake_type"] == "fi.espoo.kokeilu.intake.measurement"


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
def test_an_unparseable_record_is_answered_when_it_says_who_sent_it(db, uow, raw, told):
    before = len(outbox(db, "intake-rejected"))
    with uow() as u:
        handlers.intake_rejected(raw, None, "not a valid CloudEvent", u)
        u.commit()
    assert len(outbox(db, "intake-rejected")) == before + (1 if told else 0)


def test_each_state_a_proposal_leaves_is_timed_from_when_it_entered_it(db, uow):
    from services.proposals import metrics

    def count(state):
        return metrics._registry.get_sample_value(
            "kokeilu_proposal_state_seconds_count", {"service": "proposals", "state": state}
        )

    # Every state that can be left is exported before any proposal leaves it (rate() sees the first).
    assert count("in_evaluation") is not None and count("completed") is None
    before = {s: count(s) for s in ("submitted", "screening", "in_evaluation", "approved")}
    to_piloting(uow, figures=metrics)  # what the service passes its use cases
    assert {s: count(s) - before[s] for s in before} == {
        "submitted": 1,
        "screening": 1,
        "in_evaluation": 1,
        "approved": 1,
    }
    assert count("piloting") is not None


def test_every_event_about_a_proposal_stays_in_the_flow_its_submission_began(db, uow):
    """One correlation id and one trace per proposal (kokeilu/tracing.py), whoever acts on it."""
    from kokeilu import tracing

    with tracing.serving("POST", "/v1/proposals", {"X-Correlation-Id": "case-7"}):
        p = handlers.submit_proposal(submission(), uow())
    began = mine(db, p.id)[0].traceparent
    for e in (screened(p.id), decided(p.id)):
        e = e.model_copy(update={"correlationid": "case-7", "traceparent": began})  # as evaluation publishes them
        with tracing.consuming(e, "kokeilu.evaluations.v1", 0, 1, "g"):
            apply(e, uow)
    with tracing.serving("POST", "/v1/proposals/{id}/pilot/start", {"X-Correlation-Id": "manager-request"}):
        handlers.start_pilot(p.id, None, uow())
    sensor = event(
        "intake.measurement",
        IntakeMeasurement(proposal_id=p.id, kpi="daily riders", value=3, measured_at=WHEN),
        source="sensors/kera",
    )
    sensor = sensor.model_copy(update={"correlationid": "sensor-batch", "traceparent": f"00-{'5' * 32}-{'6' * 16}-01"})
    with tracing.consuming(sensor, "kokeilu.intake.v1", 0, 2, "g"):
        handlers.on_intake_measurement(sensor, _data(sensor), uow())
    events = mine(db, p.id)
    assert len(events) == 8
    assert {e.correlationid for e in events} == {"case-7"}
    assert len({tracing.trace_id_of(e.traceparent) for e in events}) == 1
    [measured] = [e for e in events if e.type.endswith("measurement-recorded")]
    assert measured.causationid == sensor.id
