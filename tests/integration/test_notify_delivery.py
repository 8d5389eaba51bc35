"""Notifications end to end on the real broker, with the catalogue as a real process too: from a
workflow event to a signed webhook received by a real local HTTP server, to e-mails received by a
real local SMTP server (aiosmtpd), retries and dead letters, and one daily digest per subscriber."""

import io
import time
import uuid

import pytest
import requests

from kokeilu.contracts import topics
from services.notifications.domain import verify_signature
from tests import builders as ev
from tests.support import AUTH, Platform, Receiver, send_events, wait_until

pytestmark = pytest.mark.kafka

PUBLISHED = "fi.espoo.kokeilu.result.published"
STATUS = "fi.espoo.kokeilu.proposal.status-changed"
DIGEST_WINDOW = 4


@pytest.fixture(scope="module")
def platform(tmp_path_factory, mailbox):
    p = Platform(
        tmp_path_factory.mktemp("notify"),
        extra_env={
            "KOKEILU_SMTP_HOST": "127.0.0.1",
            "KOKEILU_SMTP_PORT": str(mailbox.port),
            "KOKEILU_DELIVERY_MAX_ATTEMPTS": "3",
            "KOKEILU_DELIVERY_RETRY_BASE_SECONDS": "0.2",
            "KOKEILU_DIGEST_WINDOW_SECONDS": str(DIGEST_WINDOW),
        },
    )
    yield p.start("catalogue", "notifications")
    p.stop()


class SigningReceiver(Receiver):
    """Keeps each webhook's raw body too: a signature is over the bytes as sent."""

    def __init__(self, statuses=(204,)):
        super().__init__(statuses)
        self.raw: list[tuple[dict, bytes]] = []
        parse = self.server.RequestHandlerClass.do_POST
        receiver = self

        def do_post(handler):
            raw = handler.rfile.read(int(handler.headers["Content-Length"]))
            receiver.raw.append((dict(handler.headers), raw))
            handler.rfile = io.BytesIO(raw)
            parse(handler)

        self.server.RequestHandlerClass.do_POST = do_post


def sample(metrics: str, series: str) -> float:
    """The value of one series (name and labels as exposed) in a /metrics text."""
    [value] = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.rsplit(" ", 1)[0] == series]
    return value


def unsubscribe(platform, sub):
    """A test's webhook receiver goes away with the test: so does its subscription."""
    assert platform.delete("notifications", f"/v1/subscriptions/{sub['id']}").status_code == 204


def subscribe(platform, **body):
    response = platform.post("notifications", "/v1/subscriptions", {"subscriber": "Education department", **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_workflow_event_reaches_a_webhook_signed_through_the_catalogue(platform, probe):
    receiver = SigningReceiver()
    pid = str(uuid.uuid4())
    sub = subscribe(
        platform,
        channel="webhook",
        url=receiver.url,
        filter={"types": [PUBLISHED], "focus_areas": ["learning"], "environments": ["school"]},
    )
    try:
        assert len(sub["secret"]) == 64
        assert "secret" not in platform.get("notifications", "/v1/subscriptions").json()["items"][0]
        send_events(platform, probe, ev.submitted(pid), ev.screened(pid))
        headers, raw = wait_until(
            lambda: next(((h, r) for h, r in receiver.raw if pid.encode() in r), None),
            timeout=60,
            what="the signed webhook",
        )
        assert verify_signature(sub["secret"], headers["Kokeilu-Signature"], raw, int(time.time()))
        assert not verify_signature("another secret", headers["Kokeilu-Signature"], raw, int(time.time()))
        assert not verify_signature(sub["secret"], headers["Kokeilu-Signature"], raw + b" ", int(time.time()))
        assert headers["Kokeilu-Timestamp"] and headers["Idempotency-Key"] == headers["Kokeilu-Delivery-Id"]
    finally:
        unsubscribe(platform, sub)
        receiver.close()


def test_a_failing_webhook_is_retried_then_dead_lettered_and_visible(platform, probe):
    receiver = Receiver(statuses=(503,))
    sub = subscribe(platform, channel="webhook", url=receiver.url, filter={"types": [PUBLISHED]})
    try:
        pid = str(uuid.uuid4())
        send_events(platform, probe, ev.submitted(pid), ev.screened(pid))
        [failed] = probe.events(
            platform.topic(topics.NOTIFICATIONS),
            "fi.espoo.kokeilu.delivery.failed",
            where=lambda e: e["data"]["subscription_id"] == sub["id"],
            timeout=60,
        )
        assert failed["data"]["attempts"] == 3 and failed["data"]["status_code"] == 503
        [dead] = platform.get(
            "notifications", f"/v1/deliveries?status=dead_lettered&subscription_id={sub['id']}"
        ).json()["items"]
        assert dead["dead_lettered"] and [a["status_code"] for a in dead["attempts"]] == [503, 503, 503]
        assert all(a["latency_seconds"] >= 0 and a["error"] == "HTTP 503" for a in dead["attempts"])
        metrics = platform.get("notifications", "/metrics").text
        # exported at 0 from the start: what counts is that they moved
        assert sample(metrics, 'kokeilu_deliveries_dead_lettered_total{channel="webhook",service="notifications"}') >= 1
        assert sample(metrics, 'kokeilu_delivery_retries_total{channel="webhook",service="notifications"}') >= 2
    finally:
        unsubscribe(platform, sub)
        receiver.close()


def test_a_proposer_gets_an_email_in_their_language_without_subscribing(platform, probe, mailbox):
    pid = str(uuid.uuid4())
    address = f"proposer-{pid[:8]}@example.fi"
    send_events(
        platform,
        probe,
        ev.contact(pid, address, language="sv"),
        ev.submitted(pid, language="sv"),
        ev.status(pid, "screening", "in_evaluation"),
    )
    [message] = wait_until(lambda: mailbox.to(address), timeout=60, what="the proposer's e-mail")
    assert message["Subject"] == "Ditt förslag utvärderas: Reading buddies at Kera school"
    assert "Hej" in message.get_body(("plain",)).get_content()
    deliveries = platform.get("notifications", "/v1/deliveries?kind=proposer&channel=email").json()["items"]
    assert any(d["status"] == "succeeded" for d in deliveries)
    assert address not in str(deliveries)
    outcomes = probe.events(
        platform.topic(topics.NOTIFICATIONS),
        "fi.espoo.kokeilu.delivery.succeeded",
        where=lambda e: e["data"]["subscription_id"] == f"proposer:{pid}",
    )
    assert address not in str(outcomes)


def test_an_email_subscriber_gets_each_matching_event_and_can_change_the_filter(platform, probe, mailbox):
    pid, other = str(uuid.uuid4()), str(uuid.uuid4())
    address = f"edu-{pid[:8]}@espoo.example"
    sub = subscribe(platform, channel="email", email=address, filter={"types": [STATUS], "proposal_id": other})
    changed = requests.patch(
        platform.url("notifications", f"/v1/subscriptions/{sub['id']}"),
        headers=AUTH,
        json={"filter": {"types": [STATUS], "proposal_id": pid}},
        timeout=10,
    )
    assert changed.status_code == 200 and changed.json()["filter"]["proposal_id"] == pid
    send_events(platform, probe, ev.submitted(pid, language="en"), ev.status(pid, "in_evaluation", "approved"))
    [message] = wait_until(lambda: mailbox.to(address), timeout=60, what="the subscriber's e-mail")
    assert message["Subject"] == "Kokeilu: proposal.status-changed – Reading buddies at Kera school"
    assert "Status: approved" in message.get_body(("plain",)).get_content()


def test_a_daily_digest_groups_a_subscribers_events_into_one_email(platform, probe, mailbox):
    tag = uuid.uuid4().hex[:8]
    address = f"digest-{tag}@espoo.example"
    subscribe(
        platform,
        channel="email",
        email=address,
        mode="daily_digest",
        language="en",
        filter={"types": [PUBLISHED], "environments": ["kera"]},
    )
    # Start right after a window opens, so that the three events fall into one window.
    wait_until(lambda: time.time() % DIGEST_WINDOW < 0.5, timeout=DIGEST_WINDOW + 1, interval=0.05)
    pids = [str(uuid.uuid4()) for _ in range(3)]
    for n, pid in enumerate(pids):
        send_events(
            platform, probe, ev.submitted(pid, environment="kera", title=f"Kera pilot {n} {tag}"), ev.screened(pid)
        )
    [digest] = wait_until(lambda: mailbox.to(address), timeout=60, what="the digest")
    body = digest.get_body(("plain",)).get_content()
    assert digest["Subject"] == "Kokeilu daily digest: 3 events"
    assert all(f"Kera pilot {n} {tag}" in body for n in range(3))
    metrics = platform.get("notifications", "/metrics").text
    assert sample(metrics, 'kokeilu_digest_size_events_count{service="notifications"}') >= 1
