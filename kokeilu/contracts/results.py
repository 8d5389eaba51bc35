"""The public results contract (`kokeilu.results.v1`). No personal data, ever."""
from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import Field

from .envelope import Frozen
from .proposals import Environment, FocusArea, Kpi, ProposerKind

LICENCE = "CC-BY-4.0"


class ResultStatus(str, Enum):
    in_evaluation = "in_evaluation"


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
    kpis: list[Kpi] = Field(default_factory=list)
    status: ResultStatus
    licence: str = LICENCE
    contact_unit: str
    published_at: datetime
    updated_at: datetime
