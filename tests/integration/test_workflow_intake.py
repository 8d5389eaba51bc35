"""Bad intake events of every kind end in the dead-letter topic with a reason, the source system
is told why (proposal.intake-rejected) whenever the record says who sent it, and the consumer
goes on with the next record."""

from __future__ import annotations

import json
import uuid

import pytest

from kokeilu.contracts import topics
from kokeilu.contracts.envelope import MAX_EVENT_BYTES
from tests.builders import cloudevent, submission
from tests.integration.workflow_support import drain
from tests.support import headers_of, wait_until

pytestmark = pytest.mark.kafka

T = "fi.espoo.kokeilu."
REJECTED = T + "proposal.intake-rejected"


@pytest.fixture(scope="module")
def proposals(module_platform):
    return module_platform.start("proposals")


@pytest.fixture(scope="module")
def screening_pid(proposals):
    """A proposal that is in screening (no evaluation service runs here), so not piloting."""
    return proposals.post("proposals", "/v1/proposals", submission(title="Waiting in screening")).json()["id"]


def measurement(pid: str, event_id: str, **data) -> dict:
    body = {"proposal_id": pid, "kpi": "daily riders", "value": 3, "measured_at": "2026-12-01T08:00:00Z", **data}
    return cloudevent(T + "intake.measurement", body, source="sensors/west-metro", event_id=event_id)


def bad_records(eid: str, screening_pid: str) -> dict[str, tuple[bytes | None, str, bool]]:
    """name -> (record value, dead-letter reason, whether the source is told)."""
    envelope = cloudevent(T + "intake.proposal", submission(), source="e-services-portal", event_id=eid)
    no_time = {k: v for k, v in envelope.items() if k != "time"}
    huge = dict(envelope, data=submission(summary="x" * 600_000))
    return {
        "not json": (b"\xff\x00 not json", "unparseable", False),
        "json but not an object": (b"[1, 2, 3]", "unparseable", False),
        "tombstone": (None, "unparseable", False),
        "not a cloudevent, but says who sent it": (json.dumps(no_time).encode(), "unparseable", True),
        "unknown type": (json.dumps(dict(envelope, type=T + "intake.nonsense")).encode(), "invalid", True),
        "type of another topic": (json.dumps(dict(envelope, type=T + "proposal.submitted")).encode(), "invalid", True),
        "proposal missing fields": (json.dumps(dict(envelope, data={"title": "no"})).encode(), "invalid", True),
        "proposal with wrong values": (
            json.dumps(dict(envelope, data=submission(budget_eur=-1))).encode(),
            "invalid",
            True,
        ),
        "measurement missing fields": (
            json.dumps(measurement("p", eid) | {"data": {"proposal_id": "p"}}).encode(),
            "invalid",
            True,
        ),
        "measurement for an unknown proposal": (
            json.dumps(measurement("no-such-proposal", eid)).encode(),
            "failed",
            True,
        ),
        "measurement in the wrong state": (json.dumps(measurement(screening_pid, eid)).encode(), "failed", True),
        "oversized": (json.dumps(huge).encode(), "unparseable", True),
    }


CASES = list(bad_records("x", "y"))


@pytest.mark.parametrize("case", CASES)
def test_a_bad_intake_record_is_dead_lettered_with_its_reason_and_the_consumer_goes_on(
    proposals, probe, screening_pid, case
):
    eid = f"{case.replace(' ', '-')}-{uuid.uuid4().hex[:8]}"
    value, reason, told = bad_records(eid, screening_pid)[case]
    intake = proposals.topic(topics.INTAKE)
    probe.send(intake, value, key=eid)
    title = f"After {case} {uuid.uuid4().hex}"
    probe.send(intake, cloudevent(T + "intake.proposal", submission(title=title), source="portal"), key=eid)

    [dead] = probe.records(proposals.topic(topics.DEADLETTER), lambda r: r.key == eid.encode())
    headers = headers_of(dead)
    assert headers["kokeilu.reason"] == reason and headers["kokeilu.error"]
    if value is not None and len(value) > MAX_EVENT_BYTES:  # kept cut short, saying how large it was
        assert dead.value == value[: 64 * 1024] and headers["kokeilu.value.truncated"] == str(len(value))
    else:
        assert dead.value == value

    def applied():  # the record after the bad one (same key, same partition) is applied
        items = proposals.get("proposals", "/v1/proposals?limit=200").json()["items"]
        return [p for p in items if p["title"] == title]

    wait_until(applied, what="the next intake record to be applied")

    rejections = drain(proposals.topic(topics.PROPOSALS), lambda e: e.get("type") == REJECTED and e["subject"] == eid)
    if told:
        [rejection] = rejections
        assert rejection["data"]["intake_id"] == eid and rejection["data"]["reason"]
        assert rejection["data"]["intake_source"] in ("e-services-portal", "sensors/west-metro")
    else:
        assert rejections == []


def test_a_rejected_event_sent_twice_is_answered_once(proposals, probe):
    eid = f"twice-{uuid.uuid4().hex[:8]}"
    value = json.dumps(measurement("no-such-proposal", eid)).encode()
    intake = proposals.topic(topics.INTAKE)
    probe.send(intake, value, key=eid)
    probe.send(intake, value, key=eid)
    dead = probe.records(proposals.topic(topics.DEADLETTER), lambda r: r.key == eid.encode(), count=2)
    assert len(dead) == 2  # each delivery is dead-lettered ...
    rejections = drain(proposals.topic(topics.PROPOSALS), lambda e: e.get("type") == REJECTED and e["subject"] == eid)
    assert len(rejections) == 1  # ... but the source is told once
    assert "unknown proposal" in rejections[0]["data"]["reason"]


def test_the_list_filters_and_pages(proposals):
    marker = uuid.uuid4().hex
    for env in ("kera", "school", "kera"):
        proposals.post(
            "proposals",
            "/v1/proposals",
            submission(
                title=f"Filter {env} {marker}", environment=env, school_name="Kera school" if env == "school" else None
            ),
        )
    page = proposals.get("proposals", "/v1/proposals?environment=kera&status=screening&limit=1").json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    seen, cursor = [], None
    while True:
        query = "/v1/proposals?environment=kera&limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = proposals.get("proposals", query).json()
        seen += [p["title"] for p in body["items"] if marker in p["title"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [f"Filter kera {marker}"] * 2
    assert all(
        p["environment"] == "kera" for p in proposals.get("proposals", "/v1/proposals?environment=kera").json()["items"]
    )
    future = proposals.get("proposals", "/v1/proposals?submitted_from=2999-01-01T00:00:00Z").json()
    assert future["items"] == []
    assert proposals.get("proposals", "/v1/proposals?focus_area=space").status_code == 422
