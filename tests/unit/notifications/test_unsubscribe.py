"""Unsubscribe links: signed tokens (made, checked, refused when forged), and what following one
does on a real SQLite store: a subscription stops, a digest stops every subscription it gathered,
a proposer's opt-out stops further e-mails about that proposal (queued ones too)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from services.notifications import handlers
from services.notifications.domain import Caller, NewSubscription, RetryPolicy
from services.notifications.unsubscribe import InvalidToken, Links, Target, key_from
from tests import builders as ev
from tests.unit.fakes import FakeSender

KEY = b"k" * 32
BASE = "https://kokeilu.espoo.fi/notifications"
ADMIN = Caller("admin", admin=True)
STATUS = "fi.espoo.kokeilu.proposal.status-changed"
SUB_ID = "0b8e7c9e-1a2b-4c3d-8e9f-0123456789ab"


# tokens ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, name", [("s", "subscription"), ("d", "digest"), ("p", "proposer")])
def test_a_token_names_what_it_was_made_for(kind, name):
    links = Links(KEY, BASE)
    assert links.verify(links.token(kind, SUB_ID)) == Target(name, SUB_ID)
    assert links.url(kind, SUB_ID).startswith(f"{BASE}/v1/unsubscribe/")


def test_a_token_of_the_longest_id_fits_in_a_path_segment():
    token = Links(KEY, BASE).token("p", "x" * 64)
    assert len(token) <= 200 and all(c.isalnum() or c in "-_." for c in token)


def test_a_token_made_with_another_key_or_altered_is_refused():
    links, other = Links(KEY, BASE), Links(b"o" * 32, BASE)
    token = links.token("s", SUB_ID)
    payload, signature = token.split(".")
    forged_payload = Links(KEY, BASE).token("s", "another-subscription").split(".")[0]
    for bad in (
        other.token("s", SUB_ID),
        f"{forged_payload}.{signature}",
        f"{payload}.{signature[:-4]}",
        f"{payload}.{signature[::-1]}",
    ):
        with pytest.raises(InvalidToken, match="signature does not match"):
            links.verify(bad)


@pytest.mark.parametrize("token", ["", "nodot", ".sig", "payload.", "a.b.c", "pay load.sig", "äää.sig", "a+b.c/d"])
def test_a_malformed_token_is_refused_saying_so(token):
    with pytest.raises(InvalidToken) as caught:
        Links(KEY, BASE).verify(token)
    assert caught.value.problem.startswith(("malformed", "signature does not match"))


def test_the_key_is_the_secret_or_one_derived_from_the_admin_token_with_a_warning(caplog):
    assert key_from("s" * 40, "admin") == b"s" * 40
    with caplog.at_level(logging.WARNING, logger="services.notifications.unsubscribe"):
        derived = key_from(None, "admin-token")
    assert derived == key_from(None, "admin-token") != key_from(None, "another-admin-token")
    assert len(derived) == 32 and "KOKEILU_UNSUBSCRIBE_SECRET is not set" in caplog.text
    assert key_from(None, None) != key_from(None, None)  # random: links die with the process


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match="an unsubscribe key has at least 32 bytes"):
        Links(b"short", BASE)


@pytest.mark.parametrize(
    "variable, value",
    [
        ("KOKEILU_UNSUBSCRIBE_SECRET", "too-short"),
        ("KOKEILU_UNSUBSCRIBE_BASE_URL", "ftp://kokeilu.espoo.fi"),
        ("KOKEILU_UNSUBSCRIBE_BASE_URL", "https://x.fi/?q=1"),
        ("KOKEILU_MAIL_DOMAIN", "localhost"),
    ],
)
def test_settings_that_would_make_broken_links_or_headers_are_refused(monkeypatch, variable, value):
    from pydantic import ValidationError

    from services.notifications.settings import NotificationSettings

    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        NotificationSettings()


def test_the_default_link_base_is_this_process_own_address(monkeypatch):
    from services.notifications.settings import NotificationSettings

    monkeypatch.delenv("KOKEILU_UNSUBSCRIBE_BASE_URL", raising=False)
    monkeypatch.setenv("WEB_SERVER_ADDRESS", "0.0.0.0:8003")
    assert NotificationSettings().unsubscribe_base() == "http://127.0.0.1:8003"
    monkeypatch.setenv("KOKEILU_UNSUBSCRIBE_BASE_URL", "https://kokeilu.espoo.fi/notifications/")
    assert NotificationSettings().unsubscribe_base() == "https://kokeilu.espoo.fi/notifications"


# following a link, on a real store -------------------------------------------------------------


class Outbox:
    """The mailer and renderer deliver_due is given: records who got what, with which link."""

    def __init__(self):
        self.sent: list[tuple[str, str, str | None]] = []  # (to, kind, link)

    def render(self, kind, payload, language, link):
        return kind

    def mail(self, to, kind, message_id, link):
        self.sent.append((to, kind, link))
        return 250, None


def deliver(uow_factory, links=None) -> Outbox:
    outbox = Outbox()
    while handlers.deliver_due(
        uow_factory,
        FakeSender((204, None)),
        RetryPolicy(),
        mail=outbox.mail,
        render=outbox.render,
        links=links or Links(KEY, BASE).url,
    ):
        pass
    return outbox


def email_subscription(uow_factory, address, mode="immediate"):
    return handlers.create_subscription(
        NewSubscription.model_validate(
            {
                "subscriber": "Education",
                "channel": "email",
                "email": address,
                "mode": mode,
                "filter": {"types": [STATUS]},
            }
        ),
        uow_factory(),
        ADMIN,
    )


def follow(link: str, uow_factory):
    target = Links(KEY, BASE).verify(link.rsplit("/", 1)[1])
    return handlers.unsubscribe(target.kind, target.id, uow_factory())


def test_a_subscribers_link_stops_that_subscription_and_only_it_once_and_for_all(uow_factory, apply):
    mine = email_subscription(uow_factory, "edu@espoo.example")
    other = email_subscription(uow_factory, "env@espoo.example")
    apply(ev.status("p-1", "in_evaluation", "approved"))
    sent = deliver(uow_factory).sent
    [(_, _, link)] = [s for s in sent if s[0] == "edu@espoo.example"]
    assert Links(KEY, BASE).verify(link.rsplit("/", 1)[1]) == Target("subscription", mine.id)
    assert follow(link, uow_factory) == 1
    assert follow(link, uow_factory) == 0, "idempotent"
    apply(ev.status("p-1", "approved", "piloting"))
    assert [s[0] for s in deliver(uow_factory).sent] == ["env@espoo.example"]
    assert [s.id for s in handlers.list_subscriptions(uow_factory(), ADMIN)] == [other.id]


def test_a_digests_link_stops_every_subscription_the_digest_gathered(uow_factory, monkeypatch, apply):
    first = email_subscription(uow_factory, "edu@espoo.example", mode="daily_digest")
    second = email_subscription(uow_factory, "edu@espoo.example", mode="daily_digest")
    day = datetime(2026, 3, 1, 9, tzinfo=UTC)
    monkeypatch.setattr(handlers, "utcnow", lambda: day)
    apply(ev.status("p-1", "in_evaluation", "approved"))
    assert handlers.build_digests(uow_factory, 86400, now=day + timedelta(days=1)) == [1]
    monkeypatch.setattr(handlers, "utcnow", lambda: day + timedelta(days=1))
    [(to, kind, link)] = deliver(uow_factory).sent
    assert (to, kind) == ("edu@espoo.example", "digest")
    assert Links(KEY, BASE).verify(link.rsplit("/", 1)[1]).kind == "digest"
    assert follow(link, uow_factory) == 2
    assert {s.id for s in handlers.list_subscriptions(uow_factory(), ADMIN)}.isdisjoint({first.id, second.id})


def test_a_proposers_opt_out_stops_later_and_queued_emails_about_that_proposal_only(uow_factory, apply):
    for pid in ("p-1", "p-2"):
        apply(ev.contact(pid, "maija@example.fi"))
        apply(ev.submitted(pid))
    apply(ev.status("p-1", "screening", "in_evaluation"))
    [(to, kind, link)] = deliver(uow_factory).sent
    assert (to, kind) == ("maija@example.fi", "proposer")
    assert Links(KEY, BASE).verify(link.rsplit("/", 1)[1]) == Target("proposer", "p-1")
    # One more is queued before she follows the link: it does not go out either.
    apply(ev.status("p-1", "in_evaluation", "approved"))
    assert follow(link, uow_factory) == 1
    assert follow(link, uow_factory) == 0, "idempotent"
    apply(ev.status("p-1", "approved", "piloting"))
    apply(ev.status("p-2", "screening", "in_evaluation"))
    sent = deliver(uow_factory).sent
    assert [(to, kind, Links(KEY, BASE).verify(link.rsplit("/", 1)[1]).id) for to, kind, link in sent] == [
        ("maija@example.fi", "proposer", "p-2")
    ], "her other proposal still reports to her"
    with uow_factory() as uow:
        assert uow.subscriptions.proposal("p-1")["proposer_opted_out_at"] is not None


def test_an_opt_out_for_a_proposal_not_known_yet_holds_when_it_arrives(uow_factory, apply):
    assert handlers.unsubscribe("proposer", "p-9", uow_factory()) == 1
    apply(ev.contact("p-9", "maija@example.fi"))
    apply(ev.submitted("p-9"))
    apply(ev.status("p-9", "screening", "in_evaluation"))
    assert deliver(uow_factory).sent == []
    assert handlers.list_deliveries(uow_factory(), None, None, 10, kind="proposer", caller=ADMIN) == []


def test_an_email_whose_target_no_link_can_name_still_goes_out_without_a_link(uow_factory):
    with uow_factory() as uow:
        uow.deliveries.add(
            "d-1",
            "proposer:not a plain id/..",
            "e-1",
            STATUS,
            json.dumps({}).encode(),
            datetime.now(UTC),
            kind="proposer",
            channel="email",
            recipient="maija@example.fi",
        )
        uow.commit()
    assert deliver(uow_factory).sent == [("maija@example.fi", "proposer", None)]
