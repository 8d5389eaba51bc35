"""The proposals service as a real process against the real broker and a SQLite store."""

import json
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kokeilu.contracts import topics
from tests.builders import cloudevent, submission
from tests.support import AUTH, READER, headers_of, wait_until

pytestmark = pytest.mark.kafka

SUBMITTED = "fi.espoo.kokeilu.proposal.submitted"
SCREENED = "fi.espoo.kokeilu.screening.completed"


@pytest.fixture(scope="module")
def proposals(module_platform):
    return module_platform.start("proposals")


def test_submitted_proposal_is_stored_and_published_without_contact_details(proposals, probe):
    response = proposals.post("proposals", "/v1/proposals", submission())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "screening" and body["id"]  # submitted, and sent to screening at once

    [event] = probe.events(proposals.topic(topics.PROPOSALS), SUBMITTED, where=lambda e: e["subject"] == body["id"])
    assert event["data"]["proposal_id"] == body["id"]
    assert "pilot@example.com" not in json.dumps(event)
    assert event["specversion"] == "1.0" and event["correlationid"]

    fetched = proposals.get("proposals", f"/v1/proposals/{body['id']}").json()
    assert fetched["proposer"]["contact_email"] == "pilot@example.com"  # kept in the proposals store


def test_record_key_is_the_proposal_id(proposals, probe):
    proposal_id = proposals.post("proposals", "/v1/proposals", submission()).json()["id"]
    # proposal.submitted and its status-changed (to screening), both keyed by the proposal id
    records = probe.records(proposals.topic(topics.PROPOSALS), lambda r: r.key == proposal_id.encode(), count=2)
    assert all(headers_of(r)["content-type"] == "application/cloudevents+json" for r in records)


def test_screening_outcome_moves_the_proposal(proposals, probe):
    proposal_id = proposals.post("proposals", "/v1/proposals", submission()).json()["id"]
    probe.send(
        proposals.topic(topics.EVALUATIONS),
        cloudevent(
            SCREENED,
            {
                "proposal_id": proposal_id,
                "passed": False,
                "screened_at": "2026-11-28T10:00:00Z",
                "failed_rules": [{"rule": "budget_cap", "reason": "too much"}],
            },
            subject=proposal_id,
        ),
        key=proposal_id,
    )

    def failed():
        p = proposals.get("proposals", f"/v1/proposals/{proposal_id}").json()
        return p if p["status"] == "screening_failed" else None

    proposal = wait_until(failed, what="status screening_failed")
    assert proposal["screening_failures"] == [{"rule": "budget_cap", "reason": "too much"}]
    [changed] = probe.events(
        proposals.topic(topics.PROPOSALS),
        "fi.espoo.kokeilu.proposal.status-changed",
        where=lambda e: e["subject"] == proposal_id and e["data"]["to_status"] == "screening_failed",
    )
    assert changed["data"]["from_status"] == "screening"


@pytest.mark.parametrize(
    "value, reason",
    [
        (b"this is not json", "unparseable"),
        (b"[1, 2, 3]", "unparseable"),
        (json.dumps({"specversion": "1.0", "id": "x"}).encode(), "unparseable"),
        (json.dumps(cloudevent("fi.espoo.kokeilu.nonsense", {})).encode(), "invalid"),
        (json.dumps(cloudevent("fi.espoo.kokeilu.intake.proposal", {"title": "no"})).encode(), "invalid"),
    ],
)
def test_bad_intake_records_are_dead_lettered_and_the_consumer_carries_on(proposals, probe, value, reason):
    intake = proposals.topic(topics.INTAKE)
    probe.send(intake, value, key="bad")
    title = f"After the bad record {uuid.uuid4().hex[:8]}"
    good = cloudevent("fi.espoo.kokeilu.intake.proposal", submission(title=title), source="portal")
    probe.send(intake, good, key="good")

    [dead] = probe.records(proposals.topic(topics.DEADLETTER), lambda r: r.value == value)
    headers = headers_of(dead)
    assert headers["kokeilu.source.topic"] == intake
    assert headers["kokeilu.consumer.group"] == proposals.prefix + "kokeilu.proposals"
    assert headers["kokeilu.service"] == "proposals"
    assert headers["kokeilu.reason"] == reason
    assert headers["kokeilu.error"]
    assert int(headers["kokeilu.source.offset"]) >= 0 and int(headers["kokeilu.source.partition"]) >= 0

    def listed():
        items = proposals.get("proposals", "/v1/proposals").json()["items"]
        return [p for p in items if p["title"] == title]

    [created] = wait_until(listed, what="the good intake event to be applied")
    assert created["source"] == "portal"


def test_the_same_intake_event_twice_gives_one_proposal(proposals, probe):
    event = cloudevent(
        "fi.espoo.kokeilu.intake.proposal",
        submission(title="Sent twice by the portal"),
        source="e-services-portal",
        event_id="portal-42",
    )
    probe.send(proposals.topic(topics.INTAKE), event, key="portal-42")
    probe.send(proposals.topic(topics.INTAKE), event, key="portal-42")
    marker = cloudevent(
        "fi.espoo.kokeilu.intake.proposal",
        submission(title="Marker after the duplicate"),
        source="e-services-portal",
        event_id="portal-43",
    )
    probe.send(proposals.topic(topics.INTAKE), marker, key="portal-42")  # same key: same partition, after both

    def titles():
        return [p["title"] for p in proposals.get("proposals", "/v1/proposals").json()["items"]]

    wait_until(lambda: "Marker after the duplicate" in titles(), what="marker to arrive")
    assert titles().count("Sent twice by the portal") == 1


@pytest.mark.parametrize(
    "body, field",
    [
        (submission(focus_area="space"), "focus_area"),
        (submission(budget_eur=-5), "budget_eur"),
        (
            submission(proposer={"organisation": "X", "kind": "company", "contact_email": "not-an-email"}),
            "proposer.contact_email",
        ),
        ({k: v for k, v in submission().items() if k != "title"}, "title"),
    ],
)
def test_invalid_submission_gets_422_naming_the_field(proposals, body, field):
    response = proposals.post("proposals", "/v1/proposals", body)
    assert response.status_code == 422
    assert field in response.json()["error"]["fields"]


def test_body_that_is_not_json_gets_400(proposals):
    import requests

    response = requests.post(proposals.url("proposals", "/v1/proposals"), data=b"{nope", headers=AUTH, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_routes_need_a_token_with_the_scope(proposals):
    assert proposals.post("proposals", "/v1/proposals", submission(), headers={}).status_code == 401
    assert proposals.get("proposals", "/v1/proposals", headers={"Authorization": "Bearer wrong"}).status_code == 401
    forbidden = proposals.post("proposals", "/v1/proposals", submission(), headers=READER)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["required_scope"] == "proposals:write"
    assert proposals.get("proposals", "/v1/proposals", headers=READER).status_code == 200
    assert proposals.get("proposals", "/health/live", headers={}).status_code == 200
    metrics = proposals.get("proposals", "/metrics", headers={})
    assert metrics.status_code == 200 and "kokeilu_http_requests_total" in metrics.text


def test_unknown_proposal_is_404_json(proposals):
    response = proposals.get("proposals", "/v1/proposals/does-not-exist")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def published_counts(proposals) -> dict[str, float]:
    """kokeilu_events_published_total of the proposals service, by event type."""
    families = text_string_to_metric_families(proposals.get("proposals", "/metrics", headers={}).text)
    counts: dict[str, float] = {}
    for family in families:
        if family.name == "kokeilu_events_published":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["type"]] = counts.get(sample.labels["type"], 0) + sample.value
    return counts


def test_every_event_published_is_counted_once_by_type(proposals, probe):
    before = published_counts(proposals)
    ids = [proposals.post("proposals", "/v1/proposals", submission()).json()["id"] for _ in range(3)]
    for pid in ids:  # contact recorded, submitted, status changed: three records a proposal
        probe.records(proposals.topic(topics.PROPOSALS), lambda r, pid=pid: r.key == pid.encode(), count=3)

    def grown() -> dict[str, float]:
        now = published_counts(proposals)
        return {t: now[t] - before.get(t, 0) for t in now if now[t] != before.get(t, 0)}

    wait_until(lambda: sum(grown().values()) >= 9, timeout=10)
    assert grown() == {
        "fi.espoo.kokeilu.proposal.contact-recorded": 3,
        SUBMITTED: 3,
        "fi.espoo.kokeilu.proposal.status-changed": 3,
    }
