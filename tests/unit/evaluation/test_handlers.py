"""Evaluation use cases on the real store: panels, conflicts, scores, decisions, SLA, revisions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kokeilu.contracts import decode, utcnow
from kokeilu.contracts.proposals import ProposalRevised, ProposalStatusChanged, ProposalSubmitted
from kokeilu.contracts.sources import service_source
from services.evaluation import handlers
from services.evaluation.domain import CRITERIA, NotAssigned
from services.evaluation.screening import ScreeningPolicy
from services.evaluation.settings import Workflow
from services.evaluation.store import EvaluationUnitOfWork
from tests.unit.workflow.support import WHEN, database, event, new_id, outbox, redelivery

WF = Workflow(panels={"learning": ["helmi", "juha", "kaisa", "pekka"]}, evaluators_per_proposal=3)
POLICY = ScreeningPolicy()


@pytest.fixture
def db(tmp_path):
    d = database(tmp_path, "evaluation")
    yield d
    d.dispose()


@pytest.fixture
def uow(db):
    return lambda: EvaluationUnitOfWork(db)


def submitted(pid=None, title=None, **overrides):
    pid = pid or new_id()
    data = {
        "proposal_id": pid,
        "title": title or f"Reading buddies {pid}",
        "summary": "Older pupils read with younger ones twice a week, with a tablet app to log progress.",
        "focus_area": "learning",
        "environment": "school",
        "proposer": {"organisation": "Kera school", "kind": "school"},
        "hypothesis": "Reading buddies raise reading fluency.",
        "kpis": [{"name": "words per minute", "unit": "wpm", "baseline": 60, "target": 80}],
        "budget_eur": 20000,
        "duration_weeks": 20,
        "language": "fi",
        "submitted_at": WHEN,
        "external_funding_sought": True,
    }
    data.update(overrides)
    return event("proposal.submitted", ProposalSubmitted.model_validate(data), source=service_source("proposals"))


def screen(uow, e, wf=WF):
    return handlers.on_proposal_submitted(e, decode(e), uow(), POLICY, wf)


def sheet(v):
    return {c: v for c in CRITERIA}


def of(db, pid, short):
    return [e for e in outbox(db, short) if e.subject == pid]


def test_a_passing_proposal_gets_a_balanced_panel_in_the_same_transaction(db, uow):
    first, second = submitted(), submitted()
    screen(uow, first)
    screen(uow, second)
    [opened1] = of(db, first.subject, "opened")
    [opened2] = of(db, second.subject, "opened")
    assert opened1.data["evaluators"] == ["helmi", "juha", "kaisa"]
    assert opened2.data["evaluators"][0] == "pekka", "the least-loaded goes first"
    assert set(opened2.data["evaluators"]) == {"pekka", "helmi", "juha"}
    assert [e.type.rsplit(".", 1)[-1] for e in outbox(db) if e.subject == first.subject] == ["completed", "opened"]


def test_a_failing_proposal_gets_no_panel_and_a_duplicate_title_fails(db, uow):
    screen(uow, submitted(title="Reading buddies at Kera school"))
    dup = submitted(title="Reading Buddies at Kera School")
    screen(uow, dup)
    [completed] = of(db, dup.subject, "screening.completed")
    assert [f["rule"] for f in completed.data["failed_rules"]] == ["duplicate"]
    assert of(db, dup.subject, "opened") == []


def test_a_closed_proposal_no_longer_counts_as_a_duplicate(db, uow):
    first = submitted(title="Solar benches on the walkway")
    screen(uow, first)
    change = event(
        "proposal.status-changed",
        ProposalStatusChanged(
            proposal_id=first.subject, from_status="in_evaluation", to_status="withdrawn", changed_at=WHEN
        ),
        source=service_source("proposals"),
    )
    assert handlers.on_status_changed(change, decode(change), uow()) == "applied"
    assert handlers.get_evaluation(first.subject, uow(), manager=True)["evaluation"]["status"] == "closed"
    again = submitted(title="Solar benches on the walkway")
    screen(uow, again)
    assert of(db, again.subject, "screening.completed")[0].data["passed"] is True


def test_conflict_replacement_scores_and_the_decision(db, uow):
    e = submitted()
    pid = e.subject
    screen(uow, e)
    with pytest.raises(NotAssigned):
        handlers.submit_scores(pid, "pekka", sheet(5), None, uow(), WF)
    ev = handlers.declare_conflict(pid, "helmi", True, "I advise the school", uow(), WF)
    assert ev.evaluators == ["juha", "kaisa", "pekka"]
    for name, score in (("juha", 4), ("kaisa", 4), ("pekka", 5)):
        handlers.declare_conflict(pid, name, False, None, uow(), WF)
        assert of(db, pid, "decided") == []
        handlers.submit_scores(pid, name, sheet(score), "ok", uow(), WF)
    [decided] = of(db, pid, "decided")
    assert decided.data["decision"] == "approved"
    assert decided.data["weighted_score"] == pytest.approx(4.333, abs=0.001)
    assert decided.data["criterion_averages"]["impact"] == pytest.approx(4.333, abs=0.001)
    assert decided.data["external_funding_recommended"] is True and decided.data["threshold"] == 3.5
    view = handlers.get_evaluation(pid, uow(), "juha")
    assert view["evaluation"]["status"] == "decided" and view["evaluation"]["scores_revealed"]


def test_overdue_is_emitted_once(db, uow):
    e = submitted()
    screen(uow, e, Workflow(panels=WF.panels, evaluation_sla_hours=1))
    assert handlers.flag_overdue(uow(), utcnow()) == 0
    later = utcnow() + timedelta(hours=2)
    assert handlers.flag_overdue(uow(), later) == 1
    assert handlers.flag_overdue(uow(), later + timedelta(hours=1)) == 0
    [overdue] = of(db, e.subject, "overdue")
    assert overdue.data["sla_hours"] == 1


def test_a_revision_is_screened_again_and_evaluated_by_a_new_panel(db, uow):
    e = submitted()
    pid = e.subject
    screen(uow, e)
    revised = event(
        "proposal.revised",
        ProposalRevised.model_validate(
            {**decode(e).model_dump(exclude={"submitted_at"}), "revision": 2, "revised_at": WHEN}
        ),
        source=service_source("proposals"),
    )
    assert handlers.on_proposal_revised(revised, decode(revised), uow(), POLICY, WF) == "applied"
    assert len(of(db, pid, "screening.completed")) == 2, "its own earlier title is no duplicate"
    assert of(db, pid, "screening.completed")[1].data["passed"] is True
    view = handlers.get_evaluation(pid, uow(), manager=True)
    assert view["revision"] == 2 and view["evaluation"]["revision"] == 2


def test_a_redelivered_proposal_event_changes_nothing(db, uow):
    e = submitted()
    screen(uow, e)
    before = outbox(db)
    assert screen(uow, redelivery(e)) == "duplicate"
    assert outbox(db) == before
