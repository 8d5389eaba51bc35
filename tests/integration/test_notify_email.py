"""E-mail done properly, end to end: the notifications service as a real process on the real broker
sends to a real SMTP server (aiosmtpd, tests.support.Mailbox); what the server received is parsed
with Python's email package (policy=default): every header parses without a defect, the subject
keeps every word in fi, sv and en, both parts (text and HTML) are there, and the List-Unsubscribe
link works: POSTed (RFC 8058 one-click) it stops the subscription, or the proposer's e-mails about
that proposal, and no further e-mail goes there."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser

import pytest
import requests

from tests import builders as ev
from tests.support import AUTH, Platform, send_events, wait_until

pytestmark = pytest.mark.kafka

STATUS = "fi.espoo.kokeilu.proposal.status-changed"
DOMAIN = "kokeilu.espoo.fi"
ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}
TITLES = {
    "fi": "Sähköpotkulautojenpysäköintialueet ja pyöräparkit Tapiolan <keskustassa> & Otaniemessä",
    "sv": "Läsvänner på Kera skola – Sähköpotkulautojenpysäköintialueet och cykelparkering",
    "en": "A long English title about an autonomous shuttle feeder between Kera station and the new housing blocks",
}
PROPOSER_SUBJECT = {
    "fi": "Ehdotuksesi on arvioitavana: ",
    "sv": "Ditt förslag utvärderas: ",
    "en": "Your proposal is being evaluated: ",
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory, mailbox):
    # No KOKEILU_UNSUBSCRIBE_SECRET nor _BASE_URL: the key is derived from the admin token and the
    # links point at the process's own address, as in `make run`.
    p = Platform(
        tmp_path_factory.mktemp("notify-email"),
        extra_env={
            "KOKEILU_SMTP_HOST": "127.0.0.1",
            "KOKEILU_SMTP_PORT": str(mailbox.port),
            "KOKEILU_MAIL_DOMAIN": DOMAIN,
            "KOKEILU_DELIVERY_MAX_ATTEMPTS": "3",
            "KOKEILU_DELIVERY_RETRY_BASE_SECONDS": "0.2",
        },
    )
    yield p.start("notifications")
    p.stop()


def subscribe(platform, address, pid):
    response = platform.post(
        "notifications",
        "/v1/subscriptions",
        {
            "subscriber": "Education department",
            "channel": "email",
            "email": address,
            "filter": {"types": [STATUS], "proposal_id": pid},
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def parsed_mail(mailbox, address):
    [raw] = wait_until(lambda: mailbox.raw_to(address), timeout=60, what=f"an e-mail to {address}")
    raw.decode("ascii")  # 7-bit clean, as a server without 8BITMIME needs
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert message.defects == []
    for name, value in message.items():
        assert value.defects == (), f"{name}: {value.defects}"
    for part in message.walk():
        assert part.defects == []
    return message


def check_mail(platform, message, *, subject, language, delivery_id, title):
    """Every header and both parts of one e-mail as received; its unsubscribe link."""
    assert message["Subject"] == subject and message["Subject"].split(" ") == subject.split(" ")
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Content-Language"] == language
    assert str(message["Date"]).endswith(" +0000")
    assert abs(message["Date"].datetime - datetime.now(UTC)) < timedelta(minutes=5)
    assert message["Message-ID"] == f"<{delivery_id}@{DOMAIN}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [link] = re.fullmatch(r"<([^<>]+)>", str(message["List-Unsubscribe"])).groups()
    assert link.startswith(platform.url("notifications", "/v1/unsubscribe/"))

    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert [p.get_content_charset() for p in message.iter_parts()] == ["utf-8", "utf-8"]
    text = message.get_body(("plain",)).get_content()
    page = message.get_body(("html",)).get_content()
    assert title in text and link in text
    assert html.escape(title, quote=True).replace("&#x27;", "&#39;") in page and f'href="{link}"' in page
    assert f'<html lang="{language}">' in page
    if "<" in title:
        assert title not in page, "the HTML part escapes what proposers wrote"
    return link


def delivery_ids(platform, subscription_id):
    items = platform.get("notifications", f"/v1/deliveries?subscription_id={subscription_id}").json()["items"]
    return [d["id"] for d in items]


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_a_subscribers_email_parses_cleanly_keeps_its_subject_and_one_click_stops_the_subscription(
    platform, probe, mailbox, language
):
    pid, tag = str(uuid.uuid4()), uuid.uuid4().hex[:8]
    address, witness = f"edu-{tag}@espoo.example", f"witness-{tag}@espoo.example"
    sub = subscribe(platform, address, pid)
    send_events(
        platform,
        probe,
        ev.submitted(pid, language=language, title=TITLES[language]),
        ev.status(pid, "in_evaluation", "approved"),
    )
    message = parsed_mail(mailbox, address)
    [delivery_id] = delivery_ids(platform, sub["id"])
    link = check_mail(
        platform,
        message,
        subject=f"Kokeilu: proposal.status-changed – {TITLES[language]}",
        language=language,
        delivery_id=delivery_id,
        title=TITLES[language],
    )

    # Opening the link (as a mail scanner does) changes nothing: a page with a button.
    opened = requests.get(link, timeout=10)
    assert opened.status_code == 200 and opened.headers["Content-Type"].startswith("text/html")
    assert '<form method="post">' in opened.text
    listed = [s["id"] for s in platform.get("notifications", "/v1/subscriptions").json()["items"]]
    assert sub["id"] in listed

    # One click (RFC 8058): what a mail program POSTs, without any token. Twice: the same answer.
    for _ in range(2):
        clicked = requests.post(link, data="List-Unsubscribe=One-Click", headers=ONE_CLICK, timeout=10)
        assert clicked.status_code == 200, clicked.text
        assert clicked.headers["Content-Type"].startswith("text/html")
    listed = [s["id"] for s in platform.get("notifications", "/v1/subscriptions").json()["items"]]
    assert sub["id"] not in listed

    # The next matching event: a witness subscribed to it gets it; the unsubscribed address does not.
    witness_sub = subscribe(platform, witness, pid)
    send_events(platform, probe, ev.status(pid, "approved", "piloting", time="2026-03-05T10:00:00Z"))
    parsed_mail(mailbox, witness)
    assert delivery_ids(platform, witness_sub["id"]), "the event was handled"
    assert delivery_ids(platform, sub["id"]) == [delivery_id], "nothing more queued for the unsubscribed"
    assert len(mailbox.raw_to(address)) == 1


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_a_proposer_can_opt_out_of_emails_about_their_proposal_with_the_link(platform, probe, mailbox, language):
    pid, tag = str(uuid.uuid4()), uuid.uuid4().hex[:8]
    address, witness = f"proposer-{tag}@example.fi", f"witness-{tag}@espoo.example"
    send_events(
        platform,
        probe,
        ev.contact(pid, address, language=language),
        ev.submitted(pid, language=language, title=TITLES[language]),
        ev.status(pid, "screening", "in_evaluation"),
    )
    message = parsed_mail(mailbox, address)
    [delivery_id] = delivery_ids(platform, f"proposer:{pid}")
    link = check_mail(
        platform,
        message,
        subject=PROPOSER_SUBJECT[language] + TITLES[language],
        language=language,
        delivery_id=delivery_id,
        title=TITLES[language],
    )

    clicked = requests.post(link, data="List-Unsubscribe=One-Click", headers=ONE_CLICK, timeout=10)
    assert clicked.status_code == 200, clicked.text

    witness_sub = subscribe(platform, witness, pid)
    send_events(platform, probe, ev.status(pid, "in_evaluation", "approved", time="2026-03-05T10:00:00Z"))
    parsed_mail(mailbox, witness)
    assert delivery_ids(platform, witness_sub["id"]), "the event was handled"
    assert delivery_ids(platform, f"proposer:{pid}") == [delivery_id], "no proposer e-mail queued after the opt-out"
    assert len(mailbox.raw_to(address)) == 1


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_forged_or_altered_link_is_a_400_naming_the_problem(platform, probe, mailbox, method):
    pid, tag = str(uuid.uuid4()), uuid.uuid4().hex[:8]
    address = f"edu-{tag}@espoo.example"
    sub = subscribe(platform, address, pid)
    send_events(platform, probe, ev.submitted(pid), ev.status(pid, "in_evaluation", "approved"))
    link = re.fullmatch(r"<([^<>]+)>", str(parsed_mail(mailbox, address)["List-Unsubscribe"])).group(1)
    payload, signature = link.rsplit("/", 1)[1].split(".")
    forged = link.rsplit("/", 1)[0] + "/" + payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    for bad, problem in ((forged, "signature does not match"), (link.rsplit(".", 1)[0], "malformed")):
        answer = requests.request(method, bad, timeout=10)
        assert answer.status_code == 400 and answer.headers["Content-Type"] == "application/json"
        error = answer.json()["error"]
        assert error["code"] == "invalid_unsubscribe_link" and error["fields"]["token"].startswith(problem)
    listed = [s["id"] for s in platform.get("notifications", "/v1/subscriptions", headers=AUTH).json()["items"]]
    assert sub["id"] in listed, "a bad link unsubscribes nothing"


def test_the_key_derived_from_the_admin_token_is_said_in_the_log(platform):
    assert "KOKEILU_UNSUBSCRIBE_SECRET is not set" in platform.log_text("notifications")
