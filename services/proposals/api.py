"""How proposals look over HTTP: responses, request bodies, list query, and domain errors as HTTP errors."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, Field

from kokeilu.contracts.bounds import LongText, Measure, Name, Reason
from kokeilu.contracts.proposals import MAX_KPIS, Environment, FocusArea, KpiActual, PilotOutcome, ProposalStatus
from kokeilu.http import Conflict, NotFound, Unprocessable

from .domain import IllegalTransition, MeasurementRefused, Proposal
from .handlers import UnknownProposal
from .store import pilot_json


def proposal_json(p: Proposal) -> dict:
    body = p.submission.model_dump(mode="json")
    body.update(
        id=p.id, status=p.status.value, submitted_at=p.submitted_at.isoformat(),
        updated_at=p.updated_at.isoformat(), source=p.source, revision=p.revision,
        allowed_actions=p.allowed_actions(),
        screening_failures=[f.model_dump(mode="json") for f in p.screening_failures],
        decision=None if p.decision is None else {
            "decision": p.decision.decision.value, "weighted_score": p.decision.weighted_score,
            "rationale": p.decision.rationale, "decided_at": p.decision.decided_at.isoformat(),
            "external_funding_recommended": p.decision.external_funding_recommended},
        pilot=pilot_json(p.pilot), withdrawn_reason=p.withdrawn_reason,
    )
    return body


def measurement_json(m: dict) -> dict:
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

    def filters(self) -> dict:
        return dict(focus_area=self.focus_area and self.focus_area.value,
                    environment=self.environment and self.environment.value,
                    submitted_from=self.submitted_from, submitted_to=self.submitted_to)


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


class IllegalTransitionError(Conflict):
    code = "illegal_transition"


@contextmanager
def domain_errors():
    """The domain's refusals as HTTP errors: 404 unknown, 409 illegal transition, 422 refused measurement."""
    try:
        yield
    except UnknownProposal as exc:
        raise NotFound(str(exc), {"proposal_id": "unknown"}) from None
    except IllegalTransition as exc:
        raise IllegalTransitionError(str(exc), current_status=exc.status.value, allowed_actions=exc.allowed) from None
    except MeasurementRefused as exc:
        raise Unprocessable(str(exc), {"kpi": str(exc)}) from None
