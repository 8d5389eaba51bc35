"""The evaluation service's use cases, each run on both stores (the in-memory fake and the real
store on a SQLite file of the test's own): screening, panels, conflicts, scores, decisions, SLA,
revisions, redelivery."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kokeilu.contracts import catalog as types
from kokeilu.contracts import decode, topics, utcnow
from kokeilu.contracts.proposals import Environment, ProposalRevised, ProposalStatusChanged
from kokeilu.contracts.sources import service_source
from services.evaluation import handlers
from services.evaluation.domain import CRITERIA, NotAssigned, UnknownEvaluation
from services.evaluation.screening import ScreeningPolicy
from services.evaluation.settings import Workflow
from services.evaluation.store import EvaluationUnitOfWork
from tests.builders import WHEN, a_proposal_submitted, an_event, new_id, redelivery_of
from tests.support import Store
from tests.unit.fakes import FakeEvaluationUnitOfWork

WF = Workflow(panels={"learning": ["helmi", "juha", "kaisa", "pekka"]}, evaluators_per_proposal=3)
POLICY = ScreeningPolicy()


@pytest.fixture(params=["fake", "sqlite"])
def store(request, tmp_path):
    s = Store(request.param, tmp_path, "evaluation", FakeEvaluationUnitOfWork, EvaluationUnitOfWork)
    yield s
    s.close()


def submitted(pid=None, title=None, **overrides):
    """A proposal of the learning panel's (WF), as the proposals service publishes it."""
    pid = pid or new_id()
    fields = {"focus_area": "learning", "environment": "school", "budget_eur": 20000, "external_funding_sought": True}
    data = a_proposal_submitted(pid, title=title or f"Reading buddies {pid}", **{**fields, **overrides})
    return an_event(types.PROPOSAL_SUBMITTED, data, source=service_source("proposals"))


def screen(store, e, wf=WF, policy=POLICY):
    return handlers.on_proposal_submitted(e, decode(e), store.uow(), policy, wf)


def sheet(v):
    return {c: v for c in CRITERIA}


def of(store, pid, short):
    return [e for e in store.published(short) if e.subject == pid]


# screening -------------------------------------------------------------------------------------
def test_a_passing_proposal_publishes_a_passed_screening_and_opens_its_evaluation(store):
    data = a_proposal_submitted()
    event = an_event(types.PROPOSAL_SUBMITTED, data, source=service_source("proposals"))
    assert handlers.on_proposal_submitted(event, data, store.uow(), POLICY) == "applied"  # the default workflow
    if store.fake is not None:
        assert store.fake.commits == 1, "screening and panel in one transaction"
    assert [(topic, key) for topic, key, _ in store.records()] == [(topics.EVALUATIONS, data.proposal_id)] * 2
    screened, opened = store.published()
    assert [screened.type, opened.type] == [types.SCREENING_COMPLETED.name, types.EVALUATION_OPENED.name]
    outcome = decode(screened, topics.EVALUATIONS)
    assert outcome.proposal_id == data.proposal_id
    assert outcome.passed is True
    assert outcome.failed_rules == []
    assert screened.causationid == opened.causationid == event.id
    panel = decode(opened, topics.EVALUATIONS)
    assert panel.focus_area == data.focus_area.value
    assert len(panel.evaluators) == Workflow().evaluators_per_proposal
    assert set(panel.evaluators) <= set(Workflow().panels[data.focus_area.value])
    assert store.read(lambda u: u.screenings.get(data.proposal_id))["screening"]["passed"] is True
    assert store.read(lambda u: u.evaluations.current(data.proposal_id)).evaluators == panel.evaluators


def test_a_failing_proposal_publishes_a_screening_naming_the_failed_rules(store):
    e = submitted(hypothesis=None, budget_eur=500_000)
    screen(store, e)
    [out] = store.published(types.SCREENING_COMPLETED.name)
    outcome = decode(out)
    assert outcome.passed is False
    assert [f.rule for f in outcome.failed_rules] == ["completeness", "budget_cap"]
    assert "a hypothesis" in outcome.failed_rules[0].reason
    stored = handlers.get_evaluation(e.subject, store.uow())
    assert [f["rule"] for f in stored["screening"]["failed_rules"]] == ["completeness", "budget_cap"]
    assert stored["focus_area"] == "learning"
    assert stored["evaluation"] is None, "a failed screening opens no evaluation"
    assert store.published(types.EVALUATION_OPENED.name) == []


def test_screening_uses_the_policy_it_is_given(store):
    screen(store, submitted(environment="west_metro"), policy=ScreeningPolicy(eligible_environments={Environment.kera}))
    assert [f.rule for f in decode(store.published()[0]).failed_rules] == ["eligible_environment"]


def test_a_duplicate_title_fails_screening_and_gets_no_panel(store):
    screen(store, submitted(title="Reading buddies at Kera school"))
    dup = submitted(title="Reading Buddies at Kera School")
    screen(store, dup)
    [completed] = of(store, dup.subject, "screening.completed")
    assert [f["rule"] for f in completed.data["failed_rules"]] == ["duplicate"]
    assert of(store, dup.subject, "opened") == []


def test_a_closed_proposal_no_longer_counts_as_a_duplicate(store):
    first = submitted(title="Solar benches on the walkway")
    screen(store, first)
    change = an_event(
        types.PROPOSAL_STATUS_CHANGED,
        ProposalStatusChanged(
            proposal_id=first.subject, from_status="in_evaluation", to_status="withdrawn", changed_at=WHEN
        ),
        source=service_source("proposals"),
    )
    assert handlers.on_status_changed(change, decode(change), store.uow()) == "applied"
    assert handlers.get_evaluation(first.subject, store.uow(), manager=True)["evaluation"]["status"] == "closed"
    again = submitted(title="Solar benches on the walkway")
    screen(store, again)
    assert of(store, again.subject, "screening.completed")[0].data["passed"] is True


def test_a_redelivered_proposal_is_screened_once(store):
    e = submitted()
    assert screen(store, e) == "applied"
    published, inbox = store.published(), store.inbox_size()
    view = handlers.get_evaluation(e.subject, store.uow(), manager=True)
    assert screen(store, redelivery_of(e)) == "duplicate"
    assert [x.type for x in published] == [types.SCREENING_COMPLETED.name, types.EVALUATION_OPENED.name]
    assert store.published() == published and store.inbox_size() == inbox
    assert handlers.get_evaluation(e.subject, store.uow(), manager=True) == view


def test_no_evaluation_for_a_proposal_never_screened(store):
    with pytest.raises(UnknownEvaluation):
        handlers.get_evaluation("nope", store.uow())


# panels, scores and the decision -----------------------------------------------------------------
def test_a_passing_proposal_gets_a_balanced_panel(store):
    first, second = submitted(), submitted()
    screen(store, first)
    screen(store, second)
    [opened1] = of(store, first.subject, "opened")
    [opened2] = of(store, second.subject, "opened")
    assert opened1.data["evaluators"] == ["helmi", "juha", "kaisa"]
    assert opened2.data["evaluators"][0] == "pekka", "the least-loaded goes first"
    assert set(opened2.data["evaluators"]) == {"pekka", "helmi", "juha"}


def test_conflict_replacement_scores_and_the_decision(store):
    e = submitted()
    pid = e.subject
    screen(store, e)
    with pytest.raises(NotAssigned):
        handlers.submit_scores(pid, "pekka", sheet(5), None, store.uow(), WF)
    ev = handlers.declare_conflict(pid, "helmi", True, "I advise the school", store.uow(), WF)
    assert ev.evaluators == ["juha", "kaisa", "pekka"]
    for name, score in (("juha", 4), ("kaisa", 4), ("pekka", 5)):
        handlers.declare_conflict(pid, name, False, None, store.uow(), WF)
        assert of(store, pid, "decided") == []
        handlers.submit_scores(pid, name, sheet(score), "ok", store.uow(), WF)
    [decided] = of(store, pid, "decided")
    assert decided.data["decision"] == "approved"
    assert decided.data["weighted_score"] == pytest.approx(4.333, abs=0.001)
    assert decided.data["criterion_averages"]["impact"] == pytest.approx(4.333, abs=0.001)
    assert decided.data["external_funding_recommended"] is True and decided.data["threshold"] == 3.5
    view = handlers.get_evaluation(pid, store.uow(), "juha")
    assert view["evaluation"]["status"] == "decided" and view["evaluation"]["scores_revealed"]


def test_overdue_is_emitted_once(store):
    e = submitted()
    screen(store, e, Workflow(panels=WF.panels, evaluation_sla_hours=1))
    assert handlers.flag_overdue(store.uow(), utcnow()) == 0
    later = utcnow() + timedelta(hours=2)
    assert handlers.flag_overdue(store.uow(), later) == 1
    assert handlers.flag_overdue(store.uow(), later + timedelta(hours=1)) == 0
    [overdue] = of(store, e.subject, "overdue")
    assert overdue.data["sla_hours"] == 1


def test_a_revision_is_screened_again_and_evaluated_by_a_new_panel(store):
    e = submitted()
    pid = e.subject
    screen(store, e)
    revised = an_event(
        types.PROPOSAL_REVISED,
        ProposalRevised.model_validate(
            {**decode(e).model_dump(exclude={"submitted_at"}), "revision": 2, "revised_at": WHEN}
        ),
        source=service_source("proposals"),
    )
    assert handlers.on_proposal_revised(revised, decode(revised), store.uow(), POLICY, WF) == "applied"
    assert len(of(store, pid, "screening.completed")) == 2, "its own earlier title is no duplicate"
    assert of(store, pid, "screening.completed")[1].data["passed"] is True
    view = handlers.get_evaluation(pid, store.uow(), manager=True)
    assert view["revision"] == 2 and view["evaluation"]["revision"] == 2
