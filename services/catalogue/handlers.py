"""Use cases of the catalogue service."""
from __future__ import annotations

from kokeilu.contracts import CloudEvent, new_event, utcnow
from kokeilu.contracts import catalog as types
from kokeilu.contracts.evaluation import ScreeningCompleted
from kokeilu.contracts.proposals import ProposalSubmitted

from .domain import Entry

SOURCE = "kokeilu/catalogue"
CONSUMER = "catalogue"


def _apply(event: CloudEvent, proposal_id: str, change, uow, contact_unit: str) -> str:
    """Returns "published" when this event completed an entry and its result went to the outbox."""
    outcome = "applied"
    with uow:
        if not uow.first_time(CONSUMER, event):
            return "duplicate"
        entry: Entry = change(uow.entries.get(proposal_id))
        if entry.ready_to_publish:
            entry = entry.publish(utcnow(), contact_unit)
            uow.publish(new_event(types.RESULT_PUBLISHED.name, entry.result, source=SOURCE,
                                  subject=entry.result.result_id, dataschema=types.RESULT_PUBLISHED.dataschema,
                                  cause=event), key=entry.result.result_id)
            outcome = "published"
        uow.entries.save(entry)
        uow.commit()
    return outcome


def on_proposal_submitted(event: CloudEvent, data: ProposalSubmitted, uow, contact_unit: str) -> str:
    return _apply(event, data.proposal_id, lambda e: e.with_proposal(data), uow, contact_unit)


def on_screening_completed(event: CloudEvent, data: ScreeningCompleted, uow, contact_unit: str) -> str:
    return _apply(event, data.proposal_id, lambda e: e.with_screening(data.passed), uow, contact_unit)


def get_result(proposal_id: str, uow):
    with uow:
        return uow.entries.get(proposal_id).result


def list_results(uow, limit: int, after: str | None):
    with uow:
        return uow.entries.published(limit, after)
