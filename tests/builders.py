"""Builders of test data, for every kind of test (unit, integration, e2e, fuzz, ops, bench): each
gives a valid default that a test overrides only where the behaviour under test cares.

- `submission` (a request body) and `a_submission` (the model): the OpenAPI document's example;
- `a_proposal_submitted`, `a_screening`: event data models; `an_event` wraps one in a CloudEvent
  as a consumer receives it, `redelivery_of` delivers that again;
- `cloudevent`: a raw CloudEvent (a dict) as a probe puts it on a topic; `submitted`, `contact`,
  `screened`, `status`, `decided`, `started`, `measured` and `completed` are the workflow's events
  as the proposals and evaluation services publish them (raw, timed one after the other);
- `leaf_strings`: every string of a parsed JSON value, to look for what must not be there.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime

from kokeilu.contracts import CloudEvent, new_event
from kokeilu.contracts import catalog as types
from kokeilu.contracts.evaluation import RuleFailure, ScreeningCompleted
from kokeilu.contracts.proposals import SUBMISSION_EXAMPLE, ProposalSubmitted, Submission
from kokeilu.contracts.sources import service_source

WHEN = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
CONTACT_EMAIL = SUBMISSION_EXAMPLE["proposer"]["contact_email"]
ORGANISATION = SUBMISSION_EXAMPLE["proposer"]["organisation"]
T = "fi.espoo.kokeilu."


def new_id() -> str:
    return str(uuid.uuid4())


# requests and event data ------------------------------------------------------------------------
def submission(**overrides) -> dict:
    """A complete, valid proposal body: the OpenAPI document's example, with `overrides`."""
    body = copy.deepcopy(SUBMISSION_EXAMPLE)
    body.update(overrides)
    return body


def a_submission(**overrides) -> Submission:
    return Submission.model_validate(submission(**overrides))


def a_proposal_submitted(proposal_id: str | None = None, **overrides) -> ProposalSubmitted:
    """What the proposals service publishes of `submission()`: no contact details."""
    body = submission()
    body.update(proposal_id=proposal_id or new_id(), proposer={"organisation": ORGANISATION, "kind": "company"})
    body["submitted_at"] = WHEN
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
        subject=subject or getattr(data, "proposal_id", None) or "subject",
        dataschema=event_type.dataschema,
    )
    if event_id is not None:
        event = event.model_copy(update={"id": event_id})
    return event


def redelivery_of(event: CloudEvent) -> CloudEvent:
    """The same event delivered again: a fresh copy with the same source and id."""
    return CloudEvent.model_validate_json(event.to_bytes())


# raw events, as on a topic ----------------------------------------------------------------------
def cloudevent(
    type_: str, data, subject: str | None = None, source: str = "tests/probe", event_id: str | None = None
) -> dict:
    return {
        "specversion": "1.0",
        "id": event_id or new_id(),
        "source": source,
        "type": type_,
        "time": "2026-11-28T10:00:00Z",
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }


def submitted(pid: str, time: str = "2026-03-02T10:00:00Z", **overrides) -> dict:
    data = {
        "proposal_id": pid,
        "title": "Reading buddies at Kera school",
        "summary": "Older pupils read with younger ones twice a week, with a tablet app to log progress.",
        "focus_area": "learning",
        "environment": "school",
        "proposer": {"organisation": "Kera school", "kind": "school"},
        "hypothesis": "Reading buddies raise reading fluency.",
        "kpis": [{"name": "words per minute", "unit": "wpm", "baseline": 60, "target": 80}],
        "budget_eur": 20000,
        "duration_weeks": 20,
        "language": "fi",
        "submitted_at": time,
        "partners": ["Kera library"],
    }
    data.update(overrides)
    return _at(cloudevent(T + "proposal.submitted", data, subject=pid, source=service_source("proposals")), time)


def contact(pid: str, email: str, language: str = "fi", time: str = "2026-03-02T10:00:00Z") -> dict:
    return _at(
        cloudevent(
            T + "proposal.contact-recorded",
            {"proposal_id": pid, "contact_email": email, "language": language, "recorded_at": time},
            subject=pid,
            source=service_source("proposals"),
        ),
        time,
    )


def screened(pid: str, passed: bool = True, time: str = "2026-03-02T10:01:00Z") -> dict:
    return _at(
        cloudevent(
            T + "screening.completed",
            {
                "proposal_id": pid,
                "passed": passed,
                "screened_at": time,
                "failed_rules": [] if passed else [{"rule": "budget_cap", "reason": "over"}],
            },
            subject=pid,
            source=service_source("evaluation"),
        ),
        time,
    )


def status(pid: str, from_: str, to: str, time: str = "2026-03-03T10:00:00Z", reason: str | None = None) -> dict:
    data = {"proposal_id": pid, "from_status": from_, "to_status": to, "changed_at": time}
    if reason:
        data["reason"] = reason
    return _at(cloudevent(T + "proposal.status-changed", data, subject=pid, source=service_source("proposals")), time)


def decided(
    pid: str,
    decision: str = "approved",
    time: str = "2026-03-04T10:00:00Z",
    rationale: str = "Strong fit with the Espoo Story; measurable KPIs.",
) -> dict:
    return _at(
        cloudevent(
            T + "evaluation.decided",
            {
                "proposal_id": pid,
                "decision": decision,
                "weighted_score": 4.1,
                "threshold": 3.5,
                "criterion_averages": {"strategy_fit": 4.2},
                "rationale": rationale,
                "decided_at": time,
            },
            subject=pid,
            source=service_source("evaluation"),
        ),
        time,
    )


def started(pid: str, time: str = "2026-04-01T08:00:00Z") -> dict:
    return _at(
        cloudevent(
            T + "pilot.started",
            {"proposal_id": pid, "started_at": time},
            subject=pid,
            source=service_source("proposals"),
        ),
        time,
    )


def measured(pid: str, value: float, time: str = "2026-05-01T08:00:00Z", kpi: str = "words per minute") -> dict:
    return _at(
        cloudevent(
            T + "pilot.measurement-recorded",
            {
                "proposal_id": pid,
                "measurement_id": new_id(),
                "kpi": kpi,
                "value": value,
                "measured_at": time,
                "source": "school-system",
            },
            subject=pid,
            source=service_source("proposals"),
        ),
        time,
    )


def completed(
    pid: str,
    outcome: str = "scale_up",
    time: str = "2026-08-01T08:00:00Z",
    lessons: str = "Pairs that met at the library read the most.",
) -> dict:
    return _at(
        cloudevent(
            T + "pilot.completed",
            {
                "proposal_id": pid,
                "outcome": outcome,
                "actual_kpis": [{"name": "words per minute", "actual": 84}],
                "lessons_learned": lessons,
                "completed_at": time,
            },
            subject=pid,
            source=service_source("proposals"),
        ),
        time,
    )


def pilot_lifecycle(pid: str) -> list[dict]:
    """A proposal's workflow events from submission to a completed pilot, in order."""
    return [
        submitted(pid),
        screened(pid),
        decided(pid),
        status(pid, "in_evaluation", "approved"),
        started(pid),
        measured(pid, 70),
        completed(pid),
    ]


def _at(event: dict, time: str) -> dict:
    event["time"] = time
    return event


# reading what was built -------------------------------------------------------------------------
def leaf_strings(value) -> list[str]:
    """Every string anywhere in a parsed JSON value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *leaf_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in leaf_strings(v)]
    return []


def cut_at(items: list, cuts) -> list[list]:
    """`items` in consecutive runs, cut before each index in `cuts` (a bulk method's runs)."""
    bounds = [0, *sorted(set(cuts)), len(items)]
    return [items[start:end] for start, end in zip(bounds, bounds[1:], strict=False) if start < end]
