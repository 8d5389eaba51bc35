"""Issue 8, findings 4-6, on the real notifications process and the real broker: subscriptions
belong to their token, webhooks cannot be pointed inward (at subscription time or, after a DNS
change, at delivery time), delivery errors do not fingerprint internal ports, and residents'
personal data reaches a webhook only when the subscription's owner has `personal-data:read`."""

import hashlib
import json
import socket
import threading
import uuid
from pathlib import Path

import pytest
import requests

from kokeilu.contracts import topics
from kokeilu.privacy import REDACTED
from kokeilu.store import Database
from services.notifications import handlers
from services.notifications.domain import ADDRESS_REFUSED, Caller, NewSubscription
from services.notifications.store import NotificationsUnitOfWork
from tests import builders as ev
from tests.support import AUTH, READER_TOKENS, Platform, Receiver, wait_until

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
STATUS = "fi.espoo.kokeilu.proposal.status-changed"
SUBMITTED = "fi.espoo.kokeilu.proposal.submitted"
COMPLETED = "fi.espoo.kokeilu.pilot.completed"
RESIDENT = "Maija Meikäläinen"


def token(name: str, *scopes: str) -> dict:
    return {"name": name, "sha256": hashlib.sha256(f"{name}-token".encode()).hexdigest(), "scopes": list(scopes)}


def bearer(name: str) -> dict:
    return {"Authorization": f"Bearer {name}-token"}


TOKENS = json.dumps(
    json.loads(READER_TOKENS)
    + [
        token("dept-a", "subscriptions:write"),
        token("dept-b", "subscriptions:write"),
        token("research", "subscriptions:write", "personal-data:read"),
    ]
)
DEPT_A, DEPT_B, RESEARCH = bearer("dept-a"), bearer("dept-b"), bearer("research")


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """Allow-list 127.0.0.0/8 (tests/support.py's default): receivers on 127.0.0.1 are reachable."""
    p = Platform(tmp_path_factory.mktemp("notif-sec"), extra_env={"KOKEILU_TOKENS": TOKENS})
    yield p.start("notifications")
    p.stop()


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """As in production: no allow-list, public addresses only."""
    p = Platform(
        tmp_path_factory.mktemp("notif-strict"), extra_env={"KOKEILU_TOKENS": TOKENS, "KOKEILU_WEBHOOK_ALLOWLIST": ""}
    )
    yield p.start("notifications")
    p.stop()


def patch(p, path, body, headers):
    return requests.patch(p.url("notifications", path), json=body, headers=headers, timeout=10)


def subscribe(p, headers, url, **filter_):
    response = p.post(
        "notifications",
        "/v1/subscriptions",
        {"subscriber": "Some department", "channel": "webhook", "url": url, "filter": filter_},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


def deliveries(p, headers, query=""):
    response = p.get("notifications", f"/v1/deliveries{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


# finding 4: owners ------------------------------------------------------------------------------
def test_a_department_cannot_see_change_or_delete_another_departments_subscription(platform, probe):
    receiver = Receiver()
    try:
        sub = subscribe(platform, DEPT_A, receiver.url, types=[STATUS])
        assert sub["owner"] == "dept-a"
        path = f"/v1/subscriptions/{sub['id']}"

        listed = platform.get("notifications", "/v1/subscriptions", headers=DEPT_B).json()["items"]
        assert sub["id"] not in [s["id"] for s in listed]
        redirected = patch(platform, path, {"url": "http://127.0.0.1:9/steal"}, DEPT_B)
        assert redirected.status_code == 404 and redirected.json()["error"]["code"] == "not_found"
        assert platform.delete("notifications", path, headers=DEPT_B).status_code == 404
        assert sub["id"] in [
            s["id"] for s in platform.get("notifications", "/v1/subscriptions", headers=DEPT_A).json()["items"]
        ]

        pid = str(uuid.uuid4())
        probe.send(platform.topic(topics.PROPOSALS), ev.status(pid, "in_evaluation", "approved"), key=pid)
        wait_until(
            lambda: [
                d for d in deliveries(platform, DEPT_A, f"?subscription_id={sub['id']}") if d["status"] == "succeeded"
            ],
            timeout=60,
            what="dept-a's delivery",
        )
        assert [d for d in deliveries(platform, DEPT_B) if d["subscription_id"] == sub["id"]] == []
        assert deliveries(platform, DEPT_B, f"?subscription_id={sub['id']}") == []

        everything = platform.get("notifications", "/v1/subscriptions").json()["items"]  # admin
        assert [s["owner"] for s in everything if s["id"] == sub["id"]] == ["dept-a"]
        assert [d for d in deliveries(platform, AUTH) if d["subscription_id"] == sub["id"]]
        changed = patch(platform, path, {"subscriber": "Renamed by admin"}, AUTH)
        assert changed.status_code == 200 and changed.json()["owner"] == "dept-a"
        assert platform.delete("notifications", path).status_code == 204
    finally:
        receiver.close()


def test_a_webhook_url_with_credentials_is_refused_naming_url(platform):
    response = platform.post(
        "notifications",
        "/v1/subscriptions",
        {"subscriber": "x", "channel": "webhook", "url": "https://user:hunter2@hooks.example.org/k"},
        headers=DEPT_A,
    )
    assert response.status_code == 422
    assert list(response.json()["error"]["fields"]) == ["url"] and "hunter2" not in response.text


# finding 5: SSRF --------------------------------------------------------------------------------
def test_inward_webhook_urls_are_refused_when_subscribing_and_when_changing(strict):
    own = strict.ports["notifications"]
    urls = [
        f"http://127.0.0.1:{own}/v1/subscriptions",
        "http://localhost:8001/",
        "http://0.0.0.0:8003/",
        "http://2130706433:8003/",
        "http://0x7f000001:8003/",
        "http://127.1:8003/",
        "http://[::ffff:127.0.0.1]:8003/",
        "http://[::1]:8003/",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.1/",
        "http://[fe80::1]/",
        "http://127.0.0.1:9092/",
        "http://[2002:7f00:1::]/",
    ]
    refused = {}
    for url in urls:
        response = strict.post(
            "notifications", "/v1/subscriptions", {"subscriber": "x", "channel": "webhook", "url": url}, headers=DEPT_A
        )
        refused[url] = (response.status_code, list(response.json()["error"]["fields"]))
    assert refused == {url: (422, ["url"]) for url in urls}
    assert strict.get("notifications", "/v1/subscriptions", headers=DEPT_A).json()["items"] == []

    sub = subscribe(strict, DEPT_A, "https://93.184.216.34/hook")  # a public address: accepted
    changed = patch(strict, f"/v1/subscriptions/{sub['id']}", {"url": "http://127.0.0.1:8003/"}, DEPT_A)
    assert changed.status_code == 422 and list(changed.json()["error"]["fields"]) == ["url"]
    assert strict.delete("notifications", f"/v1/subscriptions/{sub['id']}", headers=DEPT_A).status_code == 204


def test_a_webhook_whose_name_resolves_inward_by_delivery_time_is_refused_then(strict, probe):
    """As if `url` resolved to a public address when it was subscribed and its DNS changed since:
    the row is written straight to the store, past the subscription-time check."""
    receiver = Receiver()
    db = Database(
        f"sqlite:///{strict.tmp / 'data' / 'notifications.db'}", ROOT / "services" / "notifications" / "migrations"
    )
    try:
        body = NewSubscription(
            subscriber="Rebinding",
            channel="webhook",
            url=f"http://localhost:{receiver.port}/hook",
            filter={"types": [STATUS]},
        )
        sub = handlers.create_subscription(body, NotificationsUnitOfWork(db), Caller("dept-a"))
        pid = str(uuid.uuid4())
        probe.send(strict.topic(topics.PROPOSALS), ev.status(pid, "in_evaluation", "approved"), key=pid)
        [failed] = probe.events(
            strict.topic(topics.NOTIFICATIONS),
            "fi.espoo.kokeilu.delivery.failed",
            where=lambda e: e["data"]["subscription_id"] == sub.id,
            timeout=60,
        )
        assert (failed["data"]["attempts"], failed["data"]["error"]) == (1, ADDRESS_REFUSED), "final at once"
        [logged] = deliveries(strict, DEPT_A, f"?subscription_id={sub.id}")
        assert logged["dead_lettered"] and [a["error"] for a in logged["attempts"]] == [ADDRESS_REFUSED]
        assert receiver.received == []
    finally:
        db.dispose()
        receiver.close()


def test_delivery_errors_do_not_show_what_answered_on_an_internal_port(platform, probe):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    port = server.getsockname()[1]

    def smtp_banner():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(b"220 smtp.internal.espoo ESMTP Postfix (Debian/GNU)\r\n")
            conn.close()

    threading.Thread(target=smtp_banner, daemon=True).start()
    try:
        sub = subscribe(platform, DEPT_A, f"http://127.0.0.1:{port}/", types=[STATUS])
        pid = str(uuid.uuid4())
        probe.send(platform.topic(topics.PROPOSALS), ev.status(pid, "in_evaluation", "approved"), key=pid)
        [delivery] = wait_until(
            lambda: [d for d in deliveries(platform, DEPT_A, f"?subscription_id={sub['id']}") if d["attempts"]],
            timeout=60,
            what="a first attempt",
        )
        errors = {a["error"] for a in delivery["attempts"]}
        assert errors <= {"invalid response", "connection reset", "connection error"}, errors
        assert "ESMTP" not in json.dumps(delivery) and "Postfix" not in json.dumps(delivery)
        assert platform.delete("notifications", f"/v1/subscriptions/{sub['id']}", headers=DEPT_A).status_code == 204
    finally:
        server.close()


# finding 6: personal data -----------------------------------------------------------------------
def test_a_residents_name_reaches_a_webhook_redacted_without_the_scope_and_as_written_with_it(platform, probe):
    plain_receiver, trusted_receiver = Receiver(), Receiver()
    try:
        plain = subscribe(platform, DEPT_A, plain_receiver.url, types=[SUBMITTED, COMPLETED])
        trusted = subscribe(platform, RESEARCH, trusted_receiver.url, types=[SUBMITTED, COMPLETED])
        assert (plain["personal_data"], trusted["personal_data"]) == (False, True)
        pid = str(uuid.uuid4())
        submitted = ev.submitted(
            pid,
            title=f"Benches by {RESIDENT}",
            proposer={"organisation": RESIDENT, "kind": "resident"},
            summary=f"I am {RESIDENT} (maija@example.fi) and I propose benches.",
            partners=[f"{RESIDENT}'s neighbours"],
        )
        completed = ev.completed(pid, lessons=f"{RESIDENT} learned that benches need backs.")
        for event in (submitted, completed):
            probe.send(platform.topic(topics.PROPOSALS), event, key=pid)

        def both(receiver):
            got = {body["type"]: body for _, body in receiver.received if body["subject"] == pid}
            return got if len(got) == 2 else None

        plain_got = wait_until(lambda: both(plain_receiver), timeout=60, what="dept-a's two webhooks")
        trusted_got = wait_until(lambda: both(trusted_receiver), timeout=60, what="research's two webhooks")

        assert "Maija" not in json.dumps(plain_got, ensure_ascii=False)
        assert "maija@example.fi" not in json.dumps(plain_got)
        assert plain_got[SUBMITTED]["data"]["proposer"]["organisation"] == REDACTED
        assert plain_got[SUBMITTED]["data"]["title"] == f"Benches by {REDACTED}"
        assert plain_got[COMPLETED]["data"]["lessons_learned"] == f"{REDACTED} learned that benches need backs."

        assert trusted_got[SUBMITTED]["data"]["proposer"]["organisation"] == RESIDENT
        assert trusted_got[COMPLETED]["data"]["lessons_learned"].startswith(RESIDENT)
    finally:
        plain_receiver.close()
        trusted_receiver.close()
