"""Use cases of the evaluation service."""
from __future__ import annotations

from kokeilu.contracts import CloudEvent, new_event, utcnow
from kokeilu.contracts import catalog as types
from kokeilu.contracts.evaluation import ScreeningCompleted
from kokeilu.contracts.proposals import ProposalSubmitted

from .screening import ScreeningPolicy, screen

SOURCE = "kokeilu/evaluation"
CONSUMER = "evaluation"


def on_proposal_submitted(event: CloudEvent, proposal: ProposalSubmitted, uow, policy: ScreeningPolicy) -> str:
    failures = screen(proposal, policy)
    outcome = ScreeningCompleted(proposal_id=proposal.proposal_id, passed=not failures,
                                 failed_rules=failures, screened_at=utcnow())
    with uow:
        if not uow.first_time(CONSUMER, event):
            return "duplicate"
        uow.screenings.add(outcome, proposal.focus_area.value, proposal.title, proposal.submitted_at)
        uow.publish(new_event(types.SCREENING_COMPLETED.name, outcome, source=SOURCE,
                              subject=proposal.proposal_id, dataschema=types.SCREENING_COMPLETED.dataschema,
                              cause=event))
        uow.commit()
    return "applied"


def get_evaluation(proposal_id: str, uow) -> dict | None:
    with uow:
        return uow.screenings.get(proposal_id)
