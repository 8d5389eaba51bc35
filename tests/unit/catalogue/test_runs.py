"""The catalogue's bulk method (`handlers.apply_many`, the consumer's runs): a run of workflow
events leaves the store, the public events and the outcomes exactly as applying them one by
one does, on the fake and on the real store; a refused event is refused alone."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kokeilu.contracts import decode, parse_envelope
from kokeilu.errors import PermanentError
from services.catalogue import handlers
from services.catalogue.search import SearchQuery
from services.catalogue.store import CatalogueUnitOfWork
from tests import builders as ev
from tests.support import Store, stores_of
from tests.unit.fakes import FakeCatalogueUnitOfWork

CONTACT_UNIT = "City of Espoo, experimentation programme"


def parsed(raw: dict):
    event = parse_envelope(json.dumps(raw).encode())
    return event, decode(event)


def lifecycle(pid: str) -> list[dict]:
    """A pilot's history with two measurements (on two days) before its completion."""
    events = ev.pilot_lifecycle(pid)
    events.insert(-1, ev.measured(pid, 75, time="2026-06-02T08:00:00Z"))
    return events


def interleaved(*histories: list[dict]) -> list[dict]:
    """The histories' events taken in turn (each history keeps its own order)."""
    out = []
    for i in range(max(len(h) for h in histories)):
        out.extend(h[i] for h in histories if i < len(h))
    return out


def stream() -> list[dict]:
    events = interleaved(lifecycle("p-1"), lifecycle("p-2"), [ev.submitted("p-3"), ev.screened("p-3", passed=False)])
    events.insert(5, events[2])  # a redelivery inside the run
    events.insert(7, ev.submitted("x@example.com"))  # an id the catalogue refuses
    return events


def outcome(o) -> str:
    return f"refused: {o}" if isinstance(o, PermanentError) else o


def one_by_one(uow_of, raws) -> list[str]:
    outcomes = []
    for raw in raws:
        event, data = parsed(raw)
        try:
            outcomes.append(handlers.apply(event, data, uow_of(), CONTACT_UNIT))
        except PermanentError as exc:
            outcomes.append(outcome(exc))
    return outcomes


def in_runs(uow_of, raws, cuts) -> list[str]:
    """`raws` applied as runs, cut before each index in `cuts`."""
    outcomes = []
    for run in ev.cut_at(raws, cuts):
        outcomes.extend(outcome(o) for o in handlers.apply_many([parsed(r) for r in run], uow_of(), CONTACT_UNIT))
    return outcomes


def state(store: Store, pids) -> tuple:
    published = [(e.type, e.subject, e.data) for e in store.published()]
    results = {pid: store.read(lambda uow, pid=pid: handlers.get_result(pid, uow)) for pid in pids}
    # ... and the results index the public search reads (its full-text part too)
    index = store.read(lambda uow: [r.model_dump(mode="json") for r in uow.entries.all_results()])
    found = store.read(lambda uow: [r.result_id for r in uow.entries.search(SearchQuery(q="reading")).items])
    return published, results, index, sorted(found), store.inbox_size()


@pytest.fixture(params=["fake", "sqlite"])
def stores(request, tmp_path):
    with stores_of(request.param, tmp_path, "catalogue", FakeCatalogueUnitOfWork, CatalogueUnitOfWork) as make:
        yield make


def test_one_run_does_what_the_events_one_by_one_do(stores):
    raws = stream()
    alone, run = stores("a"), stores("b")
    expected = one_by_one(alone.uow, raws)
    assert "duplicate" in expected and any(o.startswith("refused") for o in expected)
    assert expected.count("published") == 2 and "withdrawn" not in expected
    assert in_runs(run.uow, raws, []) == expected
    assert state(run, ["p-1", "p-2", "p-3"]) == state(alone, ["p-1", "p-2", "p-3"])
    # a refused event is not recorded as applied: redelivered (after a fix, say), it is refused again
    assert in_runs(run.uow, [ev.submitted("x@example.com")], []) == [expected[7]]


def test_a_run_of_events_already_applied_changes_nothing(stores):
    store = stores("a")
    raws = lifecycle("p-1")
    in_runs(store.uow, raws, [])
    before = state(store, ["p-1"])
    assert in_runs(store.uow, raws, [3]) == ["duplicate"] * len(raws)
    assert state(store, ["p-1"]) == before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(stream()) - 1), max_size=6))
def test_wherever_the_runs_are_cut_the_outcome_is_the_same(cuts):
    raws = stream()
    alone, runs = FakeCatalogueUnitOfWork(), FakeCatalogueUnitOfWork()
    expected = one_by_one(lambda: alone, raws)
    assert in_runs(lambda: runs, raws, cuts) == expected
    assert [(o.event.type, o.event.subject, o.event.data) for o in runs.outbox] == [
        (o.event.type, o.event.subject, o.event.data) for o in alone.outbox
    ]


def test_the_search_index_holds_what_a_run_published(stores):
    store = stores("run")
    in_runs(store.uow, stream(), [])
    _, results, index, found, _ = state(store, ["p-1", "p-2", "p-3"])
    assert sorted(found) == sorted(r["result_id"] for r in index) and found  # every published result is found


def test_a_run_undone_and_applied_again_stores_its_entries(stores):
    """What the store knew of stored entries goes with an undone level: a run applied again in
    the same unit of work writes (inserts) its new entries, it does not take them for stored."""

    class Undone(Exception):
        pass

    store = stores("run")
    uow = store.uow()
    events = [parsed(r) for r in lifecycle("p-9")]
    with uow:
        with pytest.raises(Undone), uow:  # a level (savepoint) around the run, undone
            handlers.apply_many(events, uow, CONTACT_UNIT)
            raise Undone
        handlers.apply_many(events, uow, CONTACT_UNIT)
        uow.commit()
    assert store.read(lambda u: handlers.get_result("p-9", u)) is not None
