"""The catalogue entry: what departments see of a pilot.

An entry keeps the latest known *facts* about one proposal (its content, screening, decision,
pilot, measurements, completion, closure), each chosen by what the event says (revision number,
domain timestamps), never by the order the events arrived in: they come from two topics and
interleave differently in a live service and in a rebuild. The public Result is a pure function
of those facts (`view`), so a rebuilt catalogue equals the live one; `reconcile` compares the
view with what was last published and says which public event, if any, is due.

No infrastructure here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Literal

from kokeilu.contracts.evaluation import Decision, EvaluationDecided, ScreeningCompleted
from kokeilu.contracts.proposals import (
    MeasurementRecorded,
    PilotCompleted,
    PilotStarted,
    ProposalRevised,
    ProposalStatus,
    ProposalStatusChanged,
    ProposalSubmitted,
    ProposerKind,
)
from kokeilu.contracts.results import MAX_SERIES_POINTS, KpiPoint, Result, ResultKpi, ResultStatus, ResultWithdrawn
from kokeilu.privacy import redact

# A proposal that reaches one of these before its pilot started leaves the catalogue.
CLOSING = {
    ProposalStatus.rejected: "rejected",
    ProposalStatus.withdrawn: "withdrawn",
    ProposalStatus.screening_failed: "screening_failed",
}

Change = Literal["published", "updated", "withdrawn"]

# What an id must look like before it is published (they are UUIDs; anything else is refused).
SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _later(current: datetime | None, new: datetime) -> bool:
    return current is None or new >= current


@dataclass(frozen=True)
class Measurement:
    value: float
    measured_at: datetime
    measurement_id: str


@dataclass(frozen=True)
class DailyKpi:
    """One KPI's measurements on one UTC day, as the catalogue keeps them (store: kpi_series)."""

    day: date
    count: int
    total: float
    min: float
    max: float
    last: float


def series_points(days: list[DailyKpi], max_points: int = MAX_SERIES_POINTS) -> list[KpiPoint]:
    """A KPI's days as at most `max_points` points: one per day when they fit, else consecutive
    periods of k days (k as small as makes them fit), each merged (counts and sums added, the
    extremes kept, the last of its last day)."""
    days = sorted(days, key=lambda d: d.day)
    if not days:
        return []
    first = days[0].day
    span = (days[-1].day - first).days + 1
    k = max(1, math.ceil(span / max_points))
    buckets: dict[int, list[DailyKpi]] = {}
    for d in days:
        buckets.setdefault((d.day - first).days // k, []).append(d)
    points = []
    for group in buckets.values():
        count = sum(d.count for d in group)
        points.append(
            KpiPoint(
                start=group[0].day,
                end=group[-1].day,
                count=count,
                mean=sum(d.total for d in group) / count,
                min=min(d.min for d in group),
                max=max(d.max for d in group),
                last=group[-1].last,
            )
        )
    return points


@dataclass(frozen=True)
class Entry:
    proposal_id: str
    # proposal content: the highest revision seen, and when it (and the first revision) was recorded
    proposal: ProposalSubmitted | None = None
    proposal_at: datetime | None = None
    first_seen_at: datetime | None = None
    # screening: the latest by screened_at; the first time it passed
    screening_passed: bool | None = None
    screened_at: datetime | None = None
    ever_passed: bool = False
    passed_at: datetime | None = None
    # evaluation decision: the latest by decided_at
    decision: Decision | None = None
    rationale: str | None = None
    decided_at: datetime | None = None
    weighted_score: float | None = None
    criterion_averages: dict[str, float] | None = None
    # a closing status (rejected, withdrawn, screening_failed) and when it happened
    closed: str | None = None
    closed_at: datetime | None = None
    started_at: datetime | None = None
    started_event_at: datetime | None = None
    measurements: dict[str, Measurement] = field(default_factory=dict)
    completion: PilotCompleted | None = None
    completed_event_at: datetime | None = None
    # what was last published on the public topic: the visible Result, or its withdrawal
    result: Result | None = None
    withdrawn: ResultWithdrawn | None = None

    # -- facts --------------------------------------------------------------------------------
    def with_proposal(self, p: ProposalSubmitted, at: datetime | None = None) -> Entry:
        at = at or p.submitted_at
        first = min(self.first_seen_at, at) if self.first_seen_at else at
        if self.proposal is not None and p.revision < self.proposal.revision:
            return replace(self, first_seen_at=first)
        return replace(self, proposal=p, proposal_at=at, first_seen_at=first)

    def with_revision(self, r: ProposalRevised, at: datetime) -> Entry:
        data = r.model_dump(exclude={"revised_at"})
        submitted_at = self.proposal.submitted_at if self.proposal else r.revised_at
        return self.with_proposal(ProposalSubmitted(**data, submitted_at=submitted_at), at)

    def with_screening(self, passed: bool, screened_at: datetime | None = None, at: datetime | None = None) -> Entry:
        entry = self
        if passed:
            first = min(entry.passed_at, at) if entry.passed_at and at else (entry.passed_at or at)
            entry = replace(entry, ever_passed=True, passed_at=first)
        if screened_at is None or _later(entry.screened_at, screened_at):
            entry = replace(entry, screening_passed=passed, screened_at=screened_at)
        return entry

    def with_screening_event(self, s: ScreeningCompleted, at: datetime) -> Entry:
        return self.with_screening(s.passed, s.screened_at, at)

    def with_decision(self, d: EvaluationDecided) -> Entry:
        if not _later(self.decided_at, d.decided_at):
            return self
        return replace(
            self,
            decision=d.decision,
            rationale=d.rationale,
            decided_at=d.decided_at,
            weighted_score=d.weighted_score,
            criterion_averages=dict(d.criterion_averages),
        )

    def with_status(self, s: ProposalStatusChanged) -> Entry:
        if s.to_status in CLOSING and _later(self.closed_at, s.changed_at):
            return replace(self, closed=CLOSING[s.to_status], closed_at=s.changed_at)
        return self

    def with_pilot_started(self, p: PilotStarted, at: datetime) -> Entry:
        return replace(self, started_at=p.started_at, started_event_at=at)

    def with_measurement(self, m: MeasurementRecorded) -> Entry:
        current = self.measurements.get(m.kpi)
        if current is not None and (current.measured_at, current.measurement_id) >= (m.measured_at, m.measurement_id):
            return self
        return replace(
            self, measurements={**self.measurements, m.kpi: Measurement(m.value, m.measured_at, m.measurement_id)}
        )

    def with_completion(self, c: PilotCompleted, at: datetime) -> Entry:
        return replace(self, completion=c, completed_event_at=at)

    # -- the public view --------------------------------------------------------------------
    @property
    def piloted(self) -> bool:
        return self.started_at is not None or self.completion is not None

    @property
    def withdrawal_reason(self) -> str | None:
        """Why a proposal is out of the catalogue before its pilot; None when it is not."""
        if self.piloted:
            return None  # a pilot stopped midway keeps its lessons
        if self.decision is Decision.rejected:
            return "rejected"
        return self.closed

    @property
    def visible(self) -> bool:
        return (
            self.proposal is not None
            and self.ever_passed
            and self.screening_passed is not False
            and self.withdrawal_reason is None
        )

    def status(self) -> ResultStatus:
        if self.completion is not None:
            return ResultStatus.completed
        if self.started_at is not None:
            return ResultStatus.piloting
        if self.decision is Decision.approved:
            return ResultStatus.planned
        return ResultStatus.in_evaluation

    def _times(self) -> list[datetime]:
        times = [self.proposal_at, self.passed_at, self.decided_at, self.started_event_at, self.completed_event_at]
        times += [m.measured_at for m in self.measurements.values()]
        return [t for t in times if t is not None]

    def view(self, contact_unit: str, series: dict[str, list[KpiPoint]] | None = None) -> Result | None:
        """The Result departments see, derived from the facts alone; None when not in the catalogue.
        `series`, by KPI name, are the KPIs' measurements over time (from the catalogue's store)."""
        p = self.proposal
        if not self.visible or p is None:  # (a visible entry has its proposal)
            return None
        actual = {k.name: k.actual for k in self.completion.actual_kpis} if self.completion else {}
        # A resident's "organisation" is their own name: personal data stays out of the catalogue,
        # and so does the name where the resident wrote it into the text.
        resident = p.proposer.kind == ProposerKind.resident
        names = (p.proposer.organisation,) if resident else ()
        organisation = None if resident else redact(p.proposer.organisation)

        def text(value: str | None) -> str | None:
            return redact(value, names)

        kpis = []
        for k in p.kpis:
            value = actual.get(k.name)
            if value is None and k.name in self.measurements:
                value = self.measurements[k.name].value
            points = (series or {}).get(k.name)
            kpis.append(
                ResultKpi(
                    name=text(k.name),
                    unit=text(k.unit),
                    baseline=k.baseline,
                    target=k.target,
                    actual=value,
                    series=points or None,
                )
            )
        published_at = max(t for t in (self.first_seen_at, self.passed_at) if t is not None)
        return Result(
            result_id=p.proposal_id,
            proposal_id=p.proposal_id,
            title=text(p.title),
            summary=text(p.summary),
            language=p.language,
            focus_area=p.focus_area,
            environment=p.environment,
            proposer_kind=p.proposer.kind,
            organisation=organisation,
            partners=[text(x) for x in p.partners],
            hypothesis=text(p.hypothesis),
            kpis=kpis,
            status=self.status(),
            outcome=self.completion.outcome if self.completion else None,
            lessons_learned=text(self.completion.lessons_learned) if self.completion else None,
            decision_rationale=text(self.rationale) if self.decision is not None else None,
            decision=self.decision,
            weighted_score=self.weighted_score if self.decision is not None else None,
            criterion_averages=self.criterion_averages if self.decision is not None else None,
            school_name=text(p.school_name),
            budget_eur=p.budget_eur,
            duration_weeks=p.duration_weeks,
            started_at=self.started_at,
            completed_at=self.completion.completed_at if self.completion else None,
            contact_unit=contact_unit,
            published_at=published_at,
            updated_at=max([published_at, *self._times()]),
        )

    def reconcile(
        self, contact_unit: str, series: dict[str, list[KpiPoint]] | None = None
    ) -> tuple[Entry, Change | None]:
        """Bring what is published in line with the view: the new entry and the public event due, if any."""
        view = self.view(contact_unit, series)
        if view is not None:
            if self.result is None:
                return replace(self, result=view, withdrawn=None), "published"
            if view != self.result:
                return replace(self, result=view), "updated"
            return self, None
        if self.result is not None:
            withdrawn_at = max(
                [
                    self.result.updated_at,
                    *[t for t in (self.closed_at, self.decided_at, self.screened_at) if t is not None],
                ]
            )
            gone = ResultWithdrawn(
                result_id=self.result.result_id,
                proposal_id=self.proposal_id,
                reason=self.withdrawal_reason or "screening_failed",
                withdrawn_at=withdrawn_at,
            )
            return replace(self, result=None, withdrawn=gone), "withdrawn"
        return self, None
