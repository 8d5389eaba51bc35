"""Notifications, least privilege: a subscription belongs to the token that made it, webhook URLs
carry no credentials and are checked, and a subscriber without the personal-data scope receives
residents' personal data redacted (issue 8, findings 4-6)."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import ValidationError

from kokeilu.contracts import catalog as types
from kokeilu.contracts import decode, parse_envelope
from kokeilu.privacy import REDACTED
from services.notifications import handlers
from services.notifications.domain import (
    ADDRESS_REFUSED,
    Caller,
    NewSubscription,
    RetryPolicy,
    SubscriptionChange,
    public_url,
    redact_event_data,
)
from tests import builders as ev
from tests.builders import leaf_strings
from tests.unit.fakes import FakeNotificationsUnitOfWork, FakeSender

DEPT_A = Caller("dept-a")
DEPT_B = Caller("dept-b")
RESEARCH = Caller("research", personal_data=True)
ADMIN = Caller("admin", admin=True, personal_data=True)
RESIDENT = "Maija Meikäläinen"
RESIDENT_EMAIL = "maija.meikalainen@example.fi"


@pytest.fixture
def uow():
    return FakeNotificationsUnitOfWork()


def webhook(uow, caller, url="https://hooks.example.org/k", **filter_):
    body = NewSubscription(subscriber=caller.name, channel="webhook", url=url, filter=filter_)
    return handlers.create_subscription(body, uow, caller)


def apply(uow, raw: dict):
    event = parse_envelope(json.dumps(raw).encode())
    return handlers.on_event(event, decode(event), uow)


def payload_for(uow, sub) -> dict:
    [d] = [d for d in uow.deliveries.rows.values() if d.subscription_id == sub.id]
    return json.loads(d.payload)


# ownership (finding 4) --------------------------------------------------------------------------
def test_a_subscription_is_owned_by_its_creator_and_invisible_to_other_tokens(uow):
    a = webhook(uow, DEPT_A)
    b = webhook(uow, DEPT_B)
    assert (a.owner, b.owner) == ("dept-a", "dept-b")
    assert [s.id for s in handlers.list_subscriptions(uow, DEPT_A)] == [a.id]
    assert [s.id for s in handlers.list_subscriptions(uow, DEPT_B)] == [b.id]
    assert {s.id for s in handlers.list_subscriptions(uow, ADMIN)} == {a.id, b.id}


def test_another_token_can_neither_change_nor_delete_a_subscription(uow):
    a = webhook(uow, DEPT_A)
    redirect = SubscriptionChange(url="https://attacker.example.net/steal")
    assert handlers.update_subscription(a.id, redirect, uow, DEPT_B) is None
    assert handlers.delete_subscription(a.id, uow, DEPT_B) is False
    assert uow.subscriptions.get(a.id).url == "https://hooks.example.org/k"
    assert handlers.update_subscription(a.id, SubscriptionChange(subscriber="A2"), uow, DEPT_A).subscriber == "A2"
    assert handlers.update_subscription(a.id, SubscriptionChange(subscriber="A3"), uow, ADMIN).owner == "dept-a"
    assert handlers.delete_subscription(a.id, uow, ADMIN) is True


def test_the_delivery_log_shows_a_token_only_its_own_deliveries(uow):
    a, b = webhook(uow, DEPT_A), webhook(uow, DEPT_B)
    apply(uow, ev.contact("p-1", RESIDENT_EMAIL))
    apply(uow, ev.submitted("p-1"))
    apply(uow, ev.status("p-1", "screening", "in_evaluation"))
    mine = handlers.list_deliveries(uow, None, None, 100, caller=DEPT_A)
    assert mine and {d["subscription_id"] for d in mine} == {a.id}
    assert handlers.list_deliveries(uow, b.id, None, 100, caller=DEPT_A) == []
    everything = handlers.list_deliveries(uow, None, None, 100, caller=ADMIN)
    assert {d["subscription_id"] for d in everything} == {a.id, b.id, "proposer:p-1"}


def test_the_personal_data_flag_follows_the_owner_not_an_admin_who_edits(uow):
    r = webhook(uow, RESEARCH)
    a = webhook(uow, DEPT_A)
    assert (r.personal_data, a.personal_data) == (True, False)
    assert handlers.update_subscription(a.id, SubscriptionChange(subscriber="x"), uow, ADMIN).personal_data is False
    lost_scope = Caller("research")
    assert (
        handlers.update_subscription(r.id, SubscriptionChange(subscriber="x"), uow, lost_scope).personal_data is False
    )


# webhook URLs (findings 4, 5) -------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    ["https://user:secret@hooks.example.org/k", "https://token@hooks.example.org/k", "http://:pw@hooks.example.org/"],
)
def test_a_webhook_url_with_credentials_is_refused_naming_url(url):
    for model, body in (
        (NewSubscription, {"subscriber": "x", "channel": "webhook", "url": url}),
        (SubscriptionChange, {"url": url}),
    ):
        with pytest.raises(ValidationError) as caught:
            model.model_validate(body)
        assert [e["loc"] for e in caught.value.errors()] == [("url",)]


def test_a_stored_url_is_never_shown_with_credentials():
    assert public_url("https://user:pw@hooks.example.org:8443/k?x=1") == "https://hooks.example.org:8443/k?x=1"
    assert public_url("https://hooks.example.org/k") == "https://hooks.example.org/k"
    assert public_url(None) is None


def test_the_url_check_runs_when_subscribing_and_when_the_url_changes(uow):
    checked = []

    def refuse_inward(url):
        checked.append(url)
        if "127.0.0.1" in url:
            raise PermissionError("inward")

    body = NewSubscription(subscriber="x", channel="webhook", url="http://127.0.0.1:8001/")
    with pytest.raises(PermissionError):
        handlers.create_subscription(body, uow, DEPT_A, check_url=refuse_inward)
    assert uow.subscriptions.rows == {}
    sub = webhook(uow, DEPT_A)
    with pytest.raises(PermissionError):
        handlers.update_subscription(
            sub.id, SubscriptionChange(url="http://127.0.0.1:8003/"), uow, DEPT_A, check_url=refuse_inward
        )
    assert uow.subscriptions.get(sub.id).url == "https://hooks.example.org/k"
    assert checked == ["http://127.0.0.1:8001/", "http://127.0.0.1:8003/"]


def test_a_delivery_the_guard_refuses_fails_at_once_with_a_neutral_reason(uow):
    sub = webhook(uow, DEPT_A)
    apply(uow, ev.submitted("p-1"))
    sender = FakeSender((None, ADDRESS_REFUSED))
    handlers.deliver_due(lambda: uow, sender, RetryPolicy(max_attempts=6))
    [d] = handlers.list_deliveries(uow, sub.id, None, 10, caller=DEPT_A)
    assert (d["status"], len(d["attempts"]), d["attempts"][0]["error"]) == ("failed", 1, ADDRESS_REFUSED)


# personal data (finding 6) ----------------------------------------------------------------------
def resident_submission(pid: str) -> dict:
    return ev.submitted(
        pid,
        title=f"Benches by {RESIDENT}",
        summary=f"I, {RESIDENT} ({RESIDENT_EMAIL}), propose benches on the walkway.",
        proposer={"organisation": RESIDENT, "kind": "resident"},
        hypothesis=f"Ask {RESIDENT.upper()} for details.",
        partners=[f"{RESIDENT}'s neighbours", "Kera library"],
        school_name=f"{RESIDENT} home school",
        kpis=[{"name": f"benches {RESIDENT} counts", "unit": "benches", "baseline": 0, "target": 5}],
    )


def leaks(value) -> list[str]:
    return [s for s in leaf_strings(value) if "maija" in s.lower() or "meikäläinen" in s.lower()]


def test_a_residents_submission_reaches_a_subscriber_without_the_scope_redacted(uow):
    plain, trusted = webhook(uow, DEPT_A), webhook(uow, RESEARCH)
    pid = str(uuid.uuid4())
    apply(uow, resident_submission(pid))
    received = payload_for(uow, plain)
    assert leaks(received) == []
    data = received["data"]
    assert data["proposer"] == {"organisation": REDACTED, "kind": "resident"}
    assert data["title"] == f"Benches by {REDACTED}" and data["partners"][1] == "Kera library"
    assert REDACTED in data["summary"] and "@" not in data["summary"]
    decode(parse_envelope(json.dumps(received).encode()))  # still a valid proposal.submitted
    assert received["id"] and received["subject"] == pid
    assert payload_for(uow, trusted)["data"]["proposer"]["organisation"] == RESIDENT, "the scope lifts it"


@pytest.mark.parametrize(
    "later",
    [
        lambda pid: ev.completed(pid, lessons=f"{RESIDENT} says benches need backs; mail {RESIDENT_EMAIL}"),
        lambda pid: ev.measured(pid, 3, kpi=f"benches {RESIDENT} counts"),
        lambda pid: ev.status(pid, "in_evaluation", "withdrawn", reason=f"{RESIDENT} moved away"),
        lambda pid: ev.decided(pid, rationale=f"Good idea from {RESIDENT}."),
    ],
)
def test_later_events_of_a_residents_proposal_are_redacted_too(uow, later):
    pid = str(uuid.uuid4())
    apply(uow, resident_submission(pid))
    plain, trusted = webhook(uow, DEPT_A), webhook(uow, RESEARCH)
    apply(uow, later(pid))
    received = payload_for(uow, plain)
    assert leaks(received) == [] and RESIDENT_EMAIL not in json.dumps(received)
    decode(parse_envelope(json.dumps(received).encode()))
    assert leaks(payload_for(uow, trusted)) != []


def test_a_screening_that_quotes_another_residents_title_is_redacted(uow):
    other, pid = str(uuid.uuid4()), str(uuid.uuid4())
    apply(uow, resident_submission(other))
    apply(uow, ev.submitted(pid))
    plain = webhook(uow, DEPT_A)
    screening = ev.screened(pid, passed=False)
    screening["data"]["failed_rules"] = [
        {
            "rule": "duplicate",
            "reason": (f"title is near-identical (93%) to open proposal {other} ('Benches by {RESIDENT}')"),
        }
    ]
    apply(uow, screening)
    assert leaks(payload_for(uow, plain)) == []


def test_email_subscribers_and_digests_get_redacted_text_but_the_proposer_gets_their_own(uow):
    pid = str(uuid.uuid4())
    apply(uow, ev.contact(pid, RESIDENT_EMAIL))
    apply(uow, resident_submission(pid))
    mail = handlers.create_subscription(
        NewSubscription(subscriber="a", channel="email", email="a@espoo.example"), uow, DEPT_A
    )
    digest = handlers.create_subscription(
        NewSubscription(subscriber="a", channel="email", email="a@espoo.example", mode="daily_digest"), uow, DEPT_A
    )
    apply(uow, ev.status(pid, "screening", "in_evaluation"))
    assert leaks(payload_for(uow, mail)) == []
    assert [
        leaks(json.loads(i["payload"])) for i in uow.digests.items.values() if i["subscription_id"] == digest.id
    ] == [[]]
    [proposer] = [d for d in uow.deliveries.rows.values() if d.kind == "proposer"]
    assert json.loads(proposer.payload)["proposal"]["title"] == f"Benches by {RESIDENT}", "unchanged"


def test_a_company_proposal_reaches_subscribers_as_it_was_published(uow):
    plain = webhook(uow, DEPT_A)
    apply(uow, ev.submitted("p-1", proposer={"organisation": "Example Mobility Oy", "kind": "company"}))
    assert payload_for(uow, plain)["data"]["proposer"]["organisation"] == "Example Mobility Oy"


def test_evaluator_names_are_not_forwarded_without_the_scope():
    data = {
        "proposal_id": "p",
        "focus_area": "learning",
        "evaluators": ["aino", "eero"],
        "opened_at": "2026-03-02T10:00:00Z",
        "due_at": "2026-03-09T10:00:00Z",
    }
    redacted = redact_event_data(types.EVALUATION_OPENED.name, data)
    assert redacted["evaluators"] == [REDACTED, REDACTED] and data["evaluators"] == ["aino", "eero"]
    assert {k: v for k, v in redacted.items() if k != "evaluators"} == {
        k: v for k, v in data.items() if k != "evaluators"
    }


def test_ids_codes_and_times_are_never_redacted():
    # A resident whose name is also a word in an id or a code: only free text changes.
    data = {
        "proposal_id": "kera-1",
        "focus_area": "learning",
        "environment": "kera",
        "from_status": "approved",
        "to_status": "withdrawn",
        "changed_at": "2026-03-02T10:00:00Z",
        "reason": "Kera said no",
    }
    redacted = redact_event_data(types.PROPOSAL_STATUS_CHANGED.name, data, ("Kera",))
    assert redacted == {**data, "reason": f"{REDACTED} said no"}


# e-mail errors say a code or a category, not the mail server's words ----------------------------
def test_smtp_errors_are_reported_without_the_servers_text():
    import socket as sockets

    from aiosmtpd.controller import Controller

    from services.notifications.emails import Rendered, compose, send_mail
    from services.notifications.settings import MailSettings

    class Refusing:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            return "550 5.1.1 mailbox unknown on relay-7.internal.espoo (Postfix 3.7, user db v2)"

    with sockets.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    message = compose(
        "kokeilu@espoo.example",
        "x@espoo.example",
        Rendered("s", "b\n", "<p>b</p>\n", "fi"),
        domain="kokeilu.espoo.fi",
        message_id="d-1",
    )
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        refused = send_mail(MailSettings(host="127.0.0.1", port=port), message)
    finally:
        controller.stop()
    assert refused == (550, "recipient refused: SMTP 550")
    assert send_mail(MailSettings(host="127.0.0.1", port=port, timeout_seconds=2), message) == (
        None,
        "connection refused",
    )
