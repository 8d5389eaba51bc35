"""The workflow consumer's bulk method, `handlers.on_evaluation_run`: a run of evaluation's
outcomes (screenings and decisions, several about one proposal, duplicates, refusals) applied at
once does what applying them one by one does: the same outcomes, refusals, proposals, events
(per key, in order), inbox and figures. On the in-memory fake and on SQLite."""

from __future__ import annotations

from typing import Any

import pytest

from kokeilu.contracts import decode
from kokeilu.contracts.evaluation import Decision
from services.proposals import handlers
from tests.builders import redelivery_of
from tests.unit.proposals.test_handlers import FAILURES, decided_event, screening_event, submitted
from tests.unit.proposals.test_intake_bulk import Counted, a_store


@pytest.fixture(params=["fake", "sqlite"])
def kind(request):
    return request.param


def setup(store) -> dict[str, str]:
    """Five proposals in screening, one of them withdrawn; their ids by name."""
    ids = {name: submitted(store, title=f"Proposal {name}").id for name in ("a", "b", "c", "d", "e")}
    handlers.withdraw(ids["d"], "changed our minds", store.uow())
    return ids


def stream(ids: dict[str, str]) -> list:
    screened_a = screening_event(ids["a"], passed=True)
    unknown = screening_event("no-such-proposal", passed=True)
    early = decided_event(ids["e"], Decision.approved)
    return [
        screened_a,
        screening_event(ids["b"], passed=False, failures=FAILURES),
        decided_event(ids["a"], Decision.approved),  # the same proposal again, later in the run
        redelivery_of(screened_a),  # a duplicate inside the run
        unknown,  # refused
        unknown,  # refused again: a refusal is not recorded as applied
        screening_event(ids["b"], passed=True),  # refused: b failed its screening just before
        decided_event(ids["d"], Decision.approved),  # ignored: withdrawn
        screening_event(ids["c"], passed=True),
        decided_event(ids["c"], Decision.rejected),
        early,  # refused: e is still in screening
        screening_event(ids["e"], passed=True),
        early,  # its twin, after e's screening: applied now, as one by one
        early,  # and a third time: a duplicate
    ]


def one_by_one(store, items, figures) -> list:
    results: list = []
    for event, data in items:
        try:
            results.append(handlers.on_evaluation_run([(event, data)], store.uow(), figures)[0])
        except Exception as exc:  # what the single-event handlers raise
            results.append(exc)
    return results


def shown(result, ids: dict[str, str]) -> Any:
    """An outcome, a refusal as its class and message (with the proposals' random ids named)."""
    if not isinstance(result, Exception):
        return result
    text = str(result)
    for name, pid in ids.items():
        text = text.replace(pid, name)
    return type(result).__name__, text


def figures(counted: Counted) -> list:
    """What was counted, the time to a decision (from the wall clock) left out."""
    return sorted((what, args[:1] if what == "decision" else args) for what, args in counted.calls)


def state(store, ids: dict[str, str], since: int, items: list) -> tuple:
    """The proposals by name, the events since `since` per key (their causes by place in `items`), the inbox."""
    names = {pid: name for name, pid in ids.items()}
    causes = {event.id: f"item {i}" for i, (event, _) in reversed(list(enumerate(items)))}
    proposals = sorted(
        (names[p.id], p.status.value, p.decision.decision.value if p.decision else None, len(p.screening_failures))
        for p in handlers.list_proposals(store.uow(), None, 100, None)
    )
    by_key: dict[str, list[tuple]] = {}
    for topic, key, event in store.records()[since:]:
        data = {k: names.get(v, v) if isinstance(v, str) else v for k, v in event.data.items() if not k.endswith("_at")}
        by_key.setdefault(names.get(key or "", key or ""), []).append(
            (topic, event.type, causes.get(event.causationid), data)
        )
    return proposals, by_key, store.inbox_size()


def test_a_run_does_what_applying_its_outcomes_one_by_one_does(kind, tmp_path):
    run_store, single_store = a_store(kind, tmp_path, "run"), a_store(kind, tmp_path, "single")
    run_ids, single_ids = setup(run_store), setup(single_store)
    run_since, single_since = len(run_store.records()), len(single_store.records())
    run_figures, single_figures = Counted(), Counted()

    # The events of each store name its own (random) ids; their ids and sources are the same.
    run_items = [(e, decode(e)) for e in stream(run_ids)]
    single_items = [(e, decode(e)) for e in stream(single_ids)]
    applied = handlers.on_evaluation_run(run_items, run_store.uow(), run_figures)
    singly = one_by_one(single_store, single_items, single_figures)

    assert [shown(r, run_ids) for r in applied] == [shown(r, single_ids) for r in singly]
    assert [r if isinstance(r, str) else type(r).__name__ for r in applied] == [
        "applied",
        "applied",
        "applied",
        "duplicate",
        "UnknownProposalOutcome",
        "UnknownProposalOutcome",
        "IllegalTransition",
        "ignored",
        "applied",
        "applied",
        "IllegalTransition",
        "applied",
        "applied",
        "duplicate",
    ]
    assert state(run_store, run_ids, run_since, run_items) == state(
        single_store, single_ids, single_since, single_items
    )
    assert figures(run_figures) == figures(single_figures)
    assert [args[0] for what, args in sorted(run_figures.calls) if what == "decision"] == [
        "approved",
        "approved",
        "rejected",
    ]
    if kind == "fake":
        assert run_store.fake.commits == single_store.fake.commits - len(singly) + 1  # the run in one transaction
