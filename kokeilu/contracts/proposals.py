"""The proposal: what a company, school or resident submits, and the events about it."""
from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import Field

from .envelope import Frozen


class FocusArea(str, Enum):
    smart_mobility = "smart_mobility"
    learning = "learning"
    sustainable_development = "sustainable_development"


class Environment(str, Enum):
    west_metro = "west_metro"
    kera = "kera"
    waterfront_walkway = "waterfront_walkway"
    school = "school"
    citywide = "citywide"


class ProposerKind(str, Enum):
    company = "company"
    school = "school"
    resident = "resident"
    research = "research"
    city_unit = "city_unit"


class Language(str, Enum):
    fi = "fi"
    sv = "sv"
    en = "en"


class ProposalStatus(str, Enum):
    submitted = "submitted"
    screening_failed = "screening_failed"
    in_evaluation = "in_evaluation"


EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class Proposer(Frozen):
    organisation: str = Field(min_length=1, max_length=200)
    kind: ProposerKind
    contact_email: str = Field(pattern=EMAIL_PATTERN, max_length=254)


class PublicProposer(Frozen):
    """The proposer as other services see it: no contact details."""

    organisation: str = Field(min_length=1, max_length=200)
    kind: ProposerKind


class Kpi(Frozen):
    name: str = Field(min_length=1, max_length=200)
    unit: str = Field(min_length=1, max_length=50)
    baseline: float
    target: float


class Submission(Frozen):
    """A proposal as submitted over HTTP or in an intake event.

    Hypothesis and KPIs may be left out of a draft-quality submission: it is accepted and
    stored, and screening then fails it for completeness, saying what is missing.
    """

    title: str = Field(min_length=3, max_length=200)
    summary: str = Field(min_length=10, max_length=5000)
    focus_area: FocusArea
    environment: Environment
    proposer: Proposer
    hypothesis: str | None = Field(default=None, max_length=5000)
    kpis: list[Kpi] = Field(default_factory=list, max_length=30)
    budget_eur: float = Field(ge=0, le=100_000_000)
    duration_weeks: int = Field(ge=1, le=520)
    partners: list[str] = Field(default_factory=list, max_length=50)
    external_funding_sought: bool = False
    language: Language = Language.fi


class ProposalSubmitted(Frozen):
    """`fi.espoo.kokeilu.proposal.submitted`: a proposal entered the programme."""

    proposal_id: str
    title: str
    summary: str
    focus_area: FocusArea
    environment: Environment
    proposer: PublicProposer
    hypothesis: str | None = None
    kpis: list[Kpi] = Field(default_factory=list)
    budget_eur: float
    duration_weeks: int
    partners: list[str] = Field(default_factory=list)
    external_funding_sought: bool = False
    language: Language
    submitted_at: datetime


class ProposalStatusChanged(Frozen):
    """`fi.espoo.kokeilu.proposal.status-changed`: a proposal moved from one state to another."""

    proposal_id: str
    from_status: ProposalStatus
    to_status: ProposalStatus
    reason: str | None = None
    changed_at: datetime
