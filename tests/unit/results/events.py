"""Workflow events as the proposals and evaluation services publish them, for the results and
notification tests (the producers are being built beside this feature; the contract is the model)."""

from __future__ import annotations

import uuid

from kokeilu.contracts.sources import service_source
from tests.support import cloudevent

T = "fi.espoo.kokeilu."


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
                "measurement_id": str(uuid.uuid4()),
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


def _at(event: dict, time: str) -> dict:
    event["time"] = time
    return event
