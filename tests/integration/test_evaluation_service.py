"""The evaluation service as a real process: screens proposal.submitted events from the broker."""

import json
import uuid

import pytest

from kokeilu.contracts import topics
from kokeilu.contracts.sources import service_source
from tests.builders import cloudevent
from tests.support import headers_of

pytestmark = pytest.mark.kafka

SCREENED = "fi.espoo.kokeilu.screening.completed"


@pytest.fixture(scope="module")
def evaluation(module_platform):
    return module_platform.start("evaluation")


def submitted(proposal_id: str, **overrides) -> dict:
    data = {
        # a title of its own: the duplicate rule fails near-identical titles of open proposals
        "proposal_id": proposal_id,
        "title": f"Reading buddies {uuid.uuid4().hex}",
        "summary": "Older pupils read with younger ones twice a week, with a tablet app to log progress.",
        "focus_area": "learning",
        "environment": "school",
        "proposer": {"organisation": "Kera school", "kind": "school"},
        "hypothesis": "Reading buddies raise reading fluency.",
        "kpis": [{"name": "words per minute", "unit": "wpm", "baseline": 60, "target": 80}],
        "budget_eur": 20000,
        "duration_weeks": 20,
        "language": "fi",
        "submitted_at": "2026-11-28T10:00:00Z",
    }
    data.update(overrides)
    return cloudevent(
        "fi.espoo.kokeilu.proposal.submitted", data, subject=proposal_id, source=service_source("proposals")
    )


def screening_of(platform, probe, proposal_id):
    [event] = probe.events(platform.topic(topics.EVALUATIONS), SCREENED, where=lambda e: e["subject"] == proposal_id)
    return event


def test_a_complete_proposal_within_budget_passes(evaluation, probe):
    pid = str(uuid.uuid4())
    sent = submitted(pid)
    probe.send(evaluation.topic(topics.PROPOSALS), sent, key=pid)
    event = screening_of(evaluation, probe, pid)
    assert event["data"]["passed"] is True and event["data"]["failed_rules"] == []
    assert event["causationid"] == sent["id"]
    view = evaluation.get("evaluation", f"/v1/evaluations/{pid}").json()
    assert view["screening"]["passed"] is True


def test_every_failed_rule_is_named(evaluation, probe):
    pid = str(uuid.uuid4())
    probe.send(
        evaluation.topic(topics.PROPOSALS), submitted(pid, hypothesis=None, kpis=[], budget_eur=1_000_000), key=pid
    )
    event = screening_of(evaluation, probe, pid)
    assert event["data"]["passed"] is False
    rules = {f["rule"]: f["reason"] for f in event["data"]["failed_rules"]}
    assert set(rules) == {"completeness", "budget_cap"}
    assert "hypothesis" in rules["completeness"] and "KPI" in rules["completeness"]
    assert "100,000" in rules["budget_cap"]


def test_a_redelivered_event_is_screened_once(evaluation, probe):
    pid = str(uuid.uuid4())
    event = submitted(pid)
    probe.send(evaluation.topic(topics.PROPOSALS), event, key=pid)
    probe.send(evaluation.topic(topics.PROPOSALS), event, key=pid)
    marker = str(uuid.uuid4())
    probe.send(evaluation.topic(topics.PROPOSALS), submitted(marker), key=pid)  # same partition, after both
    screening_of(evaluation, probe, marker)
    same = probe.records(
        evaluation.topic(topics.EVALUATIONS),
        lambda r: r.key == pid.encode() and json.loads(r.value)["type"] == SCREENED,
        count=1,
    )
    assert len(same) == 1


def test_a_malformed_proposal_event_is_dead_lettered(evaluation, probe):
    value = json.dumps(cloudevent("fi.espoo.kokeilu.proposal.submitted", {"proposal_id": "x"})).encode()
    probe.send(evaluation.topic(topics.PROPOSALS), value, key="x")
    [dead] = probe.records(evaluation.topic(topics.DEADLETTER), lambda r: r.value == value)
    headers = headers_of(dead)
    assert headers["kokeilu.service"] == "evaluation" and headers["kokeilu.reason"] == "invalid"
    assert "title" in headers["kokeilu.error"]


def test_a_locked_store_is_retried_until_it_frees_and_nothing_is_lost(evaluation, probe):
    import sqlite3

    from tests.support import wait_until

    db = sqlite3.connect(evaluation.tmp / "data" / "evaluation.db", timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout=0")
        db.execute("BEGIN EXCLUSIVE")  # another writer holds the file: the service's writes fail as transient
        pid = str(uuid.uuid4())
        probe.send(evaluation.topic(topics.PROPOSALS), submitted(pid), key=pid)

        def retried():
            text = evaluation.get("evaluation", "/metrics", headers={}).text
            return any(
                line.startswith('kokeilu_transient_retries_total{service="evaluation",stage="apply"}')
                for line in text.splitlines()
            )

        wait_until(retried, timeout=90, what="the consumer to retry the locked store")
    finally:
        db.execute("ROLLBACK")
        db.close()
    event = screening_of(evaluation, probe, pid)
    assert event["data"]["passed"] is True
