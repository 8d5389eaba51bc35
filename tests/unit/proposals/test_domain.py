"""The proposal lifecycle: one transition table, and no sequence of commands leaves it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from tests.unit.workflow.support import WHEN, submission

ACTIONS = sorted({a for moves in TRANSITIONS.values() for a in moves})


def apply(p: Proposal, action: str, now) -> Proposal:
    """Run the domain command behind `action`."""
    if action == "start_screening":
        return p.start_screening(now)
    if action in ("pass_screening", "fail_screening"):
        return p.record_screening(action == "pass_screening", [RuleFailure(rule="completeness", reason="x")], now)
    if action in ("approve", "reject", "request_revision"):
        decision = {
            "approve": Decision.approved,
            "reject": Decision.rejected,
            "request_revision": Decision.revision_requested,
        }[action]
        return p.record_decision(DecisionRecord(decision, 3.0, "because", False, now), now)
    if action == "revise":
        return p.revise(submission(title="A revised shuttle feeder"), now)
    if action == "withdraw":
        return p.withdraw("changed our mind", now)
    if action == "start_pilot":
        return p.start_pilot(now, None)
    if action == "record_measurement":
        p.accept_measurement("daily riders")
        return p
    if action == "complete_pilot":
        return p.complete_pilot(PilotOutcome.scale_up, [KpiActual(name="daily riders", actual=220)], "it worked", now)
    raise AssertionError(action)


def test_every_status_has_a_row_and_every_move_lands_in_the_table():
    assert set(TRANSITIONS) == set(Status)
    assert all(target in TRANSITIONS for moves in TRANSITIONS.values() for target in moves.values())


def test_the_lifecycle_of_the_issue():
    assert TRANSITIONS[Status.screening]["pass_screening"] is Status.in_evaluation
    assert TRANSITIONS[Status.screening]["fail_screening"] is Status.screening_failed
    assert {TRANSITIONS[Status.in_evaluation][a] for a in ("approve", "reject", "request_revision")} == {
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


def test_an_illegal_transition_names_the_state_and_the_allowed_actions():
    p = Proposal.submit("p-1", submission(), WHEN, "http").start_screening(WHEN)
    with pytest.raises(IllegalTransition) as caught:
        p.start_pilot(WHEN, None)
    assert caught.value.status is Status.screening
    assert caught.value.allowed == ["fail_screening", "pass_screening", "withdraw"]


def test_a_revision_counts_up_and_forgets_the_old_decision():
    p = Proposal.submit("p-1", submission(), WHEN, "http")
    for action in ("start_screening", "pass_screening", "request_revision"):
        p = apply(p, action, WHEN)
    assert p.decision is not None
    revised = p.revise(submission(title="Second try"), WHEN)
    assert (revised.revision, revised.status, revised.decision) == (2, Status.screening, None)
    assert revised.revised_event().revision == 2
    assert "contact_email" not in revised.revised_event().model_dump_json()


def test_a_measurement_for_a_kpi_the_proposal_lacks_is_refused():
    p = Proposal.submit("p-1", submission(), WHEN, "http")
    for action in ("start_screening", "pass_screening", "approve", "start_pilot"):
        p = apply(p, action, WHEN)
    p.accept_measurement("daily riders")
    with pytest.raises(MeasurementRefused):
        p.accept_measurement("co2 saved")
    with pytest.raises(MeasurementRefused):
        p.complete_pilot(PilotOutcome.stop, [KpiActual(name="co2 saved", actual=1)], "no", WHEN)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(ACTIONS), max_size=25))
def test_no_sequence_of_commands_reaches_an_illegal_state(actions):
    p = Proposal.submit("p-1", submission(), WHEN, "http")
    now = WHEN
    for action in actions:
        now += timedelta(minutes=1)
        before = p
        try:
            p = apply(p, action, now)
        except IllegalTransition as exc:
            assert action not in TRANSITIONS[before.status]
            assert exc.allowed == sorted(TRANSITIONS[before.status])
            assert p is before
            continue
        assert action in TRANSITIONS[before.status], f"{action} ran from {before.status}"
        assert p.status is TRANSITIONS[before.status][action]
        assert p.status in TRANSITIONS
        if before.status in TERMINAL:
            raise AssertionError(f"{action} moved a {before.status.value} proposal")
        if p.status is Status.piloting:
            assert p.pilot is not None and p.decision is not None and p.decision.decision is Decision.approved
        if p.status is Status.completed:
            assert p.pilot.outcome is not None and p.pilot.completed_at is not None
        assert p.allowed_actions() == sorted(TRANSITIONS[p.status])
