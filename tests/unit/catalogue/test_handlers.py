"""The catalogue service: assembling an entry from events in any order, and what it publishes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kokeilu.contracts import catalog as types
from kokeilu.contracts import decode, topics
from kokeilu.contracts.proposals import Environment, FocusArea, ProposerKind
from kokeilu.contracts.results import LICENCE, ResultStatus
from kokeilu.contracts.sources import service_source
from services.catalogue import handlers
from services.catalogue.domain import Entry
from services.catalogue.search import SearchQuery
from services.proposals.domain import Proposal
from tests.unit.examples import (
    WHEN,
    a_proposal_submitted,
    a_screening,
    a_submission,
    an_event,
    leaf_strings,
    redelivery_of,
    submission_body,
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
    body = submission_body(
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


# the fake's search answers as the real store's does ------------------------------------------
@pytest.fixture
def real_uow(tmp_path):
    from services.catalogue.store import CatalogueUnitOfWork
    from tests.unit.workflow.support import database

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
