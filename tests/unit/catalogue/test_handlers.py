"""The catalogue service: assembling an entry from events in any order, a result's lifecycle on the
public topic, no personal data under any input, and the fake store's search against the real one."""

from __future__ import annotations

import itertools
import json
import re
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kokeilu.contracts import CloudEvent, decode, parse_envelope, topics
from kokeilu.contracts import catalog as types
from kokeilu.contracts.proposals import Environment, FocusArea, ProposerKind
from kokeilu.contracts.results import LICENCE, ResultStatus
from kokeilu.contracts.sources import service_source
from kokeilu.errors import PermanentError
from services.catalogue import handlers
from services.catalogue.domain import Entry
from services.catalogue.search import SearchQuery
from services.proposals.domain import Proposal
from tests import builders as ev
from tests.builders import (
    WHEN,
    a_proposal_submitted,
    a_screening,
    a_submission,
    an_event,
    leaf_strings,
    redelivery_of,
    submission,
)
from tests.unit.fakes import FakeCatalogueUnitOfWork

CONTACT_UNIT = "City of Espoo, experimentation programme"


@pytest.fixture
def uow():
    return FakeCatalogueUnitOfWork()


def proposal_event(data):
    return an_event(types.PROPOSAL_SUBMITTED, data, source=service_source("proposals"))


def screening_event(proposal_id, passed=True):
    return an_event(types.SCREENING_COMPLETED, a_screening(proposal_id, passed), source=service_source("evaluation"))


def deliver(uow, event):
    return handlers.apply(event, decode(event), uow, CONTACT_UNIT)


# domain ------------------------------------------------------------------------------------
def published(entry: Entry):
    """The result `entry` publishes, as the catalogue's use case has it reconcile (None if none)."""
    return entry.reconcile(CONTACT_UNIT)[0].result


def test_an_entry_is_published_only_with_its_proposal_and_a_passed_screening():
    entry = Entry("p-1")
    for unready in (
        entry,
        entry.with_proposal(a_proposal_submitted("p-1")),
        entry.with_screening(True),
        entry.with_proposal(a_proposal_submitted("p-1")).with_screening(False),
    ):
        assert unready.reconcile(CONTACT_UNIT) == (unready, None)
    ready = entry.with_screening(True).with_proposal(a_proposal_submitted("p-1"))
    done, change = ready.reconcile(CONTACT_UNIT)
    assert change == "published"
    assert done.reconcile(CONTACT_UNIT) == (done, None), "a published entry is not published again"


def test_a_published_result_says_what_the_catalogue_shows():
    p = a_proposal_submitted("p-1")
    result = published(Entry("p-1").with_proposal(p, WHEN).with_screening(True))
    assert (result.result_id, result.proposal_id) == ("p-1", "p-1")
    assert (result.title, result.summary, result.hypothesis) == (p.title, p.summary, p.hypothesis)
    assert (result.focus_area, result.environment) == (p.focus_area, p.environment)
    assert [(k.name, k.unit, k.baseline, k.target) for k in result.kpis] == [
        (k.name, k.unit, k.baseline, k.target) for k in p.kpis
    ]
    assert result.organisation == "Example Mobility Oy"
    assert result.proposer_kind is ProposerKind.company
    assert result.status is ResultStatus.in_evaluation
    assert result.licence == LICENCE
    assert result.contact_unit == CONTACT_UNIT
    assert result.published_at == result.updated_at == WHEN


def test_a_residents_organisation_is_left_out_of_the_result():
    p = a_proposal_submitted("p-1", proposer={"organisation": "Maija Meikäläinen", "kind": "resident"})
    result = published(Entry("p-1").with_proposal(p).with_screening(True))
    assert result.organisation is None
    assert result.proposer_kind is ProposerKind.resident
    assert "Maija" not in result.model_dump_json()


@pytest.mark.parametrize("kind", [k for k in ProposerKind if k is not ProposerKind.resident])
def test_an_organisations_name_is_shown_for_every_other_kind_of_proposer(kind):
    p = a_proposal_submitted("p-1", proposer={"organisation": "Kera school", "kind": kind})
    assert published(Entry("p-1").with_proposal(p).with_screening(True)).organisation == "Kera school"


# use cases ---------------------------------------------------------------------------------
@pytest.mark.parametrize("screening_first", [False, True], ids=["proposal-first", "screening-first"])
def test_an_entry_publishes_exactly_once_whichever_event_arrives_first(uow, screening_first):
    data = a_proposal_submitted()
    events = [proposal_event(data), screening_event(data.proposal_id)]
    if screening_first:
        events.reverse()
    assert deliver(uow, events[0]) == "applied"
    assert uow.published == []
    assert deliver(uow, events[1]) == "published"
    [out] = uow.outbox
    assert out.topic == topics.RESULTS
    assert out.key == data.proposal_id
    assert out.event.subject == data.proposal_id
    assert out.event.causationid == events[1].id
    result = decode(out.event, topics.RESULTS)
    assert result.proposal_id == data.proposal_id
    assert handlers.get_result(data.proposal_id, uow) == result
    assert uow.entries.count_published() == 1


def test_a_redelivered_event_does_not_publish_again(uow):
    data = a_proposal_submitted()
    first, second = proposal_event(data), screening_event(data.proposal_id)
    deliver(uow, first)
    deliver(uow, second)
    assert deliver(uow, redelivery_of(second)) == "duplicate"
    assert deliver(uow, redelivery_of(first)) == "duplicate"
    assert len(uow.published) == 1


def test_a_later_passed_screening_does_not_publish_a_published_entry_again(uow):
    data = a_proposal_submitted()
    deliver(uow, proposal_event(data))
    deliver(uow, screening_event(data.proposal_id))
    assert deliver(uow, screening_event(data.proposal_id)) == "applied"  # a new event, not a redelivery
    assert len(uow.published) == 1


@pytest.mark.parametrize("screening_first", [False, True], ids=["proposal-first", "screening-first"])
def test_a_failed_screening_never_publishes(uow, screening_first):
    data = a_proposal_submitted()
    events = [proposal_event(data), screening_event(data.proposal_id, passed=False)]
    if screening_first:
        events.reverse()
    for event in events:
        deliver(uow, event)
    assert uow.published == []
    assert handlers.get_result(data.proposal_id, uow) is None
    assert handlers.search_results(SearchQuery(), uow).items == []


def test_results_are_listed_newest_first_and_page_on(uow):
    ids = []
    for n in range(3):
        data, at = a_proposal_submitted(), WHEN + timedelta(minutes=n)
        for event in (proposal_event(data), screening_event(data.proposal_id)):
            deliver(uow, event.model_copy(update={"time": at}))
        ids.append(data.proposal_id)
    first = handlers.search_results(SearchQuery(limit=2), uow)
    assert [r.proposal_id for r in first.items] == [ids[2], ids[1]]
    rest = handlers.search_results(SearchQuery(limit=2, cursor=first.next_cursor), uow)
    assert [r.proposal_id for r in rest.items] == [ids[0]] and rest.next_cursor is None


# property: the published Result never carries personal data ---------------------------------
PLAIN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=12, max_size=60).filter(str.strip)
emails = st.from_regex(r"[a-z0-9._]{1,20}@[a-z0-9-]{1,20}\.(fi|com|org)", fullmatch=True)


@st.composite
def submissions(draw):
    kind = draw(st.sampled_from(list(ProposerKind)))
    # "Org:" marks the organisation so it cannot coincide with the free text (which has no ':').
    # No '@': a word with an '@' and a dot after it is redacted as a possible address (kokeilu.privacy).
    organisation = "Org:" + draw(
        st.text(st.characters(codec="utf-8", exclude_characters="\x00@"), min_size=1, max_size=80).filter(
            lambda s: s.strip()
        )
    )
    body = submission(
        title=draw(PLAIN),
        summary=draw(PLAIN) + " a pilot of the city programme",
        hypothesis=draw(st.none() | PLAIN),
        focus_area=draw(st.sampled_from(list(FocusArea))).value,
        environment=draw(st.sampled_from(list(Environment))).value,
        partners=draw(st.lists(PLAIN, max_size=3)),
        proposer={"organisation": organisation, "kind": kind.value, "contact_email": draw(emails)},
    )
    return a_submission(**body)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(submission=submissions(), screening_first=st.booleans())
def test_a_published_result_never_contains_contact_details_or_a_residents_name(submission, screening_first):
    uow = FakeCatalogueUnitOfWork()
    # The same path a submission takes: the proposals service makes the event, the catalogue reads it.
    data = Proposal.submit("7f0c6d9e-0000-4000-8000-000000000001", submission, WHEN, "http").submitted_event()
    events = [proposal_event(data), screening_event(data.proposal_id)]
    if screening_first:
        events.reverse()
    for event in events:
        deliver(uow, event)

    [out] = uow.published
    wire = json.loads(out.to_bytes())
    strings = leaf_strings(wire)
    email = submission.proposer.contact_email
    organisation = submission.proposer.organisation
    assert not any(email in s for s in strings)
    assert "contact_email" not in strings
    if submission.proposer.kind is ProposerKind.resident:
        assert wire["data"].get("organisation") is None
        assert not any(organisation in s for s in strings)
    else:
        assert wire["data"]["organisation"] == organisation


# a result through its lifecycle, from raw events as on the topics --------------------------------
def deliver_raw(uow, raw: dict) -> str:
    """A raw event, as on a topic."""
    event = parse_envelope(json.dumps(raw).encode())
    return handlers.apply(event, decode(event), uow, CONTACT_UNIT)


def public(uow) -> list[tuple[str, dict]]:
    return [(o.event.type.rsplit(".", 1)[1], json.loads(o.event.to_bytes())["data"]) for o in uow.outbox]


lifecycle = ev.pilot_lifecycle


def test_a_result_is_published_then_updated_through_its_lifecycle():
    uow = FakeCatalogueUnitOfWork()
    outcomes = [deliver_raw(uow, e) for e in lifecycle("p-1")]
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
        deliver_raw(expected, e)
    uow = FakeCatalogueUnitOfWork()
    for i in order:
        deliver_raw(uow, events[i])
    assert handlers.get_result("p-1", uow) == handlers.get_result("p-1", expected)
    assert handlers.get_result("p-1", uow).status.value == "piloting"


@pytest.mark.parametrize("closing", [ev.decided("p-1", "rejected"), ev.status("p-1", "in_evaluation", "withdrawn")])
def test_a_proposal_closed_before_its_pilot_is_withdrawn(closing):
    uow = FakeCatalogueUnitOfWork()
    for e in (ev.submitted("p-1"), ev.screened("p-1"), closing):
        deliver_raw(uow, e)
    kind, data = public(uow)[-1]
    assert kind == "withdrawn" and data["result_id"] == "p-1"
    assert handlers.get_result("p-1", uow) is None


def test_a_proposal_closed_before_it_was_ever_published_publishes_nothing():
    uow = FakeCatalogueUnitOfWork()
    for e in (ev.decided("p-1", "rejected"), ev.submitted("p-1"), ev.screened("p-1")):
        deliver_raw(uow, e)
    assert uow.outbox == []


def test_a_pilot_stopped_midway_stays_with_its_lessons():
    uow = FakeCatalogueUnitOfWork()
    for e in (
        *lifecycle("p-1")[:5],
        ev.completed("p-1", "stop", lessons="Too few riders in winter."),
        ev.status("p-1", "piloting", "withdrawn", time="2026-09-01T00:00:00Z"),
    ):
        deliver_raw(uow, e)
    result = handlers.get_result("p-1", uow)
    assert result.outcome.value == "stop" and result.lessons_learned == "Too few riders in winter."


def test_a_later_revision_updates_the_result_and_an_older_one_does_not():
    uow = FakeCatalogueUnitOfWork()
    for e in (
        ev.submitted("p-1", revision=2, title="Second take"),
        ev.screened("p-1"),
        ev.submitted("p-1", title="First take"),
    ):
        deliver_raw(uow, e)
    assert handlers.get_result("p-1", uow).title == "Second take"


def test_an_id_the_catalogue_would_not_publish_is_refused_for_good():
    with pytest.raises(PermanentError):
        deliver_raw(FakeCatalogueUnitOfWork(), ev.submitted("x@example.com"))


# property: nothing personal on kokeilu.results.v1, whatever the proposer wrote ---------------
ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# No NUL: the contracts refuse it (kokeilu/contracts/bounds.py), as no store can hold it.
words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"), max_size=60
)
any_emails = st.from_regex(r"[a-z0-9._%+-]{1,20}@[a-z0-9-]{1,20}\.(fi|com|org)", fullmatch=True)
# A resident's name: two capitalised words, so it cannot coincide with a field name or enum value.
names = st.tuples(
    st.from_regex(r"[A-ZÄÖ][a-zäö]{2,10}", fullmatch=True), st.from_regex(r"[A-ZÄÖ][a-zäö]{2,12}", fullmatch=True)
).map(" ".join)


@st.composite
def free_text(draw, name):
    parts = draw(st.lists(st.one_of(words, any_emails, st.just(name), st.just(name.upper())), min_size=1, max_size=5))
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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_no_result_event_ever_carries_an_email_address_or_a_residents_name(history):
    resident, events = history
    uow = FakeCatalogueUnitOfWork()
    for e in events:
        deliver_raw(uow, e)
    for out in uow.outbox:
        wire = json.loads(out.event.to_bytes())
        for s in leaf_strings(wire):
            assert not ADDRESS.search(s), s
            if resident:
                assert resident.lower() not in s.lower(), s
        assert CloudEvent.model_validate(wire).type.startswith("fi.espoo.kokeilu.result.")


# the fake's search answers as the real store's does ------------------------------------------
@pytest.fixture
def real_uow(tmp_path):
    from services.catalogue.store import CatalogueUnitOfWork
    from tests.support import database

    db = database(tmp_path, "catalogue")
    yield lambda: CatalogueUnitOfWork(db)
    db.dispose()


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"focus_area": "learning"},
        {"environment": "kera,school"},
        {"q": "shuttle"},
        {"q": "reading buddies"},
        {"sort": "title"},
        {"status": "in_evaluation", "limit": 1},
        {"year": "2025"},
        {"q": "nothing-matches-this"},
    ],
    ids=lambda q: json.dumps(q),
)
def test_the_fake_search_answers_as_the_real_one(uow, real_uow, query):
    bodies = [
        dict(title="Autonomous shuttle feeder for Kera station", focus_area="smart_mobility", environment="kera"),
        dict(
            title="Reading buddies at Kera school",
            focus_area="learning",
            environment="school",
            summary="Older pupils read with younger ones twice a week, logging progress.",
        ),
        dict(
            title="Bike lanes on the Waterfront Walkway",
            focus_area="sustainable_development",
            environment="waterfront_walkway",
        ),
    ]
    for n, body in enumerate(bodies):
        data = a_proposal_submitted(f"7f0c6d9e-0000-4000-8000-00000000000{n}", **body)
        for event in (proposal_event(data), screening_event(data.proposal_id)):
            event = event.model_copy(update={"time": WHEN + timedelta(minutes=n)})
            deliver(uow, event)
            deliver(real_uow(), event)
    q = SearchQuery.model_validate(query)
    fake, real = handlers.search_results(q, uow), handlers.search_results(q, real_uow())
    fake_ids, real_ids = [r.result_id for r in fake.items], [r.result_id for r in real.items]
    if q.order == "relevance":  # ranking is the database's own (bm25 or ts_rank): compare what was found
        fake_ids, real_ids = sorted(fake_ids), sorted(real_ids)
    assert fake_ids == real_ids
    assert (fake.total, fake.facets) == (real.total, real.facets)
    assert (fake.next_cursor is None) == (real.next_cursor is None)


def test_the_catalogue_declares_to_its_consumer_exactly_the_events_it_applies():
    # The consumer skips other types without a worker (handlers.HANDLED): a type added to
    # _fact but not to HANDLED would be silently ignored.
    from types import SimpleNamespace

    from kokeilu.contracts import catalog, topics
    from services.catalogue import handlers

    read = [t for t in catalog.ALL if t.topic in (topics.PROPOSALS, topics.EVALUATIONS)]
    applied = {
        t.name for t in read if handlers._fact(SimpleNamespace(time=None), t.model.model_construct()) is not None
    }
    assert applied == {t.name for t in handlers.HANDLED}
