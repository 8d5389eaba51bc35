"""The proposal: what a company, school or resident submits, and the events about it."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import Field

from .bounds import Id, LongText, Measure, Name, Reason, text
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
MAX_KPIS = 30
MAX_PARTNERS = 50


class Proposer(Frozen):
    organisation: Name
    kind: ProposerKind
    contact_email: text(254) = Field(pattern=EMAIL_PATTERN)


class PublicProposer(Frozen):
    """The proposer as other services see it: no contact details."""

    organisation: Name
    kind: ProposerKind


class Kpi(Frozen):
    name: Name
    unit: text(50, 1)
    baseline: Measure
    target: Measure


class Submission(Frozen):
    """A proposal as submitted over HTTP or in an intake event.

    Hypothesis and KPIs may be left out of a draft-quality submission: it is accepted and
    stored, and screening then fails it for completeness, saying what is missing.
    """

    title: text(200, 3)
    summary: text(5000, 10)
    focus_area: FocusArea
    environment: Environment
    proposer: Proposer
    hypothesis: text(5000) | None = None
    kpis: list[Kpi] = Field(default_factory=list, max_length=MAX_KPIS)
    budget_eur: float = Field(ge=0, le=100_000_000)
    duration_weeks: int = Field(ge=1, le=520)
    partners: list[Name] = Field(default_factory=list, max_length=MAX_PARTNERS)
    external_funding_sought: bool = False
    language: Language = Language.fi
    school_name: Name | None = Field(default=None, description="The named school, when environment is school.")


# A complete, valid submission: the OpenAPI document's example, and the tests' starting point.
SUBMISSION_EXAMPLE = {
    "title": "Autonomous shuttle feeder for Kera station",
    "summary": "A six-month shuttle pilot between Kera station and the new housing blocks.",
    "focus_area": "smart_mobility",
    "environment": "kera",
    "proposer": {"organisation": "Example Mobility Oy", "kind": "company", "contact_email": "pilot@example.com"},
    "hypothesis": "A feeder shuttle raises rail use among new residents.",
    "kpis": [{"name": "daily riders", "unit": "riders/day", "baseline": 0, "target": 200}],
    "budget_eur": 45000,
    "duration_weeks": 26,
    "partners": ["Kera school"],
    "language": "en",
}


class ProposalContent(Frozen):
    """What other services know of a proposal's content: the submission without contact details."""

    proposal_id: Id
    title: text(200, 1)
    summary: text(5000)
    focus_area: FocusArea
    environment: Environment
    proposer: PublicProposer
    hypothesis: text(5000) | None = None
    kpis: list[Kpi] = Field(default_factory=list, max_length=MAX_KPIS)
    budget_eur: float = Field(ge=0, le=100_000_000)
    duration_weeks: int = Field(ge=1, le=520)
    partners: list[Name] = Field(default_factory=list, max_length=MAX_PARTNERS)
    external_funding_sought: bool = False
    language: Language
    school_name: Name | None = None


class ProposalSubmitted(ProposalContent):
    """`fi.espoo.kokeilu.proposal.submitted`: a proposal entered the programme."""

    submitted_at: datetime
    revision: int = Field(default=1, ge=1, le=1_000_000)


class ProposalRevised(ProposalContent):
    """`fi.espoo.kokeilu.proposal.revised`: a new revision of a proposal; it goes back to screening.
    Carries the whole revised content (as proposal.submitted does), never contact details."""

    revision: int = Field(ge=1, le=1_000_000)
    revised_at: datetime


class PilotStarted(Frozen):
    """`fi.espoo.kokeilu.pilot.started`: an approved proposal's pilot began."""

    proposal_id: Id
    started_at: datetime
    planned_end: datetime | None = None


class MeasurementRecorded(Frozen):
    """`fi.espoo.kokeilu.pilot.measurement-recorded`: one KPI measurement of a piloting proposal."""

    proposal_id: Id
    measurement_id: Id
    kpi: Name
    value: Measure
    measured_at: datetime
    source: text(600, 1)


class KpiActual(Frozen):
    name: Name
    actual: Measure


class PilotCompleted(Frozen):
    """`fi.espoo.kokeilu.pilot.completed`: the pilot ended with an outcome, actual KPI values and lessons."""

    proposal_id: Id
    outcome: PilotOutcome
    actual_kpis: list[KpiActual] = Field(default_factory=list, max_length=MAX_KPIS)
    lessons_learned: LongText
    completed_at: datetime


class IntakeMeasurement(Frozen):
    """Data of `fi.espoo.kokeilu.intake.measurement`: a KPI measurement from a sensor platform or school system."""

    proposal_id: Id
    kpi: Name
    value: Measure
    measured_at: datetime


class IntakeRejected(Frozen):
    """`fi.espoo.kokeilu.proposal.intake-rejected`: tells a source system why its intake event was refused.
    Keyed and `subject`ed by the intake event's id, so a system can follow its own submissions."""

    intake_source: text(500)
    intake_id: text(200)
    intake_type: text(200) | None = None
    reason: Reason
    rejected_at: datetime


class ProposalStatusChanged(Frozen):
    """`fi.espoo.kokeilu.proposal.status-changed`: a proposal moved from one state to another."""

    proposal_id: Id
    from_status: ProposalStatus
    to_status: ProposalStatus
    action: text(64) | None = None
    reason: Reason | None = None
    changed_at: datetime


class ProposalContact(Frozen):
    """`fi.espoo.kokeilu.proposal.contact-recorded`: INTERNAL, personal data. The proposer's address,
    so that notifications can tell them about their own proposal. Published by the proposals service
    just before proposal.submitted (same key, so it arrives first); only notifications reads it, and it
    never reaches a public topic. proposal.submitted itself stays free of contact details."""

    proposal_id: Id
    contact_email: text(254) = Field(pattern=EMAIL_PATTERN)
    language: Language
    recorded_at: datetime
