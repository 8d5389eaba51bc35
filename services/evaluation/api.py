"""Evaluation over HTTP: request bodies, responses, and how the domain's refusals are answered
(ERRORS, read by the `api` entrypoint)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from kokeilu.contracts.bounds import Reason, text
from kokeilu.contracts.evaluation import Decision, RuleFailure
from kokeilu.http.entrypoint import ApiRequest, Refusal

from .domain import EvaluationRefused, InvalidScores, NotAssigned, UnknownEvaluation

MANAGE = "evaluation:manage"


class Body(BaseModel):
    model_config = {"extra": "forbid", "allow_inf_nan": False}


class ConflictBody(Body):
    conflict: bool
    reason: Reason | None = None


class ScoresBody(Body):
    # Bounded here; whether each fits the rubric (0 to 5, every criterion) the domain says.
    scores: dict[text(64), Annotated[int, Field(ge=-1000, le=1000)]] = Field(
        max_length=20, description="0 to 5 for each criterion of the rubric"
    )
    comment: text(5000) | None = None


class EvaluationListQuery(BaseModel):
    """`GET /v1/evaluations` query (as the service reads it: `1`, `true` or `yes` mean true, anything else false)."""

    overdue: Literal["true", "false", "1", "0", "yes", "no"] | None = Field(
        default=None, description="Only the evaluations past their SLA."
    )


# Responses: what Evaluation.view writes (described in the OpenAPI document).
class View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssignmentView(View):
    evaluator: str
    recused: bool
    conflict_declared: bool
    conflict: bool | None
    scored: bool
    scores: dict[str, int] | None = Field(description="Hidden (null) until the panel has scored, but one's own.")
    comment: str | None


class EvaluationDecisionView(View):
    decision: Decision
    weighted_score: float
    criterion_averages: dict[str, float]
    disagreement: bool
    external_funding_recommended: bool
    rationale: str
    decided_at: datetime


class EvaluationView(View):
    """An evaluation. Scores stay blind until quorum: before it, an evaluator sees only their own
    sheet and a manager sees who has scored, never the numbers."""

    model_config = ConfigDict(title="Evaluation")

    proposal_id: str
    revision: int
    focus_area: str
    title: str
    status: Literal["open", "decided", "closed"]
    opened_at: datetime
    due_at: datetime
    overdue: bool
    scores_revealed: bool
    criteria: list[str]
    scored: int
    assigned: int
    assignments: list[AssignmentView] | None = Field(
        default=None, description="Only for the panel's evaluators (their own) and managers."
    )
    decision: EvaluationDecisionView | None = Field(default=None, description="Once decided.")


class ScreeningView(View):
    passed: bool
    failed_rules: list[RuleFailure]
    screened_at: datetime
    time_in_screening_seconds: float


class ProposalEvaluationView(View):
    """`GET /v1/evaluations/{proposal_id}`: the proposal's screening and its current evaluation
    (title, focus area, revision and screening are there once it has been screened)."""

    model_config = ConfigDict(title="ProposalEvaluation")

    proposal_id: str
    title: str | None = None
    focus_area: str | None = None
    revision: int | None = None
    screening: ScreeningView | None = None
    evaluation: EvaluationView | None = Field(description="Null until a panel is opened (or when screening failed).")


class Queue(View):
    evaluator: str
    items: list[EvaluationView]


class EvaluationList(View):
    items: list[EvaluationView]


CONFLICT_EXAMPLE = {"conflict": False}
SCORES_EXAMPLE = {
    "scores": {"strategy_fit": 4, "feasibility": 4, "impact": 5, "sustainability": 4, "reuse_scalability": 4},
    "comment": "A clear hypothesis and a realistic budget.",
}


ERRORS = {
    UnknownEvaluation: Refusal(404, "not_found", fields={"proposal_id": "unknown"}),
    NotAssigned: Refusal(403, "not_assigned"),
    EvaluationRefused: Refusal(409, "conflict"),
    InvalidScores: Refusal(
        422, "validation_failed", fields=lambda exc: {f"scores.{k}": v for k, v in exc.fields.items()}
    ),
}


def is_manager(request: ApiRequest) -> bool:
    return request.principal is not None and request.principal.has(MANAGE)
