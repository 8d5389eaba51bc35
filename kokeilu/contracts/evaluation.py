"""Events the evaluation service publishes."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import Field

from .bounds import Id, LongText, Name, Reason, text
from .envelope import Frozen


class RuleFailure(Frozen):
    rule: text(64, 1)
    reason: Reason


class ScreeningCompleted(Frozen):
    """`fi.espoo.kokeilu.screening.completed`: the proposal passed screening, or names every failed rule."""

    proposal_id: Id
    passed: bool
    failed_rules: list[RuleFailure] = Field(default_factory=list, max_length=50)
    screened_at: datetime
    # Lets a consumer filter by area without having seen proposal.submitted first (another topic).
    focus_area: text(64) | None = None


class Decision(str, Enum):
    approved = "approved"
    rejected = "rejected"
    revision_requested = "revision_requested"


class EvaluationOpened(Frozen):
    """`fi.espoo.kokeilu.evaluation.opened`: a proposal that passed screening has its panel."""

    proposal_id: Id
    focus_area: text(64)
    evaluators: list[Name] = Field(max_length=50)
    opened_at: datetime
    due_at: datetime


class EvaluationDecided(Frozen):
    """`fi.espoo.kokeilu.evaluation.decided`: the panel's decision at quorum.

    `rationale` is public (it is shown in the results catalogue); evaluator names are not in it.
    """

    proposal_id: Id
    decision: Decision
    weighted_score: float
    threshold: float
    criterion_averages: dict[text(64), float] = Field(max_length=50)
    rationale: LongText
    disagreement: bool = False
    external_funding_recommended: bool = False
    decided_at: datetime
    focus_area: text(64) | None = None


class EvaluationOverdue(Frozen):
    """`fi.espoo.kokeilu.evaluation.overdue`: an evaluation stayed open past its SLA (emitted once)."""

    proposal_id: Id
    opened_at: datetime
    due_at: datetime
    sla_hours: float
