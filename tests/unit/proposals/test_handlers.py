"""The proposals service: the proposal lifecycle and its use cases, on an in-memory store."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kokeilu.contracts import catalog as types
from kokeilu.contracts import decode, topics
from kokeilu.contracts.evaluation import Decision, EvaluationDecided, RuleFailure
from kokeilu.contracts.sources import service_source
from kokeilu.errors import PermanentError
from services.proposals import handlers
from services.proposals.domain import TRANSITIONS, IllegalTransition, Proposal, Status, UnknownProposal
from tests.unit.examples import CONTACT_EMAIL, WHEN, a_screening, a_submission, an_event, leaf_strings, redelivery_of
from tests.unit.fakes import FakeProposalsUnitOfWork

FAILURES = [
    RuleFailure(rule="completeness", reason="missing a hypothesis"),
    RuleFailure(rule="budget_cap", reason="over the cap"),
]


@pytest.fixture
def uow():
    return FakeProposalsUnitOfWork()


def submitted(uow, **overrides) -> Proposal:
    return handlers.submit_proposal(a_submission(**overrides), uow)


def in_screening() -> Proposal:
    return Proposal.submit("p-1", a_submission(), WHEN, "http").start_screening(WHEN)


def screening_event(proposal_id: str, passed: bool, failures=None, **kw):
    return an_event(
        types.SCREENING_COMPLETED, a_screening(proposal_id, passed, failures), source=service_source("evaluation"), **kw
    )


def screen(uow, proposal_id: str, passed: bool, failures=None):
    event = screening_event(proposal_id, passed, failures)
    return handlers.on_screening_completed(event, decode(event), uow)


# domain ------------------------------------------------------------------------------------
def test_a_new_proposal_is_submitted_and_may_only_start_screening_or_be_withdrawn():
    p = Proposal.submit("p-1", a_submission(), WHEN, "http")
    assert p.status is Status.submitted
    assert p.allowed_actions() == sorted(TRANSITIONS[Status.submitted]) == ["start_screening", "withdraw"]
    assert p.submitted_at == p.updated_at == WHEN
    with pytest.raises(IllegalTransition):
        p.record_screening(True, [], WHEN)


def test_starting_screening_makes_a_proposal_wait_for_its_screening():
    p = Proposal.submit("p-1", a_submission(), WHEN, "http")
    moved = p.start_screening(WHEN + timedelta(seconds=1))
    assert moved.status is Status.screening
    assert {"fail_screening", "pass_screening"} <= set(moved.allowed_actions())
    assert moved.allowed_actions() == sorted(TRANSITIONS[Status.screening])
    assert moved.submitted_at == WHEN and moved.updated_at == WHEN + timedelta(seconds=1)


def test_passing_screening_moves_a_proposal_into_evaluation():
    p = in_screening()
    moved = p.record_screening(True, [], WHEN + timedelta(minutes=5))
    assert moved.status is Status.in_evaluation
    assert moved.updated_at == WHEN + timedelta(minutes=5)
    assert moved.screening_failures == ()
    assert p.status is Status.screening, "the aggregate is immutable"


def test_failing_screening_keeps_every_failure():
    moved = in_screening().record_screening(False, FAILURES, WHEN)
    assert moved.status is Status.screening_failed
    assert moved.screening_failures == tuple(FAILURES)


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("second", [True, False])
def test_a_second_screening_outcome_is_an_illegal_transition_saying_what_is_allowed(first, second):
    moved = in_screening().record_screening(first, FAILURES, WHEN)
    with pytest.raises(IllegalTransition) as caught:
        moved.record_screening(second, FAILURES, WHEN)
    assert caught.value.status is moved.status
    assert caught.value.action == ("pass_screening" if second else "fail_screening")
    assert caught.value.allowed == sorted(TRANSITIONS[moved.status])
    assert caught.value.action not in caught.value.allowed
    assert moved.status.value in str(caught.value)


def test_the_submitted_event_carries_no_contact_details():
    data = Proposal.submit("p-1", a_submission(), WHEN, "http").submitted_event()
    body = data.model_dump(mode="json")
    assert "contact_email" not in leaf_strings(body)
    assert CONTACT_EMAIL not in json.dumps(body)
    assert body["proposer"] == {"organisation": "Example Mobility Oy", "kind": "company"}


def test_the_revised_event_carries_no_contact_details():
    p = Proposal.submit("p-1", a_submission(), WHEN, "http")
    revised = replace(p, status=Status.revision_requested).revise(a_submission(title="Second try"), WHEN)
    body = revised.revised_event().model_dump(mode="json")
    assert body["revision"] == 2 and body["title"] == "Second try"
    assert "contact_email" not in leaf_strings(body)
    assert CONTACT_EMAIL not in json.dumps(body)


# state machine property ---------------------------------------------------------------------
class ProposalLifecycle(RuleBasedStateMachine):
    """Any sequence of screening commands keeps a proposal inside the TRANSITIONS table."""

    def __init__(self):
        super().__init__()
        self.proposal = Proposal.submit("p-1", a_submission(), WHEN, "http")
        self.clock = WHEN

    def _try(self, action, command, **expected):
        before = self.proposal
        self.clock += timedelta(seconds=1)
        try:
            after = command(before, self.clock)
        except IllegalTransition as exc:
            assert action not in TRANSITIONS[before.status]
            assert exc.allowed == sorted(TRANSITIONS[before.status])
            assert self.proposal is before
            return
        assert action in TRANSITIONS[before.status], f"{action} from {before.status} is not in the table"
        assert after.status is TRANSITIONS[before.status][action]
        assert after.updated_at == self.clock
        for name, value in expected.items():
            assert getattr(after, name) == value
        self.proposal = after

    @rule()
    def start_screening(self):
        self._try("start_screening", lambda p, now: p.start_screening(now))

    @rule(passed=st.booleans(), failures=st.lists(st.sampled_from(FAILURES), max_size=2))
    def record_screening(self, passed, failures):
        self._try(
            "pass_screening" if passed else "fail_screening",
            lambda p, now: p.record_screening(passed, failures, now),
            screening_failures=() if passed else tuple(failures),
        )

    @rule(reason=st.none() | st.just("found other funding"))
    def withdraw(self, reason):
        self._try("withdraw", lambda p, now: p.withdraw(reason, now), withdrawn_reason=reason)

    @invariant()
    def status_is_in_the_table(self):
        assert self.proposal.status in TRANSITIONS
        assert self.proposal.allowed_actions() == sorted(TRANSITIONS[self.proposal.status])


ProposalLifecycle.TestCase.settings = settings(max_examples=60, stateful_step_count=10, deadline=None)
test_screening_outcomes_never_leave_the_transition_table = ProposalLifecycle.TestCase


def test_every_status_has_a_row_in_the_transition_table():
    # A status without a row would make allowed_actions() and every action on it raise KeyError.
    assert set(Status) - set(TRANSITIONS) == set()
    for status in Status:
        assert Proposal("p-1", a_submission(), status, WHEN, WHEN, "http").allowed_actions() == sorted(
            TRANSITIONS[status]
        )


def test_every_transition_leads_to_a_status_in_the_table():
    assert all(target in TRANSITIONS for moves in TRANSITIONS.values() for target in moves.values())


# use cases ---------------------------------------------------------------------------------
NEW_PROPOSAL_EVENTS = [
    types.PROPOSAL_CONTACT_RECORDED.name,
    types.PROPOSAL_SUBMITTED.name,
    types.PROPOSAL_STATUS_CHANGED.name,
]


def test_submitting_stores_a_proposal_that_went_straight_into_screening(uow):
    p = submitted(uow)
    assert uow.proposals.get(p.id) == p
    assert p.status is Status.screening
    assert p.source == "http"
    assert p.submitted_at == p.updated_at, "no time is spent in submitted"
    assert uow.proposals.count_by_status() == {"screening": 1}
    assert uow.commits == 1


def test_submitting_publishes_contact_submitted_and_the_move_to_screening_in_one_transaction(uow):
    p = submitted(uow)
    assert uow.commits == 1
    assert [e.type for e in uow.published] == NEW_PROPOSAL_EVENTS
    assert {(o.topic, o.key, o.event.subject) for o in uow.outbox} == {(topics.PROPOSALS, p.id, p.id)}
    contact, event, change = uow.published
    assert event.dataschema == types.PROPOSAL_SUBMITTED.dataschema
    assert decode(event, topics.PROPOSALS).proposal_id == p.id
    moved = decode(change, topics.PROPOSALS)
    assert (moved.from_status, moved.to_status, moved.action, moved.reason) == (
        Status.submitted,
        Status.screening,
        "start_screening",
        None,
    )
    recorded = decode(contact, topics.PROPOSALS)
    assert (recorded.proposal_id, recorded.contact_email, recorded.language.value) == (p.id, CONTACT_EMAIL, "en")


def test_only_the_internal_contact_event_carries_the_contact_email(uow):
    p = submitted(uow)
    for event in uow.published:
        wire = event.to_bytes().decode()
        if event.type == types.PROPOSAL_CONTACT_RECORDED.name:
            assert CONTACT_EMAIL in wire
            assert types.PROPOSAL_CONTACT_RECORDED.topic == topics.PROPOSALS  # internal, never public
        else:
            assert "contact_email" not in leaf_strings(json.loads(wire)), event.type
            assert CONTACT_EMAIL not in wire, event.type
    assert uow.proposals.get(p.id).submission.proposer.contact_email == CONTACT_EMAIL, "it stays in the store"


def test_a_passed_screening_moves_the_proposal_into_evaluation_and_says_so(uow):
    p = submitted(uow)
    assert screen(uow, p.id, passed=True) == "applied"
    assert uow.proposals.get(p.id).status is Status.in_evaluation
    changes = uow.published_of(types.PROPOSAL_STATUS_CHANGED)
    assert len(changes) == 2
    data = decode(changes[-1])
    assert (data.from_status, data.to_status, data.action, data.reason) == (
        Status.screening,
        Status.in_evaluation,
        "pass_screening",
        None,
    )


def test_a_failed_screening_keeps_the_failures_and_gives_them_as_the_reason(uow):
    p = submitted(uow)
    event = screening_event(p.id, passed=False, failures=FAILURES)
    handlers.on_screening_completed(event, decode(event), uow)
    stored = uow.proposals.get(p.id)
    assert stored.status is Status.screening_failed
    assert stored.screening_failures == tuple(FAILURES)
    change = uow.published_of(types.PROPOSAL_STATUS_CHANGED)[-1]
    assert decode(change).reason == "completeness: missing a hypothesis; budget_cap: over the cap"
    assert change.causationid == event.id
    assert change.correlationid == event.correlationid


def test_a_second_screening_outcome_on_a_moved_proposal_is_refused_and_changes_nothing(uow):
    p = submitted(uow)
    screen(uow, p.id, passed=False, failures=FAILURES)
    published = list(uow.published)
    with pytest.raises(IllegalTransition) as caught:
        screen(uow, p.id, passed=True)
    assert "pass_screening" not in caught.value.allowed
    assert uow.proposals.get(p.id).status is Status.screening_failed
    assert uow.published == published


def test_a_screening_of_an_unknown_proposal_fails_permanently(uow):
    with pytest.raises(PermanentError, match="unknown proposal"):
        screen(uow, "no-such-proposal", passed=True)
    assert uow.published == []


def test_a_redelivered_screening_outcome_is_a_duplicate_and_changes_nothing(uow):
    p = submitted(uow)
    event = screening_event(p.id, passed=True)
    assert handlers.on_screening_completed(event, decode(event), uow) == "applied"
    stored, published = uow.proposals.get(p.id), list(uow.published)
    again = redelivery_of(event)
    assert handlers.on_screening_completed(again, decode(again), uow) == "duplicate"
    assert uow.proposals.get(p.id) == stored
    assert uow.published == published


def test_intake_submits_a_proposal_from_a_city_system(uow):
    event = an_event(types.INTAKE_PROPOSAL, a_submission(), source="espoo/e-services", event_id="42")
    assert handlers.on_intake(event, decode(event), uow) == "applied"
    [proposal] = uow.proposals.list()
    assert proposal.source == "espoo/e-services"
    assert proposal.status is Status.screening
    assert [e.type for e in uow.published] == NEW_PROPOSAL_EVENTS
    for out in uow.published:
        assert out.causationid == event.id
        assert out.correlationid == event.correlationid
    contact, public, change = uow.published
    assert CONTACT_EMAIL not in public.to_bytes().decode()
    assert CONTACT_EMAIL not in change.to_bytes().decode()


def test_intake_is_idempotent_on_source_and_id(uow):
    event = an_event(types.INTAKE_PROPOSAL, a_submission(), source="espoo/e-services", event_id="42")
    assert handlers.on_intake(event, decode(event), uow) == "applied"
    published = list(uow.published)
    assert handlers.on_intake(redelivery_of(event), decode(event), uow) == "duplicate"
    assert len(uow.proposals.list()) == 1
    assert uow.published == published and len(published) == len(NEW_PROPOSAL_EVENTS)


def test_intake_events_with_the_same_id_from_different_sources_are_different_submissions(uow):
    a = an_event(types.INTAKE_PROPOSAL, a_submission(), source="espoo/e-services", event_id="42")
    b = an_event(types.INTAKE_PROPOSAL, a_submission(), source="espoo/school-systems", event_id="42")
    assert handlers.on_intake(a, decode(a), uow) == "applied"
    assert handlers.on_intake(b, decode(b), uow) == "applied"
    assert sorted(p.source for p in uow.proposals.list()) == ["espoo/e-services", "espoo/school-systems"]
    assert [e.type for e in uow.published] == NEW_PROPOSAL_EVENTS * 2


def decided(proposal_id: str, decision: Decision):
    data = EvaluationDecided(
        proposal_id=proposal_id,
        decision=decision,
        weighted_score=3.0,
        threshold=3.5,
        criterion_averages={"impact": 3.0},
        rationale="Promising; KPIs need baselines.",
        decided_at=WHEN,
    )
    return an_event(types.EVALUATION_DECIDED, data, source=service_source("evaluation"))


def test_a_revision_publishes_the_contact_then_the_revision_without_it(uow):
    p = submitted(uow)
    screen(uow, p.id, passed=True)
    decision = decided(p.id, Decision.revision_requested)
    assert handlers.on_evaluation_decided(decision, decode(decision), uow) == "applied"
    before = len(uow.published)
    revised = handlers.revise(p.id, a_submission(title="Shuttle feeder, second revision"), uow)
    assert (revised.status, revised.revision) == (Status.screening, 2)
    new = uow.published[before:]
    assert [e.type for e in new] == [
        types.PROPOSAL_CONTACT_RECORDED.name,
        types.PROPOSAL_REVISED.name,
        types.PROPOSAL_STATUS_CHANGED.name,
    ]
    assert decode(new[0]).contact_email == CONTACT_EMAIL
    for event in new[1:]:
        assert CONTACT_EMAIL not in event.to_bytes().decode()
        assert "contact_email" not in leaf_strings(json.loads(event.to_bytes()))


def test_listing_filters_by_status_newest_first(uow):
    first, second, third = (submitted(uow) for _ in range(3))
    screen(uow, second.id, passed=True)
    assert [p.id for p in handlers.list_proposals(uow, "screening", 10, None)] == [
        p.id for p in sorted([first, third], key=lambda p: (p.submitted_at, p.id), reverse=True)
    ]
    assert handlers.list_proposals(uow, "submitted", 10, None) == [], "no proposal rests in submitted"
    assert [p.id for p in handlers.list_proposals(uow, "in_evaluation", 10, None)] == [second.id]
    assert handlers.get_proposal(second.id, uow).status is Status.in_evaluation
    with pytest.raises(UnknownProposal):
        handlers.get_proposal("nope", uow)
