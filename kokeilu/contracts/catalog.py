"""The catalogue of event types: which model is the `data` of which type, on which topic.

This is the one place that ties a type name to its schema; validation, schema generation and
the AsyncAPI document all read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from . import topics
from .envelope import TYPE_PREFIX, CloudEvent, InvalidEvent, describe_validation_error
from .evaluation import EvaluationDecided, EvaluationOpened, EvaluationOverdue, ScreeningCompleted
from .notifications import DeliveryOutcome
from .proposals import (
    IntakeMeasurement,
    IntakeRejected,
    MeasurementRecorded,
    PilotCompleted,
    PilotStarted,
    ProposalContact,
    ProposalRevised,
    ProposalStatusChanged,
    ProposalSubmitted,
    Submission,
)
from .results import Result, ResultWithdrawn


@dataclass(frozen=True)
class EventType:
    name: str  # full CloudEvents type
    topic: str
    model: type[BaseModel]
    version: int = 1
    summary: str = ""
    # What the event's `subject` is; for the platform's own events it is also the record key.
    subject: str = "The proposal id."

    @property
    def short(self) -> str:
        return self.name.removeprefix(TYPE_PREFIX)

    @property
    def dataschema(self) -> str:
        return f"urn:kokeilu:schema:{self.name}:v{self.version}"


INTAKE_PROPOSAL = EventType(
    TYPE_PREFIX + "intake.proposal",
    topics.INTAKE,
    Submission,
    summary="A city system submits a proposal.",
    subject="Optional, chosen by the sending system (the platform assigns the proposal id).",
)
PROPOSAL_SUBMITTED = EventType(
    TYPE_PREFIX + "proposal.submitted", topics.PROPOSALS, ProposalSubmitted, summary="A proposal entered the programme."
)
PROPOSAL_STATUS_CHANGED = EventType(
    TYPE_PREFIX + "proposal.status-changed",
    topics.PROPOSALS,
    ProposalStatusChanged,
    summary="A proposal changed state.",
)
SCREENING_COMPLETED = EventType(
    TYPE_PREFIX + "screening.completed",
    topics.EVALUATIONS,
    ScreeningCompleted,
    summary="Screening passed, or failed naming every failed rule.",
)
RESULT_ID = "The result id (the id of the proposal the result comes from)."
RESULT_PUBLISHED = EventType(
    TYPE_PREFIX + "result.published",
    topics.RESULTS,
    Result,
    summary="A pilot entered the public results catalogue.",
    subject=RESULT_ID,
)
# -- the experiment workflow -----------------------------------------------------------------
INTAKE_MEASUREMENT = EventType(
    TYPE_PREFIX + "intake.measurement",
    topics.INTAKE,
    IntakeMeasurement,
    summary="A sensor platform or school system reports a KPI measurement.",
    subject="Optional, chosen by the sending system; the proposal id is recommended.",
)
PROPOSAL_INTAKE_REJECTED = EventType(
    TYPE_PREFIX + "proposal.intake-rejected",
    topics.PROPOSALS,
    IntakeRejected,
    summary="An intake event was refused; says why, keyed by the intake event id.",
    subject="The `id` of the refused intake event.",
)
PROPOSAL_REVISED = EventType(
    TYPE_PREFIX + "proposal.revised",
    topics.PROPOSALS,
    ProposalRevised,
    summary="A proposal was revised and goes back to screening.",
)
PILOT_STARTED = EventType(
    TYPE_PREFIX + "pilot.started", topics.PROPOSALS, PilotStarted, summary="An approved proposal's pilot started."
)
MEASUREMENT_RECORDED = EventType(
    TYPE_PREFIX + "pilot.measurement-recorded",
    topics.PROPOSALS,
    MeasurementRecorded,
    summary="A KPI measurement was recorded for a piloting proposal.",
)
PILOT_COMPLETED = EventType(
    TYPE_PREFIX + "pilot.completed",
    topics.PROPOSALS,
    PilotCompleted,
    summary="A pilot ended with an outcome, actual KPI values and lessons learned.",
)
EVALUATION_OPENED = EventType(
    TYPE_PREFIX + "evaluation.opened", topics.EVALUATIONS, EvaluationOpened, summary="An evaluation panel was assigned."
)
EVALUATION_DECIDED = EventType(
    TYPE_PREFIX + "evaluation.decided",
    topics.EVALUATIONS,
    EvaluationDecided,
    summary="The panel decided: approved, rejected or revision requested.",
)
EVALUATION_OVERDUE = EventType(
    TYPE_PREFIX + "evaluation.overdue",
    topics.EVALUATIONS,
    EvaluationOverdue,
    summary="An evaluation stayed open past its SLA.",
)
PROPOSAL_CONTACT_RECORDED = EventType(
    TYPE_PREFIX + "proposal.contact-recorded",
    topics.PROPOSALS,
    ProposalContact,
    summary="Internal, personal data: the proposer's address, for notifications only; never on a public topic.",
)
# -- results ----------------------------------------------------------------------------------
RESULT_UPDATED = EventType(
    TYPE_PREFIX + "result.updated",
    topics.RESULTS,
    Result,
    summary="A result changed (status, decision, KPIs, outcome, lessons).",
    subject=RESULT_ID,
)
RESULT_WITHDRAWN = EventType(
    TYPE_PREFIX + "result.withdrawn",
    topics.RESULTS,
    ResultWithdrawn,
    summary="A result left the catalogue: rejected or withdrawn before its pilot.",
    subject=RESULT_ID,
)
SUBSCRIPTION_ID = (
    "The subscription id; for a notification to a proposal's own proposer (who has no subscription), "
    "`proposer:<proposal id>`."
)
DELIVERY_SUCCEEDED = EventType(
    TYPE_PREFIX + "delivery.succeeded",
    topics.NOTIFICATIONS,
    DeliveryOutcome,
    summary="A notification reached its subscriber.",
    subject=SUBSCRIPTION_ID,
)
DELIVERY_FAILED = EventType(
    TYPE_PREFIX + "delivery.failed",
    topics.NOTIFICATIONS,
    DeliveryOutcome,
    summary="A notification could not be delivered after its last attempt.",
    subject=SUBSCRIPTION_ID,
)

ALL: tuple[EventType, ...] = (
    INTAKE_PROPOSAL,
    INTAKE_MEASUREMENT,
    PROPOSAL_SUBMITTED,
    PROPOSAL_REVISED,
    PROPOSAL_STATUS_CHANGED,
    PROPOSAL_INTAKE_REJECTED,
    PROPOSAL_CONTACT_RECORDED,
    PILOT_STARTED,
    MEASUREMENT_RECORDED,
    PILOT_COMPLETED,
    SCREENING_COMPLETED,
    EVALUATION_OPENED,
    EVALUATION_DECIDED,
    EVALUATION_OVERDUE,
    RESULT_PUBLISHED,
    RESULT_UPDATED,
    RESULT_WITHDRAWN,
    DELIVERY_SUCCEEDED,
    DELIVERY_FAILED,
)
BY_NAME = {t.name: t for t in ALL}


def decode(event: CloudEvent, topic: str | None = None) -> BaseModel:
    """The typed `data` of an event; InvalidEvent when the type is unknown or the data does not fit."""
    event_type = BY_NAME.get(event.type)
    if event_type is None:
        raise InvalidEvent(f"unknown event type {event.type!r}", event)
    if topic is not None and event_type.topic != topic:
        raise InvalidEvent(f"event type {event.type!r} does not belong on topic {topic!r}", event)
    try:
        return event_type.model.model_validate(event.data)
    except ValidationError as exc:
        raise InvalidEvent(f"invalid data for {event.type}: {describe_validation_error(exc)}", event) from None
