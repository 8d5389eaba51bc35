"""Builders of valid example messages for unit tests: each gives a sensible default that a test
overrides only where the behaviour under test cares."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from kokeilu.contracts import CloudEvent, new_event
from kokeilu.contracts import catalog as types
from kokeilu.contracts.evaluation import RuleFailure, ScreeningCompleted
from kokeilu.contracts.proposals import ProposalSubmitted, Submission

CONTACT_EMAIL = "pilot.lead@example-mobility.fi"
WHEN = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def submission_body(**overrides) -> dict:
    body = {
        "title": "Autonomous shuttle feeder for Kera station",
        "summary": "A six-month shuttle pilot between Kera station and the new housing blocks.",
        "focus_area": "smart_mobility",
        "environment": "kera",
        "proposer": {"organisation": "Example Mobility Oy", "kind": "company", "contact_email": CONTACT_EMAIL},
        "hypothesis": "A feeder shuttle raises rail use among new residents.",
        "kpis": [{"name": "daily riders", "unit": "riders/day", "baseline": 0, "target": 200}],
        "budget_eur": 45000,
        "duration_weeks": 26,
        "partners": ["Kera school"],
        "language": "en",
    }
    body.update(overrides)
    return body


def a_submission(**overrides) -> Submission:
    return Submission.model_validate(submission_body(**overrides))


def a_proposal_submitted(proposal_id: str | None = None, **overrides) -> ProposalSubmitted:
    body = submission_body()
    body.pop("proposer")
    body.update(
        proposal_id=proposal_id or str(uuid.uuid4()),
        proposer={"organisation": "Example Mobility Oy", "kind": "company"},
        submitted_at=WHEN,
    )
    body.update(overrides)
    return ProposalSubmitted.model_validate(body)


def a_screening(
    proposal_id: str, passed: bool = True, failures: list[RuleFailure] | None = None, focus_area: str | None = None
) -> ScreeningCompleted:
    if failures is None:
        failures = [] if passed else [RuleFailure(rule="budget_cap", reason="over the cap")]
    return ScreeningCompleted(
        proposal_id=proposal_id, passed=passed, failed_rules=failures, screened_at=WHEN, focus_area=focus_area
    )


def an_event(
    event_type: types.EventType,
    data,
    *,
    source: str = "test/source",
    event_id: str | None = None,
    subject: str | None = None,
) -> CloudEvent:
    """An event as a consumer would receive it, with a chosen source and id (for redelivery tests)."""
    event = new_event(
        event_type.name,
        data,
        source=source,
        subject=subject or getattr(data, "proposal_id", "subject"),
        dataschema=event_type.dataschema,
    )
    if event_id is not None:
        event = event.model_copy(update={"id": event_id})
    return event


def redelivery_of(event: CloudEvent) -> CloudEvent:
    """The same event delivered again: a fresh copy with the same source and id."""
    return CloudEvent.model_validate_json(event.to_bytes())


def leaf_strings(value) -> list[str]:
    """Every string anywhere in a parsed JSON value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *leaf_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in leaf_strings(v)]
    return []
