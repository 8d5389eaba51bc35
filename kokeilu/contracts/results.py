"""The public results contract (`kokeilu.results.v1`). No personal data, ever."""
from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import Field

from .bounds import Id, LongText, Measure, Name, Reason, text
from .envelope import Frozen
from .proposals import MAX_KPIS, MAX_PARTNERS, Environment, FocusArea, Kpi, PilotOutcome, ProposerKind

LICENCE = "CC-BY-4.0"


class ResultStatus(str, Enum):
    in_evaluation = "in_evaluation"
    planned = "planned"  # approved, pilot not started
    piloting = "piloting"
    completed = "completed"


class ResultKpi(Kpi):
    """A KPI with the actual value measured at the end of the pilot (when there is one)."""

    actual: Measure | None = None


class Result(Frozen):
    """`fi.espoo.kokeilu.result.published`: a pilot in the results catalogue.

    `organisation` is left out when the proposer is a resident: a resident's name is personal data.
    """

    result_id: Id
    proposal_id: Id
    title: text(200, 1)
    summary: text(5000)
    focus_area: FocusArea
    environment: Environment
    proposer_kind: ProposerKind
    organisation: Name | None = None
    partners: list[Name] = Field(default_factory=list, max_length=MAX_PARTNERS)
    hypothesis: text(5000) | None = None
    kpis: list[ResultKpi] = Field(default_factory=list, max_length=MAX_KPIS)
    status: ResultStatus
    outcome: PilotOutcome | None = None
    lessons_learned: LongText | None = None
    decision_rationale: LongText | None = None
    school_name: Name | None = None
    budget_eur: float | None = Field(default=None, ge=0, le=100_000_000)
    duration_weeks: int | None = Field(default=None, ge=1, le=520)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    licence: text(64) = LICENCE
    contact_unit: Name
    published_at: datetime
    updated_at: datetime


class ResultWithdrawn(Frozen):
    """`fi.espoo.kokeilu.result.withdrawn`: the proposal was rejected or withdrawn before its pilot."""

    result_id: Id
    proposal_id: Id
    reason: Reason
    withdrawn_at: datetime
