"""The proposal aggregate and its lifecycle rules. No infrastructure here."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from kokeilu.contracts.evaluation import RuleFailure
from kokeilu.contracts.proposals import ProposalStatus, ProposalSubmitted, PublicProposer, Submission

Status = ProposalStatus

# state -> {action: next state}. Every change of state goes through this table.
TRANSITIONS: dict[Status, dict[str, Status]] = {
    Status.submitted: {"pass_screening": Status.in_evaluation, "fail_screening": Status.screening_failed},
    Status.screening_failed: {},
    Status.in_evaluation: {},
}


class IllegalTransition(Exception):
    def __init__(self, proposal: "Proposal", action: str):
        super().__init__(f"cannot {action.replace('_', ' ')} a proposal that is {proposal.status.value}")
        self.status = proposal.status
        self.action = action
        self.allowed = sorted(TRANSITIONS[proposal.status])


@dataclass(frozen=True)
class Proposal:
    id: str
    submission: Submission
    status: Status
    submitted_at: datetime
    updated_at: datetime
    source: str  # who submitted it: "http" or the CloudEvents source of an intake event
    screening_failures: tuple[RuleFailure, ...] = field(default_factory=tuple)

    @classmethod
    def submit(cls, proposal_id: str, submission: Submission, now: datetime, source: str) -> "Proposal":
        return cls(proposal_id, submission, Status.submitted, now, now, source)

    def allowed_actions(self) -> list[str]:
        return sorted(TRANSITIONS[self.status])

    def _move(self, action: str, now: datetime, **changes) -> "Proposal":
        target = TRANSITIONS[self.status].get(action)
        if target is None:
            raise IllegalTransition(self, action)
        return replace(self, status=target, updated_at=now, **changes)

    def record_screening(self, passed: bool, failures: list[RuleFailure], now: datetime) -> "Proposal":
        if passed:
            return self._move("pass_screening", now, screening_failures=())
        return self._move("fail_screening", now, screening_failures=tuple(failures))

    def submitted_event(self) -> ProposalSubmitted:
        s = self.submission
        return ProposalSubmitted(
            proposal_id=self.id, title=s.title, summary=s.summary, focus_area=s.focus_area,
            environment=s.environment,
            proposer=PublicProposer(organisation=s.proposer.organisation, kind=s.proposer.kind),
            hypothesis=s.hypothesis, kpis=s.kpis, budget_eur=s.budget_eur, duration_weeks=s.duration_weeks,
            partners=s.partners, external_funding_sought=s.external_funding_sought, language=s.language,
            submitted_at=self.submitted_at,
        )
