"""The intake consumer's bulk method, `handlers.on_intake_run`: a run of consecutive intake
events (proposals and measurements mixed) applied at once does what applying them one by one
(`on_intake`, `on_intake_measurement`) does: the same outcomes, refusals, rows, events (per key,
in order), inbox and figures. On both stores: the in-memory fake and the real one on SQLite."""

from __future__ import annotations

from typing import Any

import pytest

from kokeilu import tracing
from kokeilu.contracts import CloudEvent, decode
from kokeilu.contracts import catalog as types
from kokeilu.contracts.proposals import IntakeMeasurement, Submission
from services.proposals import handlers
from services.proposals.store import ProposalsUnitOfWork
from tests.builders import WHEN, a_submission, an_event, redelivery_of
from tests.support import Store
from tests.unit.fakes import FakeProposalsUnitOfWork
from tests.unit.proposals.test_handlers import to_piloting


@pytest.fixture(params=["fake", "sqlite"])
def kind(request):
    return request.param


def a_store(kind, tmp_path, name):
    (tmp_path / name).mkdir()
    return Store(kind, tmp_path / name, "proposals", FakeProposalsUnitOfWork, ProposalsUnitOfWork)


class Counted:
    """Figures that keep every call."""

    def __init__(self):
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def count_transition(self, *args) -> None:
        self.calls.append(("transition", args[:3]))

    def count_intake(self, *args) -> None:
        self.calls.append(("intake", args))

    def observe_time_to_decision(self, *args) -> None:
        self.calls.append(("decision", args))


def proposal(title, event_id, source="e-services-portal"):
    event = an_event(types.INTAKE_PROPOSAL, a_submission(title=title), source=source, event_id=event_id)
    return event.model_copy(update={"correlationid": f"{source}#{event_id}"})  # the same in every store


def measurement(pid, value, event_id, kpi="daily riders"):
    event = an_event(
        types.INTAKE_MEASUREMENT,
        IntakeMeasurement(proposal_id=pid, kpi=kpi, value=value, measured_at=WHEN),
        source="sensors/kera",
        event_id=event_id,
    )
    return event.model_copy(update={"correlationid": f"sensors#{event_id}"})


def stream(pid: str) -> list[CloudEvent]:
    """Proposals and measurements mixed, with duplicates inside the run (the same event twice,
    and a redelivery) and refused records in the middle (an unknown proposal, twice, and an
    unknown KPI)."""
    first = proposal("First from the portal", "p-1")
    return [
        first,
        measurement(pid, 1, "m-1"),
        proposal("Second from the portal", "p-2"),
        redelivery_of(first),  # the same event again, inside the run
        measurement("no-such-proposal", 2, "m-2"),  # refused
        measurement("no-such-proposal", 2, "m-2"),  # refused again: a refused record is not applied
        proposal("From the school systems", "p-1", source="school-systems"),  # same id, other source
        measurement(pid, 3, "m-3", kpi="co2 saved"),  # refused: the pilot has no such KPI
        measurement(pid, 4, "m-4"),
        measurement(pid, 4, "m-4"),  # the same measurement twice
        proposal("Third from the portal", "p-3"),
    ]


def one_by_one(store, items, figures) -> list[str | handlers.IntakeRefused]:
    results: list[str | handlers.IntakeRefused] = []
    for event, data in items:
        try:
            if isinstance(data, Submission):
                results.append(handlers.on_intake(event, data, store.uow(), figures))
            else:
                results.append(handlers.on_intake_measurement(event, data, store.uow(), figures))
        except handlers.IntakeRefused as exc:
            results.append(exc)
    return results


def outcome(result, pilot):
    """A result, the refusal's message with the pilot's (random) id left out."""
    return (type(result).__name__, str(result).replace(pilot, "pilot")) if isinstance(result, Exception) else result


def state(store, pilot: str, since: int = 0):
    """What the store holds and published (from the `since`th event on), with the new proposals' ids (random) and the times
    left out: each proposal by its title, events per key in order."""
    proposals = handlers.list_proposals(store.uow(), None, 100, None)
    names = {p.id: p.submission.title for p in proposals if p.id != pilot}
    names[pilot] = "pilot"
    rows = sorted(
        (names[p.id], p.status.value, p.source, p.submission.model_dump_json(), p.revision) for p in proposals
    )
    measured = sorted((m["kpi"], m["value"], m["source"]) for m in handlers.measurements_of(pilot, store.uow()))
    by_key: dict[str, list[tuple[Any, ...]]] = {}
    for topic, key, event in store.records()[since:]:
        data = {
            k: names.get(v, v) if isinstance(v, str) else v
            for k, v in event.data.items()
            if not k.endswith("_at") and k != "measurement_id"
        }
        by_key.setdefault(names.get(key or "", key or ""), []).append(
            (
                topic,
                event.type,
                names.get(event.subject or "", event.subject),
                event.causationid,
                event.correlationid,
                data,
            )
        )
    return rows, measured, by_key, store.inbox_size()


def test_a_run_does_what_applying_its_records_one_by_one_does(kind, tmp_path):
    run_store, single_store = a_store(kind, tmp_path, "run"), a_store(kind, tmp_path, "single")
    run_pilot, single_pilot = to_piloting(run_store), to_piloting(single_store)
    run_figures, single_figures = Counted(), Counted()
    run_since, single_since = len(run_store.records()), len(single_store.records())
    commits = run_store.fake.commits if kind == "fake" else 0

    applied = handlers.on_intake_run([(e, decode(e)) for e in stream(run_pilot)], run_store.uow(), run_figures)
    singly = one_by_one(single_store, [(e, decode(e)) for e in stream(single_pilot)], single_figures)

    assert [outcome(r, run_pilot) for r in applied] == [outcome(r, single_pilot) for r in singly]
    assert [r if isinstance(r, str) else type(r).__name__ for r in applied] == [
        "applied",
        "applied",
        "applied",
        "duplicate",
        "IntakeRefused",
        "IntakeRefused",
        "applied",
        "IntakeRefused",
        "applied",
        "duplicate",
        "applied",
    ]
    assert state(run_store, run_pilot, run_since) == state(single_store, single_pilot, single_since)
    assert sorted(run_figures.calls) == sorted(single_figures.calls)
    if kind == "fake":
        assert run_store.fake.commits == commits + 1  # the run in one transaction
        assert len(run_store.fake.flows_remembered) == len(single_store.fake.flows_remembered)


def test_a_refused_record_is_not_recorded_as_applied_and_can_be_redriven(kind, tmp_path):
    store = a_store(kind, tmp_path, "store")
    pid = to_piloting(store)
    wrong = measurement(pid, 3, "m-3", kpi="co2 saved")
    items = [proposal("Before", "p-1"), wrong, proposal("After", "p-2")]
    results = handlers.on_intake_run([(e, decode(e)) for e in items], store.uow())
    assert results[0] == results[2] == "applied"
    assert isinstance(results[1], handlers.IntakeRefused) and "no KPI named" in str(results[1])
    # Redriven (the same event), after the record was refused: refused again, not a duplicate.
    [again] = handlers.on_intake_run([(wrong, decode(wrong))], store.uow())
    assert isinstance(again, handlers.IntakeRefused)


def test_a_redelivered_run_changes_nothing(kind, tmp_path):
    store = a_store(kind, tmp_path, "store")
    pid = to_piloting(store)
    items = [(e, decode(e)) for e in stream(pid)]
    handlers.on_intake_run(items, store.uow())
    before = state(store, pid)
    figures = Counted()
    again = handlers.on_intake_run([(redelivery_of(e), d) for e, d in items], store.uow(), figures)
    assert [r if isinstance(r, str) else "refused" for r in again] == [
        "duplicate",
        "duplicate",
        "duplicate",
        "duplicate",
        "refused",  # refusals are not in the inbox: refused again
        "refused",
        "duplicate",
        "refused",
        "duplicate",
        "duplicate",
        "duplicate",
    ]
    assert state(store, pid) == before
    assert {args[-1] for _, args in figures.calls} == {"duplicate"}


def test_a_run_with_nothing_new_writes_nothing(kind, tmp_path):
    store = a_store(kind, tmp_path, "store")
    pid = to_piloting(store)
    e = proposal("Once", "p-1")
    assert handlers.on_intake_run([(e, decode(e))], store.uow()) == ["applied"]
    before = state(store, pid)
    assert handlers.on_intake_run([(e, decode(e)), (e, decode(e))], store.uow()) == ["duplicate", "duplicate"]
    assert state(store, pid) == before


def test_a_new_proposals_events_and_flow_are_those_its_intake_event_gives_one_by_one(tmp_path):
    """The flow (correlation id, trace) of a proposal entered in a run is its intake event's, as
    inside the consumer's span for that event alone, and the store keeps it for what comes later."""
    run_store, single_store = a_store("sqlite", tmp_path, "run"), a_store("sqlite", tmp_path, "single")
    traced = proposal("Traced", "p-1").model_copy(
        update={"correlationid": "portal-batch-9", "traceparent": f"00-{'7' * 32}-{'8' * 16}-01"}
    )
    untraced = proposal("Untraced", "p-2").model_copy(update={"traceparent": None})

    handlers.on_intake_run([(traced, decode(traced)), (untraced, decode(untraced))], run_store.uow())
    for e in (traced, untraced):
        with tracing.consuming(e, "kokeilu.intake.v1", 0, 1, "g"):
            handlers.on_intake(e, decode(e), single_store.uow())

    def flows(store):
        by_title = {}
        for p in handlers.list_proposals(store.uow(), None, 10, None):
            events = [e for e in store.published() if e.subject == p.id]
            with tracing.serving("POST", "/v1/proposals/{id}/withdraw", {"X-Correlation-Id": "someone-else"}):
                handlers.withdraw(p.id, "changed our minds", store.uow())  # joins the proposal's flow
            [withdrawn] = [e for e in store.published() if e.subject == p.id][len(events) :]
            by_title[p.submission.title] = (events, withdrawn)
        return by_title

    run, single = flows(run_store), flows(single_store)
    for title in ("Traced", "Untraced"):
        (run_events, run_later), (single_events, single_later) = run[title], single[title]
        assert len(run_events) == 3
        assert {e.correlationid for e in run_events + [run_later]} == {
            e.correlationid for e in single_events + [single_later]
        }
        traces = {tracing.trace_id_of(e.traceparent) for e in run_events + [run_later]}
        assert len(traces) == 1
        if title == "Traced":
            assert traces == {"7" * 32}
            # Made in the event's span, as `consuming` makes it current when nothing records spans.
            assert {e.traceparent for e in run_events} == {e.traceparent for e in single_events}
            assert {e.traceparent for e in run_events} == {traced.traceparent}
