"""How proposals look over HTTP: responses, request bodies, list query, and how the domain's
refusals are answered (ERRORS, read by the `api` entrypoint)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from kokeilu.contracts.bounds import LongText, Measure, Name, Reason
from kokeilu.contracts.evaluation import Decision, RuleFailure
from kokeilu.contracts.proposals import (
    MAX_KPIS,
    Environment,
    FocusArea,
    KpiActual,
    PilotOutcome,
    ProposalStatus,
    Submission,
)
from kokeilu.contracts.proposals import SUBMISSION_EXAMPLE as SUBMISSION_EXAMPLE  # re-exported
from kokeilu.http.entrypoint import Refusal

from .domain import IllegalTransition, MeasurementRefused, Proposal, UnknownProposal, pilot_json


def proposal_json(p: Proposal) -> dict[str, Any]:
    body = p.submission.model_dump(mode="json")
    body.update(
        id=p.id,
        status=p.status.value,
        submitted_at=p.submitted_at.isoformat(),
        updated_at=p.updated_at.isoformat(),
        source=p.source,
        revision=p.revision,
        allowed_actions=p.allowed_actions(),
        screening_failures=[f.model_dump(mode="json") for f in p.screening_failures],
        decision=None
        if p.decision is None
        else {
            "decision": p.decision.decision.value,
            "weighted_score": p.decision.weighted_score,
            "rationale": p.decision.rationale,
            "decided_at": p.decision.decided_at.isoformat(),
            "external_funding_recommended": p.decision.external_funding_recommended,
        },
        pilot=pilot_json(p.pilot),
        withdrawn_reason=p.withdrawn_reason,
    )
    return body


def measurement_json(m: Mapping[str, object]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in m.items()}


class ListQuery(BaseModel):
    model_config = {"extra": "forbid"}

    status: ProposalStatus | None = None
    focus_area: FocusArea | None = None
    environment: Environment | None = None
    submitted_from: AwareDatetime | None = None
    submitted_to: AwareDatetime | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=64)

    def filters(self) -> dict[str, Any]:
        return dict(
            focus_area=self.focus_area and self.focus_area.value,
            environment=self.environment and self.environment.value,
            submitted_from=self.submitted_from,
            submitted_to=self.submitted_to,
        )


class Body(BaseModel):
    model_config = {"extra": "forbid", "allow_inf_nan": False}


class WithdrawBody(Body):
    reason: Reason | None = None


class StartPilotBody(Body):
    planned_end: AwareDatetime | None = None


class MeasurementBody(Body):
    kpi: Name
    value: Measure
    measured_at: AwareDatetime


class CompletePilotBody(Body):
    outcome: PilotOutcome
    actual_kpis: list[KpiActual] = Field(default_factory=list, max_length=MAX_KPIS)
    lessons_learned: LongText = Field(min_length=1)


# Responses: what proposal_json and measurement_json write (described in the OpenAPI document;
# tests check the answers against it).
class View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecisionView(View):
    decision: Decision
    weighted_score: float
    rationale: str
    decided_at: datetime
    external_funding_recommended: bool


class PilotView(View):
    started_at: datetime
    planned_end: datetime | None
    outcome: PilotOutcome | None
    actual_kpis: list[KpiActual]
    lessons_learned: str | None
    completed_at: datetime | None


class ProposalView(Submission):
    """A proposal: its submission (contact details included) and where it stands."""

    model_config = ConfigDict(title="Proposal")

    id: str
    status: ProposalStatus
    submitted_at: datetime
    updated_at: datetime
    source: str = Field(description="`http`, or the CloudEvents source of the intake event")
    revision: int
    allowed_actions: list[str] = Field(description="What may be done next (e.g. `withdraw`, `start_pilot`).")
    screening_failures: list[RuleFailure]
    decision: DecisionView | None
    pilot: PilotView | None
    withdrawn_reason: str | None


class ProposalPage(View):
    items: list[ProposalView] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page; null on the last one.")


class MeasurementView(View):
    model_config = ConfigDict(title="Measurement")
    id: str
    proposal_id: str
    kpi: str
    value: float
    measured_at: datetime
    source: str
    recorded_at: datetime


class MeasurementList(View):
    items: list[MeasurementView] = Field(description="In order of measured_at.")


# Request body examples for the OpenAPI document (a unit test checks each fits its model).
WITHDRAW_EXAMPLE = {"reason": "The consortium dissolved."}
START_PILOT_EXAMPLE = {"planned_end": "2026-06-30T00:00:00Z"}
MEASUREMENT_EXAMPLE = {"kpi": "daily riders", "value": 140.5, "measured_at": "2026-03-01T09:30:00Z"}
COMPLETE_PILOT_EXAMPLE = {
    "outcome": "scale_up",
    "actual_kpis": [{"name": "daily riders", "actual": 230}],
    "lessons_learned": "Residents used the shuttle at peak hours.",
}


# The domain's refusals: 404 unknown, 409 illegal transition (with where the proposal stands), 422 refused measurement.
ERRORS = {
    UnknownProposal: Refusal(404, "not_found", fields={"proposal_id": "unknown"}),
    IllegalTransition: Refusal(
        409,
        "illegal_transition",
        extra=lambda exc: {"current_status": exc.status.value, "allowed_actions": exc.allowed},
    ),
    MeasurementRefused: Refusal(422, "validation_failed", fields=lambda exc: {"kpi": str(exc)}),
}
