"""The catalogue entry: what departments see of a pilot. Built from events that may arrive in
any order (they come from different topics), and published once it has passed screening."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from kokeilu.contracts.proposals import ProposalSubmitted, ProposerKind
from kokeilu.contracts.results import Result, ResultKpi, ResultStatus


@dataclass(frozen=True)
class Entry:
    proposal_id: str
    proposal: ProposalSubmitted | None = None
    screening_passed: bool | None = None
    result: Result | None = None

    def with_proposal(self, proposal: ProposalSubmitted) -> "Entry":
        return replace(self, proposal=proposal)

    def with_screening(self, passed: bool) -> "Entry":
        return replace(self, screening_passed=passed)

    @property
    def ready_to_publish(self) -> bool:
        return self.result is None and self.proposal is not None and self.screening_passed is True

    def publish(self, now: datetime, contact_unit: str) -> "Entry":
        p = self.proposal
        assert p is not None
        # A resident's "organisation" is their own name: personal data stays out of the catalogue.
        organisation = None if p.proposer.kind == ProposerKind.resident else p.proposer.organisation
        result = Result(
            result_id=p.proposal_id, proposal_id=p.proposal_id, title=p.title, summary=p.summary,
            focus_area=p.focus_area, environment=p.environment, proposer_kind=p.proposer.kind,
            organisation=organisation, partners=p.partners, hypothesis=p.hypothesis, kpis=[ResultKpi(**k.model_dump()) for k in p.kpis],
            status=ResultStatus.in_evaluation, contact_unit=contact_unit, published_at=now, updated_at=now,
        )
        return replace(self, result=result)
