"""Use cases of the proposals service: message (command or event) first, then the unit of work."""
from __future__ import annotations

import uuid

from kokeilu.contracts import CloudEvent, new_event, utcnow
from kokeilu.contracts import catalog as types
from kokeilu.contracts.evaluation import ScreeningCompleted
from kokeilu.contracts.proposals import ProposalStatusChanged, Submission
from kokeilu.errors import PermanentError

from .domain import Proposal

SOURCE = "kokeilu/proposals"
CONSUMER = "proposals"


def _publish_submitted(uow, proposal: Proposal, cause: CloudEvent | None = None) -> None:
    uow.publish(new_event(types.PROPOSAL_SUBMITTED.name, proposal.submitted_event(), source=SOURCE,
                          subject=proposal.id, dataschema=types.PROPOSAL_SUBMITTED.dataschema, cause=cause))


def submit_proposal(submission: Submission, uow, source: str = "http", cause: CloudEvent | None = None) -> Proposal:
    proposal = Proposal.submit(str(uuid.uuid4()), submission, utcnow(), source)
    with uow:
        uow.proposals.add(proposal)
        _publish_submitted(uow, proposal, cause)
        uow.commit()
    return proposal


def on_intake(event: CloudEvent, submission: Submission, uow) -> str:
    """`intake.proposal` from a city system; idempotent on the event's source + id."""
    proposal = Proposal.submit(str(uuid.uuid4()), submission, utcnow(), event.source)
    with uow:
        if not uow.first_time(CONSUMER, event):
            return "duplicate"
        uow.proposals.add(proposal)
        _publish_submitted(uow, proposal, event)
        uow.commit()
    return "applied"


def on_screening_completed(event: CloudEvent, data: ScreeningCompleted, uow) -> str:
    with uow:
        if not uow.first_time(CONSUMER, event):
            return "duplicate"
        proposal = uow.proposals.get(data.proposal_id)
        if proposal is None:
            raise PermanentError(f"screening for unknown proposal {data.proposal_id}")
        moved = proposal.record_screening(data.passed, list(data.failed_rules), utcnow())
        uow.proposals.save(moved)
        reason = None if data.passed else "; ".join(f"{f.rule}: {f.reason}" for f in data.failed_rules)
        uow.publish(new_event(
            types.PROPOSAL_STATUS_CHANGED.name,
            ProposalStatusChanged(proposal_id=moved.id, from_status=proposal.status, to_status=moved.status,
                                  reason=reason, changed_at=moved.updated_at),
            source=SOURCE, subject=moved.id, dataschema=types.PROPOSAL_STATUS_CHANGED.dataschema, cause=event))
        uow.commit()
    return "applied"


def get_proposal(proposal_id: str, uow) -> Proposal | None:
    with uow:
        return uow.proposals.get(proposal_id)


def list_proposals(uow, status: str | None, limit: int, after: str | None) -> list[Proposal]:
    with uow:
        return uow.proposals.list(status=status, limit=limit, after=after)
