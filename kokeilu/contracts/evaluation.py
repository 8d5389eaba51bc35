"""Events the evaluation service publishes."""
from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import Field

from .envelope import Frozen


class RuleFailure(Frozen):
    rule: str
    reason: str


class ScreeningCompleted(Frozen):
    """`fi.espoo.kokeilu.screening.completed`: the proposal passed screening, or names every failed rule."""

    proposal_id: str
    passed: bool
    failed_rules: list[RuleFailure] = Field(default_factory=list)
    screened_at: datetime
    # Lets a consumer filter by area without having seen proposal.submitted first (another topic).
    focus_area: str | None = None


class Decision(str, Enum):
    approved = "approved"
    rejected = "rejected"
    revision_requested = "revision_requested"


class EvaluationOpened(Frozen):
    """`fi.espoo.kokeilu.evaluation.opened`: a proposal that passed screening has its panel."""

    proposal_id: str
    focus_area: str
    evaluators: list[str]
    opened_at: datetime
    due_at: datetime


class EvaluationDecided(Frozen):
    """`fi.espoo.kokeilu.evaluation.decided`: the panel's decision at quorum.

    `rationale` is public (it is shown in the results catalogue); evaluator names are not in it.
    """

    proposal_id: str
    decision: Decision
    weighted_score: float
    threshold: float
    criterion_averages: dict[str, float]
    rationale: str
    disagreement: bool = False
    external_funding_recommended: bool = False
    decided_at: datetime
    focus_area: str | None = None


class EvaluationOverdue(Frozen):
    """`fi.espoo.kokeilu.evaluation.overdue`: an evaluation stayed open past its SLA (emitted once)."""

    proposal_id: str
    opened_at: datetime
    due_at: datetime
    sla_hours: float
