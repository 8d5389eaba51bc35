"""Realistic event streams for the consume benchmarks, built with the contract models.

A stream is made of proposal *histories*: the events the platform publishes about one
proposal, in the order it publishes them, keyed by the proposal id (as the outbox relay keys
them), each event on the topic its type belongs to. The fates follow a plausible programme:

    every proposal        proposal.contact-recorded, proposal.submitted,
                          proposal.status-changed (submitted -> screening)
    15 % fail screening   screening.completed (failed), status-changed (-> screening_failed)
    85 % pass             screening.completed (passed), evaluation.opened, status-changed (-> in_evaluation)
      60 % of them decided  evaluation.decided, status-changed (-> approved | rejected | revision_requested;
                            60 / 30 / 10 %)
        70 % of approved    pilot.started, status-changed (-> piloting), 3 x pilot.measurement-recorded
          50 % of those     pilot.completed, status-changed (-> completed)

A service's stream keeps the events of the topics it consumes, history after history, until it
has N. Titles are six words from chaos.load.WORDS plus an index, far apart enough that the
near-duplicate screening rule never fires (so a failed screening is always the planned one).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chaos.load import WORDS
from kokeilu.contracts import catalog as types
from kokeilu.contracts import new_event
from kokeilu.contracts.evaluation import Decision, EvaluationDecided, EvaluationOpened, RuleFailure, ScreeningCompleted
from kokeilu.contracts.proposals import (
    IntakeMeasurement,
    KpiActual,
    MeasurementRecorded,
    PilotCompleted,
    PilotOutcome,
    PilotStarted,
    ProposalContact,
    ProposalStatusChanged,
    ProposalSubmitted,
    Submission,
)
from kokeilu.contracts.sources import service_source

FOCUS = ("smart_mobility", "learning", "sustainable_development")
ENVIRONMENTS = ("west_metro", "kera", "waterfront_walkway", "citywide")
LANGUAGES = ("fi", "sv", "en")
KINDS = ("company", "company", "company", "school", "resident", "research", "city_unit")
KPI = "daily riders"
PROPOSALS_SOURCE = service_source("proposals")
EVALUATION_SOURCE = service_source("evaluation")
INTAKE_SOURCE = "e-services-portal"
SENSOR_SOURCE = "sensors/west-metro"


@dataclass(frozen=True)
class Record:
    topic: str  # logical topic (kokeilu.proposals.v1, ...)
    key: bytes
    value: bytes
    type: str  # short type, e.g. proposal.submitted


def _record(event_type: types.EventType, data, subject: str, source: str, cause=None) -> tuple[Record, object]:
    event = new_event(
        event_type.name, data, source=source, subject=subject, dataschema=event_type.dataschema, cause=cause
    )
    return Record(event_type.topic, subject.encode(), event.to_bytes(), event_type.short), event


def title(rng: random.Random, i: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(6)) + f" pilot {i}"


def submission(rng: random.Random, i: int, complete: bool = True) -> Submission:
    focus = rng.choice(FOCUS)
    t = title(rng, i)
    body = {
        "title": t,
        "summary": f"A pilot ({t}) in the {focus.replace('_', ' ')} programme, measured against its KPI for a season.",
        "focus_area": focus,
        "environment": rng.choice(ENVIRONMENTS),
        "proposer": {
            "organisation": f"Pilot {i} Oy",
            "kind": rng.choice(KINDS),
            "contact_email": f"proposer-{i}@bench.example",
        },
        "kpis": [{"name": KPI, "unit": "riders/day", "baseline": 0, "target": rng.randint(50, 500)}],
        "budget_eur": rng.randrange(5_000, 75_000, 500),
        "duration_weeks": rng.randint(4, 52),
        "partners": [f"Partner {rng.randint(1, 40)}" for _ in range(rng.randint(0, 3))],
        "language": rng.choice(LANGUAGES),
    }
    if complete:
        body["hypothesis"] = "The pilot moves its KPI from the baseline to the target within its duration."
    else:  # draft quality: screening fails it for completeness
        body["kpis"] = []
    return Submission.model_validate(body)


def _changed(pid: str, before: str, after: str, action: str, at: datetime, reason: str | None = None):
    return _record(
        types.PROPOSAL_STATUS_CHANGED,
        ProposalStatusChanged(
            proposal_id=pid, from_status=before, to_status=after, action=action, reason=reason, changed_at=at
        ),
        pid,
        PROPOSALS_SOURCE,
    )[0]


def history(rng: random.Random, i: int) -> list[Record]:
    """The events of one proposal's life, in the order the platform publishes them."""
    pid = str(uuid.uuid4())
    now = datetime.now(UTC)
    passes = rng.random() >= 0.15
    sub = submission(rng, i, complete=passes)
    content = sub.model_dump(mode="json")
    contact = content["proposer"].pop("contact_email")
    out = [
        _record(
            types.PROPOSAL_CONTACT_RECORDED,
            ProposalContact(proposal_id=pid, contact_email=contact, language=sub.language, recorded_at=now),
            pid,
            PROPOSALS_SOURCE,
        )[0],
        _record(
            types.PROPOSAL_SUBMITTED,
            ProposalSubmitted.model_validate({**content, "proposal_id": pid, "submitted_at": now}),
            pid,
            PROPOSALS_SOURCE,
        )[0],
        _changed(pid, "submitted", "screening", "start_screening", now),
    ]
    if not passes:
        failure = RuleFailure(rule="completeness", reason="hypothesis and at least one KPI are required")
        out += [
            _record(
                types.SCREENING_COMPLETED,
                ScreeningCompleted(
                    proposal_id=pid,
                    passed=False,
                    failed_rules=[failure],
                    screened_at=now,
                    focus_area=sub.focus_area.value,
                ),
                pid,
                EVALUATION_SOURCE,
            )[0],
            _changed(pid, "screening", "screening_failed", "fail_screening", now, f"completeness: {failure.reason}"),
        ]
        return out
    out += [
        _record(
            types.SCREENING_COMPLETED,
            ScreeningCompleted(proposal_id=pid, passed=True, screened_at=now, focus_area=sub.focus_area.value),
            pid,
            EVALUATION_SOURCE,
        )[0],
        _record(
            types.EVALUATION_OPENED,
            EvaluationOpened(
                proposal_id=pid,
                focus_area=sub.focus_area.value,
                evaluators=["aino", "eero", "liisa"],
                opened_at=now,
                due_at=now + timedelta(days=14),
            ),
            pid,
            EVALUATION_SOURCE,
        )[0],
        _changed(pid, "screening", "in_evaluation", "pass_screening", now),
    ]
    if rng.random() >= 0.6:
        return out
    draw = rng.random()
    decision, status, action = (
        (Decision.approved, "approved", "approve")
        if draw < 0.6
        else (Decision.rejected, "rejected", "reject")
        if draw < 0.9
        else (Decision.revision_requested, "revision_requested", "request_revision")
    )
    rationale = f"The panel found the pilot {decision.value.replace('_', ' ')} on the weighted rubric."
    out += [
        _record(
            types.EVALUATION_DECIDED,
            EvaluationDecided(
                proposal_id=pid,
                decision=decision,
                weighted_score=3.9 if status == "approved" else 2.4,
                threshold=3.0,
                criterion_averages={
                    "strategy_fit": 4.0,
                    "feasibility": 3.7,
                    "impact": 4.0,
                    "sustainability": 3.7,
                    "reuse_scalability": 3.3,
                },
                rationale=rationale,
                decided_at=now,
                focus_area=sub.focus_area.value,
            ),
            pid,
            EVALUATION_SOURCE,
        )[0],
        _changed(pid, "in_evaluation", status, action, now, rationale),
    ]
    if status != "approved" or rng.random() >= 0.7:
        return out
    out += [
        _record(types.PILOT_STARTED, PilotStarted(proposal_id=pid, started_at=now), pid, PROPOSALS_SOURCE)[0],
        _changed(pid, "approved", "piloting", "start_pilot", now),
    ]
    for k in range(3):
        out.append(
            _record(
                types.MEASUREMENT_RECORDED,
                MeasurementRecorded(
                    proposal_id=pid,
                    measurement_id=str(uuid.uuid4()),
                    kpi=KPI,
                    value=10 * (k + 1),
                    measured_at=now,
                    source=SENSOR_SOURCE,
                ),
                pid,
                PROPOSALS_SOURCE,
            )[0]
        )
    if rng.random() >= 0.5:
        return out
    out += [
        _record(
            types.PILOT_COMPLETED,
            PilotCompleted(
                proposal_id=pid,
                outcome=PilotOutcome.scale_up,
                actual_kpis=[KpiActual(name=KPI, actual=120)],
                lessons_learned="Riders came when the shuttle met every train.",
                completed_at=now,
            ),
            pid,
            PROPOSALS_SOURCE,
        )[0],
        _changed(pid, "piloting", "completed", "complete_pilot", now, "scale_up"),
    ]
    return out


def workflow_stream(topics: set[str], n: int, seed: int = 1) -> list[Record]:
    """N events of whole histories (the last one cut short) on the given logical topics."""
    rng = random.Random(seed)
    out: list[Record] = []
    i = 0
    while len(out) < n:
        out.extend(r for r in history(rng, i) if r.topic in topics)
        i += 1
    return out[:n]


def approval(pid: str) -> list[Record]:
    """What evaluation publishes when a proposal passes screening and its panel approves it."""
    now = datetime.now(UTC)
    return [
        _record(
            types.SCREENING_COMPLETED,
            ScreeningCompleted(proposal_id=pid, passed=True, screened_at=now),
            pid,
            EVALUATION_SOURCE,
        )[0],
        _record(
            types.EVALUATION_DECIDED,
            EvaluationDecided(
                proposal_id=pid,
                decision=Decision.approved,
                weighted_score=4.0,
                threshold=3.0,
                criterion_averages={"impact": 4.0},
                rationale="Approved for the benchmark.",
                decided_at=now,
            ),
            pid,
            EVALUATION_SOURCE,
        )[0],
    ]


# -- intake ---------------------------------------------------------------------------------


def intake_proposal(rng: random.Random, i: int) -> Record:
    event_id = f"portal-{uuid.uuid4()}"
    record, _ = _record(types.INTAKE_PROPOSAL, submission(rng, i), event_id, INTAKE_SOURCE)
    return record


def intake_measurement(proposal_id: str, value: float) -> Record:
    record, _ = _record(
        types.INTAKE_MEASUREMENT,
        IntakeMeasurement(proposal_id=proposal_id, kpi=KPI, value=value, measured_at=datetime.now(UTC)),
        proposal_id,
        SENSOR_SOURCE,
    )
    return record


def intake_stream(n: int, pilots: list[str], measurement_share: float, seed: int = 2) -> list[Record]:
    """N intake events: `measurement_share` of them measurements for the running `pilots`
    (round robin), the rest intake.proposal submissions with distinct titles."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if pilots and rng.random() < measurement_share:
            out.append(intake_measurement(pilots[i % len(pilots)], float(i % 500)))
        else:
            out.append(intake_proposal(rng, i))
    return out


def mix(records: list[Record]) -> dict[str, int]:
    return dict(Counter(r.type for r in records).most_common())
