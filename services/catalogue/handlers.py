"""Use cases of the catalogue service: apply a workflow event to its entry and publish what changed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel

from kokeilu.contracts import CloudEvent
from kokeilu.contracts import catalog as types
from kokeilu.contracts.evaluation import EvaluationDecided, ScreeningCompleted
from kokeilu.contracts.proposals import (
    MeasurementRecorded,
    PilotCompleted,
    PilotStarted,
    ProposalRevised,
    ProposalStatusChanged,
    ProposalSubmitted,
)
from kokeilu.contracts.results import KpiPoint, Result, ResultWithdrawn
from kokeilu.errors import PermanentError

from .domain import SAFE_ID, DailyKpi, Entry
from .ports import CatalogueUnitOfWork
from .search import SearchPage, SearchQuery

CONSUMER = "catalogue"

PUBLIC_TYPES = {
    "published": types.RESULT_PUBLISHED,
    "updated": types.RESULT_UPDATED,
    "withdrawn": types.RESULT_WITHDRAWN,
}


# What _fact handles: the consumer counts other events as ignored without a worker.
HANDLED = (
    types.PROPOSAL_SUBMITTED,
    types.PROPOSAL_REVISED,
    types.SCREENING_COMPLETED,
    types.EVALUATION_DECIDED,
    types.PROPOSAL_STATUS_CHANGED,
    types.PILOT_STARTED,
    types.MEASUREMENT_RECORDED,
    types.PILOT_COMPLETED,
)


Change = Callable[[Entry], Entry]


# The data of the events _fact handles (each about one proposal).
Fact = (
    ProposalSubmitted
    | ProposalRevised
    | ScreeningCompleted
    | EvaluationDecided
    | ProposalStatusChanged
    | PilotStarted
    | MeasurementRecorded
    | PilotCompleted
)


def _fact(event: CloudEvent, data: BaseModel) -> Change | None:
    """How an event changes an entry, or None when the catalogue does not care about it."""
    at = event.time
    if isinstance(data, ProposalSubmitted):
        return lambda e: e.with_proposal(data, at)
    if isinstance(data, ProposalRevised):
        return lambda e: e.with_revision(data, at)
    if isinstance(data, ScreeningCompleted):
        return lambda e: e.with_screening_event(data, at)
    if isinstance(data, EvaluationDecided):
        return lambda e: e.with_decision(data)
    if isinstance(data, ProposalStatusChanged):
        return lambda e: e.with_status(data)
    if isinstance(data, PilotStarted):
        return lambda e: e.with_pilot_started(data, at)
    if isinstance(data, MeasurementRecorded):
        return lambda e: e.with_measurement(data)
    if isinstance(data, PilotCompleted):
        return lambda e: e.with_completion(data, at)
    return None


def apply(event: CloudEvent, data: BaseModel, uow: CatalogueUnitOfWork, contact_unit: str) -> str:
    """Apply one workflow event once. Returns "published", "updated" or "withdrawn" when a public
    event went to the outbox with the change, else "applied", "duplicate" or "ignored"."""
    [outcome] = apply_many([(event, data)], uow, contact_unit)
    if isinstance(outcome, PermanentError):
        raise outcome
    return outcome


def apply_many(
    items: Sequence[tuple[CloudEvent, BaseModel]], uow: CatalogueUnitOfWork, contact_unit: str
) -> list[str | PermanentError]:
    """Apply a run of workflow events, each once and in order (the consumer's bulk method: one
    read of the run's entries, one write of each entry it changed and of the inbox). For each
    item: what `apply` returns for it, or the PermanentError that refuses it (not recorded as
    applied, so it can be redriven)."""
    outcomes: list[str | PermanentError] = []
    facts: list[tuple[int, CloudEvent, Fact, Change]] = []
    for event, data in items:
        change = _fact(event, data)
        if change is None:
            outcomes.append("ignored")
            continue
        assert isinstance(data, Fact)  # what _fact changes an entry for
        if not SAFE_ID.match(data.proposal_id):
            outcomes.append(
                PermanentError(f"proposal id {data.proposal_id[:80]!r} is not an id the catalogue publishes")
            )
            continue
        facts.append((len(outcomes), event, data, change))
        outcomes.append("applied")
    if not facts:
        return outcomes
    with uow:
        fresh = uow.first_times(CONSUMER, [event for _, event, _, _ in facts])
        new = [fact for fact, first in zip(facts, fresh, strict=True) if first]
        for (i, *_), first in zip(facts, fresh, strict=True):
            if not first:
                outcomes[i] = "duplicate"
        before = uow.entries.get_many({data.proposal_id for _, _, data, _ in new})
        entries = dict(before)
        for i, event, data, change in new:
            proposal_id = data.proposal_id
            if isinstance(data, MeasurementRecorded):  # its day of the KPI's series: one upsert, flat cost
                uow.entries.record_measurement(proposal_id, data.kpi, data.value, data.measured_at)
            entry = change(entries[proposal_id])
            # The series go into the published result from the pilot's completion on (one
            # result.updated with the whole series), not with every measurement; until then the
            # API and portal read them from the store (live_series).
            kpis = len(entry.proposal.kpis) if entry.proposal else 1
            series = uow.entries.series(proposal_id, kpis) if entry.completion is not None else None
            entry, public = entry.reconcile(contact_unit, series)
            if public is not None:
                body: Result | ResultWithdrawn | None = entry.withdrawn if public == "withdrawn" else entry.result
                assert body is not None  # what reconcile() says is due, it has put in the entry
                uow.emit(PUBLIC_TYPES[public], body, body.result_id, event)
                outcomes[i] = public
            entries[proposal_id] = entry
        # A fact already known (an older screening, say) changes nothing.
        uow.entries.save_many(
            [(entry, before[proposal_id]) for proposal_id, entry in entries.items() if entry != before[proposal_id]]
        )
        uow.applied(CONSUMER, [event for _, event, _, _ in new])
        uow.commit()
    return outcomes


def get_result(proposal_id: str, uow: CatalogueUnitOfWork) -> Result | None:
    """The published result, with its KPIs' series as they are now (a piloting result's series
    grow between its public events)."""
    with uow:
        result = uow.entries.get(proposal_id).result
        return None if result is None else live_series(result, uow.entries.series(proposal_id, len(result.kpis)))


def live_series(result: Result, series: dict[str, list[KpiPoint]]) -> Result:
    if not series:
        return result
    kpis = [k.model_copy(update={"series": series.get(k.name) or k.series}) for k in result.kpis]
    return result.model_copy(update={"kpis": kpis})


def kpi_days(proposal_id: str, uow: CatalogueUnitOfWork) -> tuple[Result | None, dict[str, list[DailyKpi]]]:
    """The published result and every KPI's days (for the CSV); (None, {}) when not published."""
    with uow:
        result = uow.entries.get(proposal_id).result
        return (None, {}) if result is None else (result, uow.entries.daily(proposal_id))


def search_results(query: SearchQuery, uow: CatalogueUnitOfWork) -> SearchPage:
    with uow:
        return uow.entries.search(query)


def all_results(uow: CatalogueUnitOfWork) -> list[Result]:
    with uow:
        return uow.entries.all_results()


def open_data(uow: CatalogueUnitOfWork) -> tuple[list[Result], dict[str, str]]:
    """Every published result, and the language of each one's title and summary (by result id)."""
    with uow:
        return uow.entries.all_results(), uow.entries.languages()
