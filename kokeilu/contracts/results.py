"""The public results contract (`kokeilu.results.v1`). No personal data, ever."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Self

from pydantic import Field, model_validator

from .bounds import Id, LongText, Measure, Name, Reason, text
from .envelope import Frozen
from .evaluation import Decision
from .proposals import MAX_KPIS, MAX_PARTNERS, Environment, FocusArea, Kpi, Language, PilotOutcome, ProposerKind

LICENCE = "CC-BY-4.0"


class ResultStatus(str, Enum):
    in_evaluation = "in_evaluation"
    planned = "planned"  # approved, pilot not started
    piloting = "piloting"
    completed = "completed"


# At most this many points of a KPI's series go into a published result, and at most MAX_SERIES_TOTAL
# over all its KPIs: a longer pilot's days are merged into periods of several days (each point says its
# first and last day), so that a result stays far under the size a topic carries however long the
# pilot ran and however many KPIs it has.
MAX_SERIES_POINTS = 60
MAX_SERIES_TOTAL = 180


def series_budget(kpis: int) -> int:
    """How many points each of `kpis` KPIs' series may have in a result."""
    return max(1, min(MAX_SERIES_POINTS, MAX_SERIES_TOTAL // max(kpis, 1)))


class KpiPoint(Frozen):
    """The measurements of a KPI over one period (a UTC day, or several merged days): how many
    there were, their mean, minimum and maximum, and the last one measured."""

    start: date
    end: date
    count: int = Field(ge=1)
    mean: Measure
    min: Measure
    max: Measure
    last: Measure


class ResultKpi(Kpi):
    """A KPI with the actual value measured at the end of the pilot (when there is one), and its
    measurements over time (per UTC day; in the public topic's events from the pilot's completion on)."""

    actual: Measure | None = None
    series: list[KpiPoint] | None = Field(default=None, max_length=MAX_SERIES_POINTS)


class Result(Frozen):
    """`fi.espoo.kokeilu.result.published`: a pilot in the results catalogue.

    `organisation` is left out when the proposer is a resident: a resident's name is personal data.
    """

    result_id: Id
    proposal_id: Id
    title: text(200, 1)
    summary: text(5000)
    language: Language | None = Field(default=None, description="The language the proposal is written in.")
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
    decision: Decision | None = Field(default=None, description="The evaluation panel's decision.")
    weighted_score: float | None = Field(default=None, ge=0, le=5)
    criterion_averages: dict[text(64), float] | None = Field(
        default=None, max_length=50, description="The panel's average score (0-5) per rubric criterion."
    )
    school_name: Name | None = None
    budget_eur: float | None = Field(default=None, ge=0, le=100_000_000)
    duration_weeks: int | None = Field(default=None, ge=1, le=520)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    licence: text(64) = LICENCE
    contact_unit: Name
    published_at: datetime
    updated_at: datetime

    @model_validator(mode="after")
    def _series_bounded(self) -> Self:
        if sum(len(k.series or ()) for k in self.kpis) > MAX_SERIES_TOTAL:
            raise ValueError(f"the KPIs' series have more than {MAX_SERIES_TOTAL} points together")
        return self


class ResultWithdrawn(Frozen):
    """`fi.espoo.kokeilu.result.withdrawn`: the proposal was rejected or withdrawn before its pilot."""

    result_id: Id
    proposal_id: Id
    reason: Reason
    withdrawn_at: datetime
