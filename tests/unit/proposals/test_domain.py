"""The proposal aggregate: one transition table, the commands on it, and one state machine showing
that no sequence of commands leaves the table."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kokeilu.contracts.evaluation import Decision, RuleFailure
from kokeilu.contracts.proposals import KpiActual, PilotOutcome
from services.proposals.domain import (
    TERMINAL,
    TRANSITIONS,
    DecisionRecord,
    IllegalTransition,
    MeasurementRefused,
    Proposal,
    Status,
)
from tests.builders import CONTACT_EMAIL, ORGANISATION, WHEN, a_submission, leaf_strings

FAILURES = [
    RuleFailure(rule="completeness", reason="missing a hypothesis"),
    RuleFailure(rule="budget_cap", reason="over the cap"),
]
DECISIONS = {
    "approve": Decision.approved,
    "reject": Decision.rejected,
    "request_revision": Decision.revision_requested,
}


def new() -> Proposal:
    return Proposal.submit("p-1", a_submission(), WHEN, "http")


def in_screening() -> Proposal:
    return new().start_screening(WHEN)


def decision(action: str, now) -> DecisionRecord:
    return DecisionRecord(DECISIONS[action], 3.0, "because", False, now)


# the transition table ------------------------------------------------------------------------
def test_every_status_has_a_row_and_every_move_lands_in_the_table():
    # A status without a row would make allowed_actions() and every action on it raise KeyError.
    assert set(TRANSITIONS) == set(Status)
    assert all(target in TRANSITIONS for moves in TRANSITIONS.values() for target in moves.values())
    for status in Status:
        assert Proposal("p-1", a_submission(), status, WHEN, WHEN, "http").allowed_actions() == sorted(
            TRANSITIONS[status]
        )


def test_the_lifecycle_of_the_issue():
    assert TRANSITIONS[Status.submitted] == {"start_screening": Status.screening, "withdraw": Status.withdrawn}
    assert TRANSITIONS[Status.screening]["pass_screening"] is Status.in_evaluation
    assert TRANSITIONS[Status.screening]["fail_screening"] is Status.screening_failed
    assert {TRANSITIONS[Status.in_evaluation][a] for a in DECISIONS} == {
        Status.approved,
        Status.rejected,
        Status.revision_requested,
    }
    assert TRANSITIONS[Status.revision_requested]["revise"] is Status.screening
    assert TRANSITIONS[Status.approved]["start_pilot"] is Status.piloting
    assert TRANSITIONS[Status.piloting]["complete_pilot"] is Status.completed
    open_states = set(Status) - TERMINAL - {Status.piloting}
    assert all(TRANSITIONS[s]["withdraw"] is Status.withdrawn for s in open_states)
    assert TERMINAL == {Status.screening_failed, Status.rejected, Status.completed, Status.withdrawn}


# commands --------------------------------------------------------------------------------------
def test_a_new_proposal_is_submitted_and_may_only_start_screening_or_be_withdrawn():
    p = new()
    assert p.status is Status.submitted
    assert p.allowed_actions() == ["start_screening", "withdraw"]
    assert p.submitted_at == p.updated_at == WHEN
    with pytest.raises(IllegalTransition):
        p.record_screening(True, [], WHEN)


def test_starting_screening_makes_a_proposal_wait_for_its_screening():
    moved = new().start_screening(WHEN + timedelta(seconds=1))
    assert moved.status is Status.screening
    assert moved.allowed_actions() == ["fail_screening", "pass_screening", "withdraw"]
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
    body = new().submitted_event().model_dump(mode="json")
    assert "contact_email" not in leaf_strings(body)
    assert CONTACT_EMAIL not in json.dumps(body)
    assert body["proposer"] == {"organisation": ORGANISATION, "kind": "company"}


def test_a_revision_counts_up_forgets_the_old_decision_and_its_event_carries_no_contact_details():
    p = in_screening().record_screening(True, [], WHEN).record_decision(decision("request_revision", WHEN), WHEN)
    assert p.decision is not None
    revised = p.revise(a_submission(title="Second try"), WHEN)
    assert (revised.revision, revised.status, revised.decision) == (2, Status.screening, None)
    body = revised.revised_event().model_dump(mode="json")
    assert body["revision"] == 2 and body["title"] == "Second try"
    assert "contact_email" not in leaf_strings(body)
    assert CONTACT_EMAIL not in json.dumps(body)


def test_a_measurement_for_a_kpi_the_proposal_lacks_is_refused():
    p = in_screening().record_screening(True, [], WHEN).record_decision(decision("approve", WHEN), WHEN)
    p = p.start_pilot(WHEN, None)
    p.accept_measurement("daily riders")
    with pytest.raises(MeasurementRefused):
        p.accept_measurement("co2 saved")
    with pytest.raises(MeasurementRefused):
        p.complete_pilot(PilotOutcome.stop, [KpiActual(name="co2 saved", actual=1)], "no", WHEN)


# the state machine -----------------------------------------------------------------------------
ACTIONS = sorted({action for moves in TRANSITIONS.values() for action in moves})
HAPPY_PATH = ["start_screening", "pass_screening", "approve", "start_pilot", "record_measurement"]


class ProposalLifecycle(RuleBasedStateMachine):
    """Any sequence of commands keeps a proposal inside the TRANSITIONS table: an action the table
    allows moves it where the table says (and records what it carries), any other is refused with
    the allowed actions and leaves it as it was; terminal statuses never move. Each run starts
    somewhere along the happy path (so that runs get as far as completed pilots), then takes
    actions the table allows and tries ones it forbids."""

    def __init__(self):
        super().__init__()
        self.proposal = new()
        self.clock = WHEN

    @initialize(steps=st.integers(0, len(HAPPY_PATH)), data=st.data())
    def along_the_happy_path(self, steps, data):
        for action in HAPPY_PATH[:steps]:
            self._try(action, data)

    @rule(data=st.data())
    def an_allowed_action(self, data):
        allowed = sorted(TRANSITIONS[self.proposal.status])
        if allowed:
            self._try(data.draw(st.sampled_from(allowed)), data)

    @rule(data=st.data())
    def a_forbidden_action(self, data):
        self._try(data.draw(st.sampled_from([a for a in ACTIONS if a not in TRANSITIONS[self.proposal.status]])), data)

    def _command(self, action: str, data):
        """The domain command behind `action`, and what the moved proposal must then hold."""
        if action == "start_screening":
            return lambda p, now: p.start_screening(now), {}
        if action in ("pass_screening", "fail_screening"):
            passed = action == "pass_screening"
            failures = data.draw(st.lists(st.sampled_from(FAILURES), max_size=2))
            return (
                lambda p, now: p.record_screening(passed, failures, now),
                {"screening_failures": () if passed else tuple(failures)},
            )
        if action in DECISIONS:
            return lambda p, now: p.record_decision(decision(action, now), now), {}
        if action == "revise":
            title = "A revised shuttle feeder"
            return (
                lambda p, now: p.revise(a_submission(title=title), now),
                {"revision": self.proposal.revision + 1, "decision": None},
            )
        if action == "withdraw":
            reason = data.draw(st.none() | st.just("found other funding"))
            return lambda p, now: p.withdraw(reason, now), {"withdrawn_reason": reason}
        if action == "start_pilot":
            return lambda p, now: p.start_pilot(now, None), {}
        if action == "record_measurement":  # allowed while piloting, where it changes no state
            return lambda p, now: p.accept_measurement("daily riders") or p, {"updated_at": self.proposal.updated_at}
        if action == "complete_pilot":
            actual = [KpiActual(name="daily riders", actual=220)]
            return lambda p, now: p.complete_pilot(PilotOutcome.scale_up, actual, "it worked", now), {}
        raise AssertionError(action)

    def _try(self, action, data):
        command, expected = self._command(action, data)
        before = self.proposal
        self.clock += timedelta(minutes=1)
        try:
            after = command(before, self.clock)
        except IllegalTransition as exc:
            assert action not in TRANSITIONS[before.status], f"{action} refused from {before.status}"
            assert exc.status is before.status
            assert exc.allowed == sorted(TRANSITIONS[before.status])
            assert self.proposal is before
            return
        assert before.status not in TERMINAL, f"{action} moved a {before.status.value} proposal"
        assert action in TRANSITIONS[before.status], f"{action} from {before.status} is not in the table"
        assert after.status is TRANSITIONS[before.status][action]
        assert after.updated_at == expected.pop("updated_at", self.clock)
        for name, value in expected.items():
            assert getattr(after, name) == value, name
        self.proposal = after

    @invariant()
    def status_is_in_the_table(self):
        p = self.proposal
        assert p.status in TRANSITIONS
        assert p.allowed_actions() == sorted(TRANSITIONS[p.status])
        if p.status is Status.piloting:
            assert p.pilot is not None and p.decision is not None and p.decision.decision is Decision.approved
        if p.status is Status.completed:
            assert p.pilot.outcome is not None and p.pilot.completed_at is not None


ProposalLifecycle.TestCase.settings = settings(max_examples=150, stateful_step_count=25, deadline=None)
test_no_sequence_of_commands_leaves_the_transition_table = ProposalLifecycle.TestCase
