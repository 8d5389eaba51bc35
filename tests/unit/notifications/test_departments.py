"""Notifications for departments: signatures, filters, subscription changes, e-mail templates,
and one digest per subscriber per window (on a real SQLite store: grouping is a query)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.notifications import emails, handlers
from services.notifications.domain import (
    Caller,
    NewSubscription,
    RetryPolicy,
    SubscriptionChange,
    signature,
    verify_signature,
    window_end,
)
from tests import builders as ev

STATUS = "fi.espoo.kokeilu.proposal.status-changed"
ADMIN = Caller("admin", admin=True)


def test_a_signature_verifies_only_with_its_secret_body_and_a_fresh_timestamp():
    header = signature("s3cret", 1_700_000_000, b'{"a":1}')
    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64
    assert verify_signature("s3cret", header, b'{"a":1}', now=1_700_000_100)
    assert not verify_signature("other", header, b'{"a":1}', now=1_700_000_100)
    assert not verify_signature("s3cret", header, b'{"a":2}', now=1_700_000_100)
    assert not verify_signature("s3cret", header, b'{"a":1}', now=1_700_001_000)  # a replay, too late
    assert not verify_signature("s3cret", "garbage", b"", now=0)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"subscriber": "X", "channel": "email"}, "email address"),
        ({"subscriber": "X", "channel": "webhook"}, "needs a url"),
        (
            {"subscriber": "X", "channel": "webhook", "url": "http://127.0.0.1/h", "mode": "daily_digest"},
            "channel email",
        ),
    ],
)
def test_a_subscription_needs_the_address_its_channel_uses(body, field):
    with pytest.raises(ValidationError, match=field):
        NewSubscription.model_validate(body)


def test_filters_on_environment_and_one_proposal():
    sub = handlers.Subscription(
        "s",
        "Edu",
        "email",
        None,
        NewSubscription.model_validate(
            {
                "subscriber": "Edu",
                "channel": "email",
                "email": "edu@espoo.example",
                "filter": {"environments": ["kera"], "proposal_id": "p-1"},
            }
        ).filter,
        datetime.now(UTC),
    )
    assert sub.matches(STATUS, "learning", "kera", "p-1")
    assert not sub.matches(STATUS, "learning", "school", "p-1")
    assert not sub.matches(STATUS, "learning", "kera", "p-2")
    assert not sub.matches(STATUS, "learning", None, "p-1")


def test_a_change_that_leaves_a_subscription_without_its_address_is_refused():
    sub = handlers.Subscription(
        "s",
        "Edu",
        "email",
        None,
        NewSubscription.model_validate({"subscriber": "Edu", "channel": "email", "email": "a@b.fi"}).filter,
        datetime.now(UTC),
        email="a@b.fi",
    )
    assert sub.changed(SubscriptionChange(mode="daily_digest")).mode == "daily_digest"
    assert sub.changed(SubscriptionChange(email="c@d.fi")).email == "c@d.fi"


def test_smtp_replies_4xx_are_retried_and_5xx_are_final():
    policy = RetryPolicy()
    assert policy.retryable(None, "email") and policy.retryable(451, "email")
    assert not policy.retryable(550, "email")
    assert policy.retryable(503, "webhook") and not policy.retryable(404, "webhook")


@pytest.mark.parametrize(
    "language, subject",
    [
        ("fi", "Ehdotuksesi hyväksyttiin: Bus"),
        ("sv", "Ditt förslag godkändes: Bus"),
        ("en", "Your proposal was approved: Bus"),
    ],
)
def test_a_proposer_email_is_in_the_proposals_language(language, subject):
    event = ev.status("p-1", "in_evaluation", "approved")
    assert emails.render("proposer", {"event": event, "proposal": {"title": "Bus"}}, language).subject == subject


def test_windows_are_aligned_and_the_last_closed_one_is_named():
    at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert window_end(at, 86400) == datetime(2026, 3, 1, tzinfo=UTC)
    assert window_end(at, 3600) == datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_one_digest_per_subscriber_per_window_from_one_job(uow_factory, monkeypatch, apply):
    for address in ("edu@espoo.example", "env@espoo.example"):
        handlers.create_subscription(
            NewSubscription.model_validate(
                {
                    "subscriber": address.split("@")[0],
                    "channel": "email",
                    "email": address,
                    "mode": "daily_digest",
                    "filter": {"types": [STATUS]},
                }
            ),
            uow_factory(),
            ADMIN,
        )
    day = datetime(2026, 3, 1, 9, tzinfo=UTC)
    monkeypatch.setattr(handlers, "utcnow", lambda: day)
    for n in range(3):
        apply(ev.status(f"p-{n}", "in_evaluation", "approved"))
    later = day + timedelta(days=1)
    sizes = handlers.build_digests(uow_factory, 86400, now=later)
    assert sizes == [3, 3]
    assert handlers.build_digests(uow_factory, 86400, now=later + timedelta(minutes=5)) == []  # the window's job ran
    digests = handlers.list_deliveries(uow_factory(), None, "pending", 10, kind="digest", caller=ADMIN)
    assert len(digests) == 2 and {d["channel"] for d in digests} == {"email"}
