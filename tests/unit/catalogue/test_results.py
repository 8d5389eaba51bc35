"""The results catalogue's rules, on the domain and the use case with fakes: a result derived from
facts in any order, its lifecycle on the public topic, and no personal data under any input."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kokeilu.contracts import CloudEvent, decode, parse_envelope
from kokeilu.errors import PermanentError
from services.catalogue import handlers
from tests.unit.fakes import FakeCatalogueUnitOfWork
from tests.unit.results import events as ev

UNIT = "Espoo-experiments"


def deliver(uow, raw: dict) -> str:
    event = parse_envelope(json.dumps(raw).encode())
    return handlers.apply(event, decode(event), uow, UNIT)


def public(uow) -> list[tuple[str, dict]]:
    return [(o.event.type.rsplit(".", 1)[1], json.loads(o.event.to_bytes())["data"]) for o in uow.outbox]


def lifecycle(pid):
    return [
        ev.submitted(pid),
        ev.screened(pid),
        ev.decided(pid),
        ev.status(pid, "in_evaluation", "approved"),
        ev.started(pid),
        ev.measured(pid, 70),
        ev.completed(pid),
    ]


def test_a_result_is_published_then_updated_through_its_lifecycle():
    uow = FakeCatalogueUnitOfWork()
    outcomes = [deliver(uow, e) for e in lifecycle("p-1")]
    assert outcomes == ["applied", "published", "updated", "applied", "updated", "updated", "updated"]
    statuses = [data["status"] for _, data in public(uow)]
    assert statuses == ["in_evaluation", "planned", "piloting", "piloting", "completed"]
    final = public(uow)[-1][1]
    assert final["kpis"][0]["actual"] == 84 and final["outcome"] == "scale_up"
    assert all(o.key == "p-1" for o in uow.outbox)


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_the_result_is_the_same_whatever_order_the_events_come_in(order):
    events = [ev.submitted("p-1"), ev.screened("p-1"), ev.decided("p-1"), ev.started("p-1")]
    expected = FakeCatalogueUnitOfWork()
    for e in events:
        deliver(expected, e)
    uow = FakeCatalogueUnitOfWork()
    for i in order:
        deliver(uow, events[i])
    assert handlers.get_result("p-1", uow) == handlers.get_result("p-1", expected)
    assert handlers.get_result("p-1", uow).status.value == "piloting"


@pytest.mark.parametrize("closing", [ev.decided("p-1", "rejected"), ev.status("p-1", "in_evaluation", "withdrawn")])
def test_a_proposal_closed_before_its_pilot_is_withdrawn(closing):
    uow = FakeCatalogueUnitOfWork()
    for e in (ev.submitted("p-1"), ev.screened("p-1"), closing):
        deliver(uow, e)
    kind, data = public(uow)[-1]
    assert kind == "withdrawn" and data["result_id"] == "p-1"
    assert handlers.get_result("p-1", uow) is None


def test_a_proposal_closed_before_it_was_ever_published_publishes_nothing():
    uow = FakeCatalogueUnitOfWork()
    for e in (ev.decided("p-1", "rejected"), ev.submitted("p-1"), ev.screened("p-1")):
        deliver(uow, e)
    assert uow.outbox == []


def test_a_pilot_stopped_midway_stays_with_its_lessons():
    uow = FakeCatalogueUnitOfWork()
    for e in (
        *lifecycle("p-1")[:5],
        ev.completed("p-1", "stop", lessons="Too few riders in winter."),
        ev.status("p-1", "piloting", "withdrawn", time="2026-09-01T00:00:00Z"),
    ):
        deliver(uow, e)
    result = handlers.get_result("p-1", uow)
    assert result.outcome.value == "stop" and result.lessons_learned == "Too few riders in winter."


def test_a_later_revision_updates_the_result_and_an_older_one_does_not():
    uow = FakeCatalogueUnitOfWork()
    for e in (
        ev.submitted("p-1", revision=2, title="Second take"),
        ev.screened("p-1"),
        ev.submitted("p-1", title="First take"),
    ):
        deliver(uow, e)
    assert handlers.get_result("p-1", uow).title == "Second take"


def test_an_id_the_catalogue_would_not_publish_is_refused_for_good():
    with pytest.raises(PermanentError):
        deliver(FakeCatalogueUnitOfWork(), ev.submitted("x@example.com"))


# property: nothing personal on kokeilu.results.v1, whatever the proposer wrote ---------------
ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# No NUL: the contracts refuse it (kokeilu/contracts/bounds.py), as no store can hold it.
words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"), max_size=60
)
emails = st.from_regex(r"[a-z0-9._%+-]{1,20}@[a-z0-9-]{1,20}\.(fi|com|org)", fullmatch=True)
# A resident's name: two capitalised words, so it cannot coincide with a field name or enum value.
names = st.tuples(
    st.from_regex(r"[A-ZÄÖ][a-zäö]{2,10}", fullmatch=True), st.from_regex(r"[A-ZÄÖ][a-zäö]{2,12}", fullmatch=True)
).map(" ".join)


@st.composite
def free_text(draw, name):
    parts = draw(st.lists(st.one_of(words, emails, st.just(name), st.just(name.upper())), min_size=1, max_size=5))
    return " ".join(parts)[:180] or "x"


@st.composite
def histories(draw):
    name = draw(names)
    kind = draw(st.sampled_from(["resident", "company", "school"]))
    organisation = name if kind == "resident" else draw(free_text(name))[:200] or "Org"
    text = lambda: draw(free_text(name))  # noqa: E731
    events = [
        ev.submitted(
            "p-1",
            title=text(),
            summary=text(),
            hypothesis=text(),
            partners=[text()],
            proposer={"organisation": organisation, "kind": kind},
            kpis=[{"name": text()[:200], "unit": text()[:50] or "u", "baseline": 0, "target": 1}],
            school_name=text(),
        ),
        ev.screened("p-1"),
        ev.decided("p-1", draw(st.sampled_from(["approved", "rejected", "revision_requested"])), rationale=text()),
        ev.started("p-1"),
        ev.completed("p-1", lessons=text()),
    ]
    order = draw(st.permutations(range(len(events))))
    return name if kind == "resident" else None, [events[i] for i in order]


def leaf_strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *leaf_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in leaf_strings(v)]
    return []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_no_result_event_ever_carries_an_email_address_or_a_residents_name(history):
    resident, events = history
    uow = FakeCatalogueUnitOfWork()
    for e in events:
        deliver(uow, e)
    for out in uow.outbox:
        wire = json.loads(out.event.to_bytes())
        for s in leaf_strings(wire):
            assert not ADDRESS.search(s), s
            if resident:
                assert resident.lower() not in s.lower(), s
        assert CloudEvent.model_validate(wire).type.startswith("fi.espoo.kokeilu.result.")
