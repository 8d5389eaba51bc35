"""The public results contract (`kokeilu.results.v1`). No personal data, ever."""
from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import Field

from .envelope import Frozen
from .proposals import Environment, FocusArea, Kpi, PilotOutcome, ProposerKind

LICENCE = "CC-BY-4.0"


class ResultStatus(str, Enum):
    in_evaluation = "in_evaluation"
    planned = "planned"  # approved, pilot not started
    piloting = "piloting"
    completed = "completed"


class ResultKpi(Kpi):
    """A KPI with the actual value measured at the end of the pilot (when there is one)."""

    actual: float | None = None


class Result(Frozen):
    """`fi.espoo.kokeilu.result.published`: a pilot in the results catalogue.

    `organisation` is left out when the proposer is a resident: a resident's name is personal data.
    """

    result_id: str
    proposal_id: str
    title: str
    summary: str
    focus_area: FocusArea
    environment: Environment
    proposer_kind: ProposerKind
    organisation: str | None = None
    partners: list[str] = Field(default_factory=list)
    hypothesis: str | None = None
    kpis: list[ResultKpi] = Field(default_factory=list)
    status: ResultStatus
    outcome: PilotOutcome | None = None
    lessons_learned: str | None = None
    decision_rationale: str | None = None
    school_name: str | None = None
    budget_eur: float | None = None
    duration_weeks: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    licence: str = LICENCE
    contact_unit: str
    published_at: datetime
    updated_at: datetime


class ResultWithdrawn(Frozen):
    """`fi.espoo.kokeilu.result.withdrawn`: the proposal was rejected or withdrawn before its pilot."""

    result_id: str
    proposal_id: str
    reason: str
    withdrawn_at: datetime
