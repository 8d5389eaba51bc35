"""The experiment workflow end to end on the real broker: intake -> screening -> panel ->
conflicts -> blind scores -> decision -> pilot -> measurement -> completion, with the
proposals and evaluation services as real processes."""

from __future__ import annotations

import re
import uuid

import pytest

from kokeilu.contracts import topics
from tests.builders import cloudevent, submission
from tests.integration.workflow_support import EVALUATORS, TOKENS, auth, drain
from tests.support import Platform, wait_until

pytestmark = pytest.mark.kafka

T = "fi.espoo.kokeilu."
MANAGER = auth("manager")


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    p = Platform(
        tmp_path_factory.mktemp("workflow"),
        extra_env={
            "KOKEILU_TOKENS": TOKENS,
            # an SLA of under two seconds, so that the overdue clock is seen to run
            "KOKEILU_EVALUATION_SLA_HOURS": "0.0005",
            "KOKEILU_OVERDUE_CHECK_SECONDS": "0.5",
        },
    )
    p.start("proposals", "evaluation")
    yield p
    p.stop()


def events(platform, topic, type_, pid):
    return drain(platform.topic(topic), lambda e: e.get("type") == T + type_ and e.get("subject") == pid)


def wait_event(platform, probe, topic, type_, pid, where=lambda e: True):
    return probe.events(platform.topic(topic), T + type_, where=lambda e: e["subject"] == pid and where(e))[0]


def status_of(platform, pid):
    return platform.get("proposals", f"/v1/proposals/{pid}", headers=MANAGER).json()["status"]


def wait_status(platform, pid, status):
    wait_until(lambda: status_of(platform, pid) == status, timeout=45, what=f"{pid} to be {status}")


def unique_title(words: str) -> str:
    return f"{words} {uuid.uuid4().hex}"


def in_evaluation_via_http(platform, **overrides) -> tuple[str, list[str]]:
    created = platform.post(
        "proposals", "/v1/proposals", submission(title=unique_title("Kera pilot"), **overrides), headers=MANAGER
    )
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    wait_status(platform, pid, "in_evaluation")
    view = platform.get("evaluation", f"/v1/evaluations/{pid}", headers=MANAGER).json()
    return pid, [a["evaluator"] for a in view["evaluation"]["assignments"] if not a["recused"]]


def score_all(platform, pid, evaluators, value):
    for name in evaluators:
        assert (
            platform.post(
                "evaluation", f"/v1/evaluations/{pid}/conflict", {"conflict": False}, headers=auth(name)
            ).status_code
            == 200
        )
        sheet = {c: value for c in ("strategy_fit", "feasibility", "impact", "sustainability", "reuse_scalability")}
        response = platform.post("evaluation", f"/v1/evaluations/{pid}/scores", {"scores": sheet}, headers=auth(name))
        assert response.status_code == 200, response.text


def test_the_whole_path_from_intake_to_a_completed_pilot(platform, probe):
    title = unique_title("Autonomous shuttle feeder")
    intake = cloudevent(
        T + "intake.proposal",
        submission(title=title, external_funding_sought=True),
        source="e-services-portal",
        event_id=f"portal-{uuid.uuid4().hex[:8]}",
    )
    probe.send(platform.topic(topics.INTAKE), intake, key=intake["id"])

    def created():
        items = platform.get(
            "proposals", "/v1/proposals?status=in_evaluation&focus_area=smart_mobility", headers=MANAGER
        ).json()["items"]
        return [p for p in items if p["title"] == title]

    [proposal] = wait_until(created, timeout=45, what="the intake proposal to pass screening")
    pid = proposal["id"]
    assert proposal["source"] == "e-services-portal" and proposal["allowed_actions"] == [
        "approve",
        "reject",
        "request_revision",
        "withdraw",
    ]

    opened = wait_event(platform, probe, topics.EVALUATIONS, "evaluation.opened", pid)
    panel = opened["data"]["evaluators"]
    assert len(panel) == 3 and set(panel) < set(EVALUATORS)
    spare = (set(EVALUATORS) - set(panel)).pop()

    # conflict of interest: the first evaluator is recused and the spare panel member steps in
    conflicted = panel[0]
    declared = platform.post(
        "evaluation",
        f"/v1/evaluations/{pid}/conflict",
        {"conflict": True, "reason": "I advise the proposer"},
        headers=auth(conflicted),
    )
    assert declared.status_code == 200, declared.text
    queue = platform.get("evaluation", "/v1/evaluations/queue", headers=auth(spare)).json()["items"]
    assert pid in [item["proposal_id"] for item in queue]
    sheet = {"strategy_fit": 4, "feasibility": 4, "impact": 5, "sustainability": 4, "reuse_scalability": 4}
    refused = platform.post("evaluation", f"/v1/evaluations/{pid}/scores", {"scores": sheet}, headers=auth(conflicted))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_assigned"

    # the SLA of under two seconds passes while the panel is still at work: overdue is said (once)
    overdue = wait_event(platform, probe, topics.EVALUATIONS, "evaluation.overdue", pid)
    assert overdue["data"]["sla_hours"] == pytest.approx(0.0005)
    manager_view = platform.get("evaluation", "/v1/evaluations?overdue=true", headers=MANAGER).json()["items"]
    assert pid in [e["proposal_id"] for e in manager_view]

    panel = panel[1:] + [spare]
    for i, name in enumerate(panel):
        assert (
            platform.post(
                "evaluation", f"/v1/evaluations/{pid}/conflict", {"conflict": False}, headers=auth(name)
            ).status_code
            == 200
        )
        scored = platform.post(
            "evaluation",
            f"/v1/evaluations/{pid}/scores",
            {"scores": sheet, "comment": "fits the Espoo Story"},
            headers=auth(name),
        )
        assert scored.status_code == 200, scored.text
        if i == 0:  # blind: the next evaluator sees no one else's numbers yet
            other = platform.get("evaluation", f"/v1/evaluations/{pid}", headers=auth(panel[1])).json()["evaluation"]
            assert not other["scores_revealed"]
            assert all(a["evaluator"] == panel[1] for a in other["assignments"])

    decided = wait_event(platform, probe, topics.EVALUATIONS, "evaluation.decided", pid)["data"]
    assert decided["decision"] == "approved" and decided["weighted_score"] == pytest.approx(4.2)
    assert decided["criterion_averages"]["impact"] == 5 and decided["external_funding_recommended"] is True
    assert not any(name in decided["rationale"] for name in EVALUATORS)
    wait_status(platform, pid, "approved")

    started = platform.post("proposals", f"/v1/proposals/{pid}/pilot/start", {}, headers=MANAGER)
    assert started.status_code == 200 and started.json()["status"] == "piloting"
    wait_event(platform, probe, topics.PROPOSALS, "pilot.started", pid)

    measurement = cloudevent(
        T + "intake.measurement",
        {"proposal_id": pid, "kpi": "daily riders", "value": 87, "measured_at": "2026-12-01T08:00:00Z"},
        source="sensors/kera",
        event_id=f"sensor-{uuid.uuid4().hex[:8]}",
    )
    probe.send(platform.topic(topics.INTAKE), measurement, key=pid)
    probe.send(platform.topic(topics.INTAKE), measurement, key=pid)  # redelivered by the sensor platform
    wrong_kpi = cloudevent(
        T + "intake.measurement",
        {"proposal_id": pid, "kpi": "co2 saved", "value": 1, "measured_at": "2026-12-01T08:00:00Z"},
        source="sensors/kera",
        event_id=f"sensor-{uuid.uuid4().hex[:8]}",
    )
    probe.send(platform.topic(topics.INTAKE), wrong_kpi, key=pid)
    rejected = probe.events(
        platform.topic(topics.PROPOSALS),
        T + "proposal.intake-rejected",
        where=lambda e: e["subject"] == wrong_kpi["id"],
    )[0]
    assert "co2 saved" in rejected["data"]["reason"] and rejected["data"]["intake_source"] == "sensors/kera"
    items = platform.get("proposals", f"/v1/proposals/{pid}/measurements", headers=MANAGER).json()["items"]
    assert [(m["kpi"], m["value"], m["source"]) for m in items] == [("daily riders", 87, "sensors/kera")]

    completed = platform.post(
        "proposals",
        f"/v1/proposals/{pid}/pilot/complete",
        {
            "outcome": "scale_up",
            "actual_kpis": [{"name": "daily riders", "actual": 240}],
            "lessons_learned": "Residents took the shuttle to the station every morning.",
        },
        headers=MANAGER,
    )
    assert completed.status_code == 200, completed.text
    assert completed.json()["status"] == "completed" and completed.json()["pilot"]["outcome"] == "scale_up"
    done = wait_event(platform, probe, topics.PROPOSALS, "pilot.completed", pid)
    assert done["data"]["actual_kpis"] == [{"name": "daily riders", "actual": 240.0}]

    actions = [e["data"]["action"] for e in events(platform, topics.PROPOSALS, "proposal.status-changed", pid)]
    assert actions == ["start_screening", "pass_screening", "approve", "start_pilot", "complete_pilot"]
    assert len(events(platform, topics.PROPOSALS, "pilot.measurement-recorded", pid)) == 1
    assert len(events(platform, topics.EVALUATIONS, "evaluation.overdue", pid)) == 1

    metrics = platform.get("proposals", "/metrics", headers={}).text
    assert (
        'kokeilu_proposal_transitions_total{action="complete_pilot",service="proposals",to_state="completed"}'
        in metrics
    )
    assert 'outcome="accepted"' in metrics and 'outcome="rejected"' in metrics
    decided_count = re.search(
        r'^kokeilu_proposal_time_to_decision_seconds_count\{decision="approved",'
        r'service="proposals"\} (\S+)$',
        metrics,
        re.M,
    )
    assert decided_count and float(decided_count[1]) >= 1  # the series is exported at 0 from the start
    emetrics = platform.get("evaluation", "/metrics", headers={}).text
    assert "kokeilu_evaluations_overdue_total" in emetrics and "kokeilu_evaluator_load{" in emetrics


def test_a_revision_requested_proposal_is_revised_and_screened_again(platform, probe):
    pid, panel = in_evaluation_via_http(platform)
    score_all(platform, pid, panel, 3)  # 3.0: between revise_at and approve_at
    wait_status(platform, pid, "revision_requested")
    revised = platform.post(
        "proposals",
        f"/v1/proposals/{pid}/revise",
        submission(title=unique_title("Kera pilot, revised")),
        headers=MANAGER,
    )
    assert revised.status_code == 200 and revised.json()["revision"] == 2
    wait_status(platform, pid, "in_evaluation")
    opened = wait_event(
        platform,
        probe,
        topics.EVALUATIONS,
        "evaluation.opened",
        pid,
        where=lambda e: e["time"] > revised.json()["updated_at"],
    )
    assert len(opened["data"]["evaluators"]) == 3
    view = platform.get("evaluation", f"/v1/evaluations/{pid}", headers=MANAGER).json()
    assert view["evaluation"]["revision"] == 2 and view["evaluation"]["scored"] == 0


def test_an_illegal_transition_is_409_with_the_state_and_the_allowed_actions(platform):
    pid, _ = in_evaluation_via_http(platform)
    early = platform.post("proposals", f"/v1/proposals/{pid}/pilot/start", {}, headers=MANAGER)
    assert early.status_code == 409
    assert early.json()["error"] == {
        "code": "illegal_transition",
        "message": "cannot start pilot a proposal that is in_evaluation",
        "fields": {},
        "current_status": "in_evaluation",
        "allowed_actions": ["approve", "reject", "request_revision", "withdraw"],
    }
    assert (
        platform.post("proposals", f"/v1/proposals/{pid}/withdraw", {"reason": "moved on"}, headers=MANAGER).json()[
            "status"
        ]
        == "withdrawn"
    )
    again = platform.post("proposals", f"/v1/proposals/{pid}/withdraw", {}, headers=MANAGER)
    assert again.status_code == 409 and again.json()["error"]["allowed_actions"] == []
    wait_until(
        lambda: (
            platform.get("evaluation", f"/v1/evaluations/{pid}", headers=MANAGER).json()["evaluation"]["status"]
            == "closed"
        ),
        what="the evaluation to close",
    )


def test_an_evaluator_acts_only_on_what_they_are_assigned(platform):
    pid, panel = in_evaluation_via_http(platform)
    outsider = platform.post(
        "evaluation", f"/v1/evaluations/{pid}/conflict", {"conflict": False}, headers=auth("outsider")
    )
    assert outsider.status_code == 403
    reader = platform.post("evaluation", f"/v1/evaluations/{pid}/scores", {"scores": {}}, headers=auth("reader"))
    assert reader.status_code == 403 and reader.json()["error"]["required_scope"] == "evaluation:write"
    assert platform.get("evaluation", "/v1/evaluations", headers=auth(panel[0])).status_code == 403
    before = platform.post(
        "evaluation", f"/v1/evaluations/{pid}/scores", {"scores": {"impact": 3}}, headers=auth(panel[0])
    )
    assert before.status_code == 409 and "declare" in before.json()["error"]["message"]
    platform.post("evaluation", f"/v1/evaluations/{pid}/conflict", {"conflict": False}, headers=auth(panel[0]))
    bad = platform.post(
        "evaluation", f"/v1/evaluations/{pid}/scores", {"scores": {"impact": 9}}, headers=auth(panel[0])
    )
    assert bad.status_code == 422 and {"scores.impact", "scores.feasibility"} <= set(bad.json()["error"]["fields"])


def test_an_idempotency_key_replays_the_first_answer(platform):
    title = unique_title("Sent twice over HTTP")
    key = {"Idempotency-Key": uuid.uuid4().hex, **MANAGER}
    first = platform.post("proposals", "/v1/proposals", submission(title=title), headers=key)
    second = platform.post("proposals", "/v1/proposals", submission(title=title), headers=key)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json() and second.headers.get("Idempotent-Replayed") == "true"
    listed = platform.get("proposals", "/v1/proposals?limit=200", headers=MANAGER).json()["items"]
    assert [p["title"] for p in listed].count(title) == 1
    reused = platform.post("proposals", f"/v1/proposals/{first.json()['id']}/withdraw", {}, headers=key)
    assert reused.status_code == 422 and "Idempotency-Key" in reused.json()["error"]["fields"]
