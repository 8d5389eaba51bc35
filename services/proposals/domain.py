"""The proposal aggregate and its lifecycle rules. No infrastructure here."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypedDict

from kokeilu.contracts.evaluation import Decision, RuleFailure
from kokeilu.contracts.proposals import (
    KpiActual,
    PilotOutcome,
    ProposalRevised,
    ProposalStatus,
    ProposalSubmitted,
    PublicProposer,
    Submission,
)

Status = ProposalStatus

# state -> {action: next state}. Every change of state goes through this table, and so do the
# HTTP 409 answers (current state, allowed actions) and the property tests. An action that maps
# a state to itself (record_measurement) is allowed there but changes no state.
TRANSITIONS: dict[Status, dict[str, Status]] = {
    Status.submitted: {"start_screening": Status.screening, "withdraw": Status.withdrawn},
    Status.screening: {
        "pass_screening": Status.in_evaluation,
        "fail_screening": Status.screening_failed,
        "withdraw": Status.withdrawn,
    },
    Status.screening_failed: {},
    Status.in_evaluation: {
        "approve": Status.approved,
        "reject": Status.rejected,
        "request_revision": Status.revision_requested,
        "withdraw": Status.withdrawn,
    },
    Status.approved: {"start_pilot": Status.piloting, "withdraw": Status.withdrawn},
    Status.rejected: {},
    Status.revision_requested: {"revise": Status.screening, "withdraw": Status.withdrawn},
    # A running pilot is not withdrawn: it is completed, with the outcome `stop` if need be.
    Status.piloting: {"record_measurement": Status.piloting, "complete_pilot": Status.completed},
    Status.completed: {},
    Status.withdrawn: {},
}

DECISION_ACTIONS = {
    Decision.approved: "approve",
    Decision.rejected: "reject",
    Decision.revision_requested: "request_revision",
}

TERMINAL = frozenset(s for s, moves in TRANSITIONS.items() if not moves)


class IllegalTransition(Exception):
    def __init__(self, proposal: Proposal, action: str):
        super().__init__(f"cannot {action.replace('_', ' ')} a proposal that is {proposal.status.value}")
        self.status = proposal.status
        self.action = action
        self.allowed = sorted(TRANSITIONS[proposal.status])


class MeasurementRefused(Exception):
    """A measurement that cannot belong to this proposal (wrong state or unknown KPI)."""


class UnknownProposal(LookupError):
    """No proposal with that id."""


@dataclass(frozen=True)
class Pilot:
    started_at: datetime
    planned_end: datetime | None = None
    outcome: PilotOutcome | None = None
    actual_kpis: tuple[KpiActual, ...] = ()
    lessons_learned: str | None = None
    completed_at: datetime | None = None


def pilot_json(p: Pilot | None) -> dict[str, Any] | None:
    """A pilot as JSON: how the store keeps it and the API shows it."""
    if p is None:
        return None
    return {
        "started_at": p.started_at.isoformat(),
        "planned_end": p.planned_end and p.planned_end.isoformat(),
        "outcome": p.outcome and p.outcome.value,
        "actual_kpis": [a.model_dump(mode="json") for a in p.actual_kpis],
        "lessons_learned": p.lessons_learned,
        "completed_at": p.completed_at and p.completed_at.isoformat(),
    }


@dataclass(frozen=True)
class DecisionRecord:
    decision: Decision
    weighted_score: float
    rationale: str
    external_funding_recommended: bool
    decided_at: datetime


class Measurement(TypedDict):
    """A KPI's measured value in a pilot, as the proposal's measurements keep it."""

    id: str
    proposal_id: str
    kpi: str
    value: float
    measured_at: datetime
    source: str
    recorded_at: datetime


@dataclass(frozen=True)
class Proposal:
    id: str
    submission: Submission
    status: Status
    submitted_at: datetime
    updated_at: datetime
    source: str  # who submitted it: "http" or the CloudEvents source of an intake event
    screening_failures: tuple[RuleFailure, ...] = field(default_factory=tuple)
    revision: int = 1
    decision: DecisionRecord | None = None
    pilot: Pilot | None = None
    withdrawn_reason: str | None = None

    @classmethod
    def submit(cls, proposal_id: str, submission: Submission, now: datetime, source: str) -> Proposal:
        return cls(proposal_id, submission, Status.submitted, now, now, source)

    def allowed_actions(self) -> list[str]:
        return sorted(TRANSITIONS[self.status])

    def check(self, action: str) -> Status:
        """The state `action` leads to; IllegalTransition when this state does not allow it."""
        target = TRANSITIONS[self.status].get(action)
        if target is None:
            raise IllegalTransition(self, action)
        return target

    def _move(self, action: str, now: datetime, **changes: Any) -> Proposal:
        return replace(self, status=self.check(action), updated_at=now, **changes)

    # transitions ---------------------------------------------------------------------------
    def start_screening(self, now: datetime) -> Proposal:
        return self._move("start_screening", now)

    def record_screening(self, passed: bool, failures: list[RuleFailure], now: datetime) -> Proposal:
        if passed:
            return self._move("pass_screening", now, screening_failures=())
        return self._move("fail_screening", now, screening_failures=tuple(failures))

    def record_decision(self, decision: DecisionRecord, now: datetime) -> Proposal:
        return self._move(DECISION_ACTIONS[decision.decision], now, decision=decision)

    def revise(self, submission: Submission, now: datetime) -> Proposal:
        return self._move(
            "revise", now, submission=submission, revision=self.revision + 1, screening_failures=(), decision=None
        )

    def withdraw(self, reason: str | None, now: datetime) -> Proposal:
        return self._move("withdraw", now, withdrawn_reason=reason)

    def start_pilot(self, now: datetime, planned_end: datetime | None) -> Proposal:
        return self._move("start_pilot", now, pilot=Pilot(started_at=now, planned_end=planned_end))

    def accept_measurement(self, kpi: str) -> None:
        """Raises IllegalTransition when not piloting, MeasurementRefused for a KPI the proposal lacks."""
        self.check("record_measurement")
        names = {k.name for k in self.submission.kpis}
        if kpi not in names:
            raise MeasurementRefused(
                f"proposal {self.id} has no KPI named {kpi!r} (its KPIs: {', '.join(sorted(names)) or 'none'})"
            )

    def complete_pilot(self, outcome: PilotOutcome, actual: list[KpiActual], lessons: str, now: datetime) -> Proposal:
        target = self.check("complete_pilot")
        names = {k.name for k in self.submission.kpis}
        unknown = sorted({a.name for a in actual} - names)
        if unknown:
            raise MeasurementRefused(f"actual values given for KPIs the proposal does not have: {', '.join(unknown)}")
        pilot = replace(
            self.pilot or Pilot(started_at=now),
            outcome=outcome,
            actual_kpis=tuple(actual),
            lessons_learned=lessons,
            completed_at=now,
        )
        return replace(self, status=target, updated_at=now, pilot=pilot)

    # events --------------------------------------------------------------------------------
    def _public_content(self) -> dict[str, Any]:
        s = self.submission
        return dict(
            proposal_id=self.id,
            title=s.title,
            summary=s.summary,
            focus_area=s.focus_area,
            environment=s.environment,
            proposer=PublicProposer(organisation=s.proposer.organisation, kind=s.proposer.kind),
            hypothesis=s.hypothesis,
            kpis=s.kpis,
            budget_eur=s.budget_eur,
            duration_weeks=s.duration_weeks,
            partners=s.partners,
            external_funding_sought=s.external_funding_sought,
            language=s.language,
            school_name=s.school_name,
        )

    def submitted_event(self) -> ProposalSubmitted:
        return ProposalSubmitted(**self._public_content(), submitted_at=self.submitted_at, revision=self.revision)

    def revised_event(self) -> ProposalRevised:
        return ProposalRevised(**self._public_content(), revision=self.revision, revised_at=self.updated_at)
