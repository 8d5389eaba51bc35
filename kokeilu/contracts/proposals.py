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
    """The lifecycle: submitted -> screening -> screening_failed | in_evaluation ->
    approved | rejected | revision_requested -> piloting -> completed; withdrawn from any open
    state; a revision_requested proposal is revised and goes back to screening."""

    submitted = "submitted"
    screening = "screening"
    screening_failed = "screening_failed"
    in_evaluation = "in_evaluation"
    approved = "approved"
    rejected = "rejected"
    revision_requested = "revision_requested"
    piloting = "piloting"
    completed = "completed"
    withdrawn = "withdrawn"


class PilotOutcome(str, Enum):
    scale_up = "scale_up"
    iterate = "iterate"
    stop = "stop"


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
    school_name: str | None = Field(default=None, max_length=200, description="The named school, when environment is school.")


class ProposalContent(Frozen):
    """What other services know of a proposal's content: the submission without contact details."""

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
    school_name: str | None = None


class ProposalSubmitted(ProposalContent):
    """`fi.espoo.kokeilu.proposal.submitted`: a proposal entered the programme."""

    submitted_at: datetime
    revision: int = 1


class ProposalRevised(ProposalContent):
    """`fi.espoo.kokeilu.proposal.revised`: a new revision of a proposal; it goes back to screening.
    Carries the whole revised content (as proposal.submitted does), never contact details."""

    revision: int
    revised_at: datetime


class PilotStarted(Frozen):
    """`fi.espoo.kokeilu.pilot.started`: an approved proposal's pilot began."""

    proposal_id: str
    started_at: datetime
    planned_end: datetime | None = None


class MeasurementRecorded(Frozen):
    """`fi.espoo.kokeilu.pilot.measurement-recorded`: one KPI measurement of a piloting proposal."""

    proposal_id: str
    measurement_id: str
    kpi: str
    value: float
    measured_at: datetime
    source: str


class KpiActual(Frozen):
    name: str = Field(min_length=1, max_length=200)
    actual: float


class PilotCompleted(Frozen):
    """`fi.espoo.kokeilu.pilot.completed`: the pilot ended with an outcome, actual KPI values and lessons."""

    proposal_id: str
    outcome: PilotOutcome
    actual_kpis: list[KpiActual] = Field(default_factory=list)
    lessons_learned: str
    completed_at: datetime


class IntakeMeasurement(Frozen):
    """Data of `fi.espoo.kokeilu.intake.measurement`: a KPI measurement from a sensor platform or school system."""

    proposal_id: str = Field(min_length=1, max_length=64)
    kpi: str = Field(min_length=1, max_length=200)
    value: float
    measured_at: datetime


class IntakeRejected(Frozen):
    """`fi.espoo.kokeilu.proposal.intake-rejected`: tells a source system why its intake event was refused.
    Keyed and `subject`ed by the intake event's id, so a system can follow its own submissions."""

    intake_source: str
    intake_id: str
    intake_type: str | None = None
    reason: str
    rejected_at: datetime


class ProposalStatusChanged(Frozen):
    """`fi.espoo.kokeilu.proposal.status-changed`: a proposal moved from one state to another."""

    proposal_id: str
    from_status: ProposalStatus
    to_status: ProposalStatus
    action: str | None = None
    reason: str | None = None
    changed_at: datetime


class ProposalContact(Frozen):
    """`fi.espoo.kokeilu.proposal.contact-recorded`: INTERNAL, personal data. The proposer's address,
    so that notifications can tell them about their own proposal. Published by the proposals service
    just before proposal.submitted (same key, so it arrives first); only notifications reads it, and it
    never reaches a public topic. proposal.submitted itself stays free of contact details."""

    proposal_id: str
    contact_email: str = Field(pattern=EMAIL_PATTERN, max_length=254)
    language: Language
    recorded_at: datetime
