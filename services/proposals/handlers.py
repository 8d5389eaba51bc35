"""Use cases of the proposals service: message (command or event) first, then the unit of work.

Every change of state and the events that say so happen in one unit of work; what happened is
reported to `figures` after it commits (the service passes its metrics module; by default it
goes nowhere).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from kokeilu.contracts import CloudEvent, new_id, utcnow
from kokeilu.contracts import catalog as types
from kokeilu.contracts.evaluation import EvaluationDecided, ScreeningCompleted
from kokeilu.contracts.proposals import (
    IntakeMeasurement,
    IntakeRejected,
    KpiActual,
    MeasurementRecorded,
    PilotCompleted,
    PilotOutcome,
    PilotStarted,
    ProposalContact,
    ProposalStatusChanged,
    Submission,
)
from kokeilu.errors import PermanentError

from .domain import (
    DECISION_ACTIONS,
    DecisionRecord,
    IllegalTransition,
    Measurement,
    MeasurementRefused,
    Proposal,
    Status,
    UnknownProposal,
)
from .ports import ProposalsUnitOfWork

CONSUMER = "proposals"
# Inbox name of the intake-rejected events: one rejection per intake event (source + id).
REJECTIONS = "proposals.intake-rejections"


class Figures(Protocol):
    """What the use cases report of what happened, after it is committed: the service passes its
    metrics module, which has these functions (a module satisfies this Protocol)."""

    def count_transition(
        self, action: str, to_state: Status, from_state: Status | None = None, seconds_in_state: float | None = None
    ) -> None:
        """A change of state; with `from_state`, how long the proposal had been in it."""
        ...

    def count_intake(self, type_: str, source: str, outcome: str) -> None:
        """An intake event accepted, rejected or seen before (duplicate)."""
        ...

    def observe_time_to_decision(self, decision: str, seconds: float) -> None:
        """From submission (or the latest revision) to the panel's decision."""
        ...


class Uncounted:
    """Figures that count nothing (the default: unit tests of the use cases)."""

    @staticmethod
    def count_transition(
        action: str, to_state: Status, from_state: Status | None = None, seconds_in_state: float | None = None
    ) -> None:
        """A change of state; with `from_state`, how long the proposal had been in it."""

    @staticmethod
    def count_intake(type_: str, source: str, outcome: str) -> None:
        """An intake event accepted, rejected or seen before (duplicate)."""

    @staticmethod
    def observe_time_to_decision(decision: str, seconds: float) -> None:
        """From submission (or the latest revision) to the panel's decision."""


UNCOUNTED: Figures = Uncounted()


# A change of state as `_count` reports it: the action, the new state, the state left and the
# seconds spent in it.
Move = tuple[str, Status, Status, float]


class IntakeRefused(PermanentError):
    """An intake event that can never be applied; it is dead-lettered and the source is told why."""


def _changed(
    uow: ProposalsUnitOfWork,
    before: Proposal,
    after: Proposal,
    action: str,
    cause: CloudEvent | None = None,
    reason: str | None = None,
) -> Move:
    """The change event; returns what `_count` needs: the action, the new state, the state left
    and the seconds spent in it (a proposal's `updated_at` moves only when its state does)."""
    uow.emit(
        types.PROPOSAL_STATUS_CHANGED,
        ProposalStatusChanged(
            proposal_id=after.id,
            from_status=before.status,
            to_status=after.status,
            action=action,
            reason=reason,
            changed_at=after.updated_at,
        ),
        after.id,
        cause,
    )
    return action, after.status, before.status, (after.updated_at - before.updated_at).total_seconds()


def _count(figures: Figures, *moves: Move) -> None:
    for action, status, left, seconds in moves:
        figures.count_transition(action, status, left, seconds)


def _load(uow: ProposalsUnitOfWork, proposal_id: str, acting: bool = True) -> Proposal:
    """The proposal; when `acting` on it (a request, not a query), what follows joins its flow."""
    proposal = uow.proposals.get(proposal_id)
    if proposal is None:
        raise UnknownProposal(f"no proposal {proposal_id}")
    if acting:
        uow.join_flow(proposal_id)
    return proposal


# submission ----------------------------------------------------------------------------------
def _record_contact(uow: ProposalsUnitOfWork, proposal: Proposal, now: datetime, cause: CloudEvent | None) -> None:
    """The proposer's address, for notifications only (internal topic), just before the
    submission or revision event with the same key, so that it is known when those arrive."""
    s = proposal.submission
    uow.emit(
        types.PROPOSAL_CONTACT_RECORDED,
        ProposalContact(
            proposal_id=proposal.id, contact_email=s.proposer.contact_email, language=s.language, recorded_at=now
        ),
        proposal.id,
        cause,
    )


def _enter(
    uow: ProposalsUnitOfWork, submission: Submission, source: str, cause: CloudEvent | None
) -> tuple[Proposal, Move]:
    """A new proposal is submitted and goes to screening in the same transaction."""
    proposal_id = new_id()
    uow.remember_flow(proposal_id)  # the submission's flow is the proposal's from now on
    screening, move = _entered(uow, proposal_id, submission, source, cause)
    uow.proposals.add(screening)
    return screening, move


def _entered(
    uow: ProposalsUnitOfWork, proposal_id: str, submission: Submission, source: str, cause: CloudEvent | None
) -> tuple[Proposal, Move]:
    """_enter's proposal in screening (for the caller to store, alone or with others of a run)
    and its events: its flow is remembered already."""
    now = utcnow()
    submitted = Proposal.submit(proposal_id, submission, now, source)
    screening = submitted.start_screening(now)
    _record_contact(uow, submitted, now, cause)
    uow.emit(types.PROPOSAL_SUBMITTED, submitted.submitted_event(), submitted.id, cause)
    return screening, _changed(uow, submitted, screening, "start_screening", cause)


def submit_proposal(
    submission: Submission,
    uow: ProposalsUnitOfWork,
    source: str = "http",
    cause: CloudEvent | None = None,
    figures: Figures = UNCOUNTED,
) -> Proposal:
    with uow:
        proposal, move = _enter(uow, submission, source, cause)
        uow.commit()
    _count(figures, move)
    return proposal


def on_intake(event: CloudEvent, submission: Submission, uow: ProposalsUnitOfWork, figures: Figures = UNCOUNTED) -> str:
    """`intake.proposal` from a city system; idempotent on the event's source + id."""
    with uow:
        if not uow.first_time(CONSUMER, event):
            figures.count_intake(event.type, event.source, "duplicate")
            return "duplicate"
        _, move = _enter(uow, submission, event.source, event)
        uow.commit()
    _count(figures, move)
    figures.count_intake(event.type, event.source, "accepted")
    return "applied"


def revise(
    proposal_id: str, submission: Submission, uow: ProposalsUnitOfWork, figures: Figures = UNCOUNTED
) -> Proposal:
    with uow:
        before = _load(uow, proposal_id)
        after = before.revise(submission, utcnow())
        uow.proposals.save(after)
        _record_contact(uow, after, after.updated_at, None)
        uow.emit(types.PROPOSAL_REVISED, after.revised_event(), after.id)
        move = _changed(uow, before, after, "revise", reason=f"revision {after.revision}")
        uow.commit()
    _count(figures, move)
    return after


def withdraw(proposal_id: str, reason: str | None, uow: ProposalsUnitOfWork, figures: Figures = UNCOUNTED) -> Proposal:
    with uow:
        before = _load(uow, proposal_id)
        after = before.withdraw(reason, utcnow())
        uow.proposals.save(after)
        move = _changed(uow, before, after, "withdraw", reason=reason)
        uow.commit()
    _count(figures, move)
    return after


# evaluation's events -------------------------------------------------------------------------
class UnknownProposalOutcome(PermanentError):
    """An outcome of evaluation about a proposal this service does not have: dead-lettered."""


def _screened(proposal: Proposal, data: ScreeningCompleted) -> tuple[Proposal, str, str | None]:
    reason = None if data.passed else "; ".join(f"{f.rule}: {f.reason}" for f in data.failed_rules)
    return (
        proposal.record_screening(data.passed, list(data.failed_rules), utcnow()),
        "pass_screening" if data.passed else "fail_screening",
        reason,
    )


def _decided(proposal: Proposal, data: EvaluationDecided) -> tuple[Proposal, str, str | None]:
    record = DecisionRecord(
        data.decision, data.weighted_score, data.rationale, data.external_funding_recommended, data.decided_at
    )
    return proposal.record_decision(record, utcnow()), DECISION_ACTIONS[record.decision], data.rationale


def on_evaluation_run(
    items: Sequence[tuple[CloudEvent, BaseModel]], uow: ProposalsUnitOfWork, figures: Figures = UNCOUNTED
) -> list[str | Exception]:
    """A run of evaluation's outcomes (`screening.completed`, `evaluation.decided`) applied at
    once, record by record and in the order given: the workflow consumer's bulk method, which
    the single-event handlers call with one. Each moves its proposal and says so (an outcome
    that crossed a withdrawal changes nothing: "ignored"); one read of the inbox and of the
    proposals, one write of the inbox and of the proposals moved, for the whole run. For each
    item: its outcome, or the refusal the consumer dead-letters it with (an outcome about an
    unknown proposal, or one its proposal's state does not allow: IllegalTransition; a refusal
    is not recorded as applied, so its twin later in the run is applied afresh). Figures are
    counted once it has committed."""
    with uow:
        fresh = uow.first_times(CONSUMER, [event for event, _ in items])
        proposals = uow.proposals.get_many(
            getattr(data, "proposal_id", "") for (_, data), new in zip(items, fresh, strict=True) if new
        )
        results: list[str | Exception] = []
        applied: list[CloudEvent] = []
        moved: dict[str, Proposal] = {}
        moves: list[Move] = []
        decisions: list[tuple[str, float]] = []
        # Events refused earlier in the run and not applied since: a twin of one is applied
        # afresh (the run may have moved its proposal meanwhile), as it would be one by one.
        refused: set[tuple[str, str]] = set()
        for (event, data), new in zip(items, fresh, strict=True):
            key = (event.source, event.id)
            if not new and key not in refused:
                results.append("duplicate")
                continue
            refused.discard(key)
            if not isinstance(data, (ScreeningCompleted, EvaluationDecided)):
                raise TypeError(f"{event.type} is not an outcome of evaluation")
            what = "screening" if isinstance(data, ScreeningCompleted) else "decision"
            proposal = proposals.get(data.proposal_id)
            if proposal is None:
                refused.add(key)
                results.append(UnknownProposalOutcome(f"{what} for unknown proposal {data.proposal_id}"))
                continue
            if proposal.status is Status.withdrawn:
                applied.append(event)
                results.append("ignored")
                continue
            try:
                after, action, reason = (
                    _screened(proposal, data) if isinstance(data, ScreeningCompleted) else _decided(proposal, data)
                )
            except IllegalTransition as exc:  # an outcome the proposal's state does not allow
                refused.add(key)
                results.append(exc)
                continue
            applied.append(event)
            moves.append(_changed(uow, proposal, after, action, event, reason))
            proposals[after.id] = moved[after.id] = after
            if isinstance(data, EvaluationDecided):
                decisions.append((data.decision.value, (data.decided_at - proposal.submitted_at).total_seconds()))
            results.append("applied")
        uow.applied(CONSUMER, applied)
        uow.proposals.save_many(moved.values())
        uow.commit()
    _count(figures, *moves)
    for decision, seconds in decisions:
        figures.observe_time_to_decision(decision, seconds)
    return results


def _one(result: str | Exception) -> str:
    if isinstance(result, Exception):
        raise result
    return result


def on_screening_completed(
    event: CloudEvent, data: ScreeningCompleted, uow: ProposalsUnitOfWork, figures: Figures = UNCOUNTED
) -> str:
    return _one(on_evaluation_run([(event, data)], uow, figures)[0])


def on_evaluation_decided(
    event: CloudEvent, data: EvaluationDecided, uow: ProposalsUnitOfWork, figures: Figures = UNCOUNTED
) -> str:
    return _one(on_evaluation_run([(event, data)], uow, figures)[0])


# pilots --------------------------------------------------------------------------------------
def start_pilot(
    proposal_id: str, planned_end: datetime | None, uow: ProposalsUnitOfWork, figures: Figures = UNCOUNTED
) -> Proposal:
    with uow:
        before = _load(uow, proposal_id)
        after = before.start_pilot(utcnow(), planned_end)
        assert after.pilot is not None  # a started pilot
        uow.proposals.save(after)
        uow.emit(
            types.PILOT_STARTED,
            PilotStarted(proposal_id=after.id, started_at=after.pilot.started_at, planned_end=planned_end),
            after.id,
        )
        move = _changed(uow, before, after, "start_pilot")
        uow.commit()
    _count(figures, move)
    return after


def _record(
    uow: ProposalsUnitOfWork,
    proposal: Proposal,
    kpi: str,
    value: float,
    measured_at: datetime,
    source: str,
    cause: CloudEvent | None,
) -> Measurement:
    """A measurement of a running pilot and its event; the caller stores the measurement (alone,
    or with others of a run at once)."""
    proposal.accept_measurement(kpi)
    measurement = Measurement(
        id=new_id(),
        proposal_id=proposal.id,
        kpi=kpi,
        value=value,
        measured_at=measured_at,
        source=source,
        recorded_at=utcnow(),
    )
    uow.emit(
        types.MEASUREMENT_RECORDED,
        MeasurementRecorded(
            proposal_id=proposal.id,
            measurement_id=measurement["id"],
            kpi=kpi,
            value=value,
            measured_at=measured_at,
            source=source,
        ),
        proposal.id,
        cause,
    )
    return measurement


def record_measurement(
    proposal_id: str, kpi: str, value: float, measured_at: datetime, source: str, uow: ProposalsUnitOfWork
) -> Measurement:
    with uow:
        measurement = _record(uow, _load(uow, proposal_id), kpi, value, measured_at, source, None)
        uow.measurements.add(measurement)
        uow.commit()
    return measurement


def on_intake_measurement(
    event: CloudEvent, data: IntakeMeasurement, uow: ProposalsUnitOfWork, figures: Figures = UNCOUNTED
) -> str:
    """`intake.measurement`; a measurement that cannot be applied is refused permanently: the
    consumer dead-letters it and `intake_rejected` tells the source why."""
    with uow:
        if not uow.first_time(CONSUMER, event):
            figures.count_intake(event.type, event.source, "duplicate")
            return "duplicate"
        proposal = uow.proposals.get(data.proposal_id)
        if proposal is None:
            raise IntakeRefused(f"unknown proposal {data.proposal_id}")
        uow.join_flow(proposal.id)  # the sensor's event is the cause; the proposal's flow goes on
        uow.measurements.add(_measured(uow, proposal, data.kpi, data.value, data.measured_at, event.source, event))
        uow.commit()
    figures.count_intake(event.type, event.source, "accepted")
    return "applied"


def on_intake_measurements(
    items: Sequence[tuple[CloudEvent, IntakeMeasurement]], uow: ProposalsUnitOfWork, figures: Figures = UNCOUNTED
) -> list[str | IntakeRefused]:
    """A run of `intake.measurement` events applied at once: on_intake_run for measurements."""
    return on_intake_run(items, uow, figures)


def on_intake_run(
    items: Sequence[tuple[CloudEvent, BaseModel]], uow: ProposalsUnitOfWork, figures: Figures = UNCOUNTED
) -> list[str | IntakeRefused]:
    """A run of consecutive intake events (`intake.proposal` and `intake.measurement`) applied at
    once: the intake consumer's bulk method. The same rules and events as on_intake and
    on_intake_measurement, record by record and in the order given, with one read of the inbox
    and of the proposals measured, and one write of the inbox, the flows, the new proposals and
    the measurements for the whole run. For each item, in order: its outcome, or the refusal the
    consumer dead-letters it with (a refused event is not recorded as applied, so it can be
    redriven, and its twin later in the run is refused too). Figures are counted once it has committed, as one by one."""
    with uow:
        events = [event for event, _ in items]
        fresh = uow.first_times(CONSUMER, events)
        # The new proposals' ids, and their flows (each its intake event's), before any event
        # about them is recorded: what _enter does for one.
        entering = {
            i: new_id()
            for i, ((_, data), new) in enumerate(zip(items, fresh, strict=True))
            if new and isinstance(data, Submission)
        }
        uow.remember_flows([(pid, items[i][0]) for i, pid in entering.items()])
        measured = uow.proposals.get_many(
            data.proposal_id
            for (_, data), new in zip(items, fresh, strict=True)
            if new and isinstance(data, IntakeMeasurement)
        )
        uow.join_flows(measured)  # each sensor's event is the cause; its proposal's flow goes on
        results: list[str | IntakeRefused] = []
        applied: list[CloudEvent] = []
        rows: list[Measurement] = []
        entered: list[Proposal] = []
        moves: list[Move] = []
        # Events refused earlier in the run: a twin of one is refused again, not a duplicate
        # (a refusal is not recorded as applied), as it would be applied one by one.
        refused: dict[tuple[str, str], IntakeRefused] = {}
        for i, ((event, data), new) in enumerate(zip(items, fresh, strict=True)):
            if not new:
                twin = refused.get((event.source, event.id))
                results.append("duplicate" if twin is None else IntakeRefused(str(twin)))
                continue
            try:
                if isinstance(data, Submission):
                    proposal, move = _entered(uow, entering[i], data, event.source, event)
                    entered.append(proposal)
                    moves.append(move)
                elif isinstance(data, IntakeMeasurement):
                    pilot = measured.get(data.proposal_id)
                    if pilot is None:
                        raise IntakeRefused(f"unknown proposal {data.proposal_id}")
                    rows.append(_measured(uow, pilot, data.kpi, data.value, data.measured_at, event.source, event))
                else:
                    raise IntakeRefused(f"{event.type} is not an intake event")
            except IntakeRefused as exc:
                refused[event.source, event.id] = exc
                results.append(exc)
                continue
            applied.append(event)
            results.append("applied")
        uow.applied(CONSUMER, applied)
        uow.proposals.add_many(entered)
        uow.measurements.add_many(rows)
        uow.commit()
    _count(figures, *moves)
    for (event, _), result in zip(items, results, strict=True):
        if isinstance(result, str):
            figures.count_intake(event.type, event.source, "accepted" if result == "applied" else result)
    return results


def _measured(
    uow: ProposalsUnitOfWork,
    proposal: Proposal,
    kpi: str,
    value: float,
    measured_at: datetime,
    source: str,
    cause: CloudEvent,
) -> Measurement:
    """_record for intake: the measurement (to store) and its event, or IntakeRefused."""
    try:
        return _record(uow, proposal, kpi, value, measured_at, source, cause)
    except IllegalTransition:
        raise IntakeRefused(
            f"proposal {proposal.id} is {proposal.status.value}, not piloting: "
            "measurements are recorded only for a running pilot"
        ) from None
    except MeasurementRefused as exc:
        raise IntakeRefused(str(exc)) from None


def complete_pilot(
    proposal_id: str,
    outcome: PilotOutcome,
    actual: list[KpiActual],
    lessons: str,
    uow: ProposalsUnitOfWork,
    figures: Figures = UNCOUNTED,
) -> Proposal:
    with uow:
        before = _load(uow, proposal_id)
        after = before.complete_pilot(outcome, actual, lessons, utcnow())
        assert after.pilot is not None and after.pilot.completed_at is not None  # a completed pilot
        uow.proposals.save(after)
        uow.emit(
            types.PILOT_COMPLETED,
            PilotCompleted(
                proposal_id=after.id,
                outcome=outcome,
                actual_kpis=actual,
                lessons_learned=lessons,
                completed_at=after.pilot.completed_at,
            ),
            after.id,
        )
        move = _changed(uow, before, after, "complete_pilot", reason=outcome.value)
        uow.commit()
    _count(figures, move)
    return after


# rejected intake -----------------------------------------------------------------------------
def _intake_identity(raw: bytes | None, event: CloudEvent | None) -> tuple[str, str, str | None] | None:
    """Source, id and type of an intake record, when it parsed far enough to have them."""
    if event is not None:
        return event.source, event.id, event.type
    try:
        body = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    source, event_id, type_ = body.get("source"), body.get("id"), body.get("type")
    if not (isinstance(source, str) and source and isinstance(event_id, (str, int)) and str(event_id)):
        return None
    return source[:500], str(event_id)[:200], type_[:200] if isinstance(type_, str) else None


def intake_rejected(
    raw: bytes | None, event: CloudEvent | None, reason: str, uow: ProposalsUnitOfWork, figures: Figures = UNCOUNTED
) -> None:
    """Called by the intake consumer inside the unit of work that dead-letters a record: tells
    the source system why (once per source + id), when the record says who sent it."""
    identity = _intake_identity(raw, event)
    if identity is None:
        figures.count_intake("unknown", "unknown", "rejected")
        return
    source, intake_id, type_ = identity
    if not uow.first_time_key(REJECTIONS, f"{source[:190]}#{intake_id}", type_ or "unknown"):
        return
    uow.emit(
        types.PROPOSAL_INTAKE_REJECTED,
        IntakeRejected(
            intake_source=source, intake_id=intake_id, intake_type=type_, reason=reason[:2000], rejected_at=utcnow()
        ),
        intake_id,
        event,
    )
    figures.count_intake(type_ or "unknown", source, "rejected")


# queries -------------------------------------------------------------------------------------
def get_proposal(proposal_id: str, uow: ProposalsUnitOfWork) -> Proposal:
    with uow:
        return _load(uow, proposal_id, acting=False)


def list_proposals(
    uow: ProposalsUnitOfWork, status: str | None, limit: int, after: str | None, **filters: Any
) -> list[Proposal]:
    with uow:
        return uow.proposals.list(status=status, limit=limit, after=after, **filters)


def measurements_of(proposal_id: str, uow: ProposalsUnitOfWork) -> list[Measurement]:
    with uow:
        _load(uow, proposal_id, acting=False)
        return uow.measurements.for_proposal(proposal_id)
