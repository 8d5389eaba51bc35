"""The notifications service as a real process: webhooks to a real local HTTP server."""

import uuid

import pytest

from kokeilu.contracts import topics
from kokeilu.contracts.sources import service_source
from tests.builders import cloudevent
from tests.support import Receiver, wait_until

pytestmark = pytest.mark.kafka

PUBLISHED = "fi.espoo.kokeilu.result.published"


@pytest.fixture(scope="module")
def notifications(tmp_path_factory):
    from tests.support import Platform

    p = Platform(tmp_path_factory.mktemp("notifications"))
    yield p.start("notifications")
    p.stop()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def result_event(pid: str, focus_area: str = "learning") -> dict:
    return cloudevent(
        PUBLISHED,
        {
            "result_id": pid,
            "proposal_id": pid,
            "title": "Reading buddies",
            "summary": "Pupils read together.",
            "focus_area": focus_area,
            "environment": "school",
            "proposer_kind": "school",
            "status": "in_evaluation",
            "contact_unit": "Espoo",
            "published_at": "2026-11-28T10:00:00Z",
            "updated_at": "2026-11-28T10:00:00Z",
        },
        subject=pid,
        source=service_source("catalogue"),
    )


def subscribe(p, url, **filter_):
    response = p.post(
        "notifications",
        "/v1/subscriptions",
        {"subscriber": "Education department", "channel": "webhook", "url": url, "filter": filter_},
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_a_matching_event_is_posted_to_the_webhook_and_logged(notifications, probe, receiver):
    sub = subscribe(notifications, receiver.url, types=[PUBLISHED], focus_areas=["learning"])
    pid = str(uuid.uuid4())
    probe.send(notifications.topic(topics.RESULTS), result_event(pid, "smart_mobility"), key=pid + "-other")
    probe.send(notifications.topic(topics.RESULTS), result_event(pid), key=pid)
    headers, body = wait_until(
        lambda: next((r for r in receiver.received if r[1]["subject"] == pid), None),
        what="the webhook to receive the event",
    )
    assert body["type"] == PUBLISHED and body["data"]["focus_area"] == "learning"
    assert headers["Content-Type"] == "application/cloudevents+json" and headers["Idempotency-Key"]
    assert len(receiver.received) == 1  # the smart_mobility one did not match the filter

    deliveries = wait_until(
        lambda: notifications.get(
            "notifications", f"/v1/deliveries?subscription_id={sub['id']}&status=succeeded"
        ).json()["items"],
        what="the delivery to be logged",
    )
    assert deliveries[0]["attempts"][0]["status_code"] == 204
    [outcome] = probe.events(
        notifications.topic(topics.NOTIFICATIONS),
        "fi.espoo.kokeilu.delivery.succeeded",
        where=lambda e: e["data"]["subscription_id"] == sub["id"],
    )
    assert outcome["data"]["attempts"] == 1


def test_a_failing_webhook_is_retried_and_every_attempt_is_stored(notifications, probe):
    receiver = Receiver(statuses=(503, 500, 204))
    try:
        sub = subscribe(notifications, receiver.url, types=[PUBLISHED])
        pid = str(uuid.uuid4())
        probe.send(notifications.topic(topics.RESULTS), result_event(pid), key=pid)

        def succeeded():
            items = notifications.get("notifications", f"/v1/deliveries?subscription_id={sub['id']}").json()["items"]
            return items if items and items[0]["status"] == "succeeded" else None

        [delivery] = wait_until(succeeded, timeout=60, what="the delivery to succeed after retries")
        assert [a["status_code"] for a in delivery["attempts"]] == [503, 500, 204]
    finally:
        receiver.close()


def test_a_webhook_answering_404_is_not_retried(notifications, probe):
    receiver = Receiver(statuses=(404,))
    try:
        sub = subscribe(notifications, receiver.url, types=[PUBLISHED])
        pid = str(uuid.uuid4())
        probe.send(notifications.topic(topics.RESULTS), result_event(pid), key=pid)
        [failed] = probe.events(
            notifications.topic(topics.NOTIFICATIONS),
            "fi.espoo.kokeilu.delivery.failed",
            where=lambda e: e["data"]["subscription_id"] == sub["id"],
        )
        assert failed["data"]["attempts"] == 1 and failed["data"]["status_code"] == 404
        items = notifications.get("notifications", f"/v1/deliveries?subscription_id={sub['id']}").json()["items"]
        assert items[0]["status"] == "failed" and len(items[0]["attempts"]) == 1
    finally:
        receiver.close()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"subscriber": "X", "channel": "pigeon", "url": "http://127.0.0.1/x"}, "channel"),
        ({"subscriber": "X", "channel": "webhook", "url": "not a url"}, "url"),
        (
            {"subscriber": "X", "channel": "webhook", "url": "http://127.0.0.1/x", "filter": {"types": ["nope"]}},
            "filter.types",
        ),
    ],
)
def test_an_invalid_subscription_gets_422_naming_the_field(notifications, body, field):
    response = notifications.post("notifications", "/v1/subscriptions", body)
    assert response.status_code == 422
    assert field in response.json()["error"]["fields"]


def test_a_deleted_subscription_is_gone(notifications, receiver):
    sub = subscribe(notifications, receiver.url)
    assert notifications.delete("notifications", f"/v1/subscriptions/{sub['id']}").status_code == 204
    assert notifications.delete("notifications", f"/v1/subscriptions/{sub['id']}").status_code == 404
    ids = [s["id"] for s in notifications.get("notifications", "/v1/subscriptions").json()["items"]]
    assert sub["id"] not in ids
