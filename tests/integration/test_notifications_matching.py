"""Notifications finds the subscriptions an event matches through an index (SubscriptionIndex),
not by checking every active subscription: on SQLite and PostgreSQL, the index's answer is the
same as checking them all, in the same order, and a subscription made, changed or deleted by any
instance is matched (or not) from the next event on (applied in a transaction of its own; in a
run of events applied together, from the next run). Also what the consume and delivery paths
ask of the store in bulk: the subscriptions' version and a proposal's facts read once per
transaction, deliveries, digest items and attempts written together as they are one by one."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from kokeilu.contracts.catalog import BY_NAME
from kokeilu.contracts.proposals import Environment, FocusArea
from kokeilu.store import Database
from services.notifications.domain import Subscription, SubscriptionFilter
from services.notifications.store import NotificationsUnitOfWork, SubscriptionIndex
from tests.integration.test_store import ROOT

WHEN = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
TYPES = sorted(BY_NAME)
AREAS = [a.value for a in FocusArea]
ENVS = [e.value for e in Environment]
PIDS = [f"p-{i}" for i in range(6)]


@pytest.fixture
def databases(database_url):  # noqa: F811
    """Two instances' views of one store (each its own engine, so each its own index)."""
    a = Database(database_url, ROOT / "services" / "notifications" / "migrations")
    a.migrate()
    b = Database(database_url, ROOT / "services" / "notifications" / "migrations")
    yield a, b
    a.dispose()
    b.dispose()


def random_subscription(rng: random.Random, i: int) -> Subscription:
    def some(values, most=3):
        return rng.sample(values, rng.choice([0, 0, 1, 1, 2, most]))

    return Subscription(
        f"s-{i:04d}",
        f"Department {i}",
        "webhook",
        "https://example.org/hooks",
        SubscriptionFilter(
            types=some(TYPES),
            focus_areas=some(AREAS),
            environments=some(ENVS),
            proposal_id=rng.choice([None, None, None, *PIDS]),
        ),
        WHEN + timedelta(seconds=i),
    )


def add(db: Database, *subs: Subscription) -> None:
    with NotificationsUnitOfWork(db) as uow:
        for s in subs:
            uow.subscriptions.add(s)
        uow.commit()


def matching(db: Database, *event) -> list[str]:
    with NotificationsUnitOfWork(db) as uow:
        return [s.id for s in uow.subscriptions.matching(*event)]


def every_active_checked(db: Database, *event) -> list[str]:
    with NotificationsUnitOfWork(db) as uow:
        return [s.id for s in uow.subscriptions.active() if s.matches(*event)]


def test_the_index_finds_exactly_what_checking_every_subscription_finds(databases):
    db, _ = databases
    rng = random.Random(20261129)
    add(db, *(random_subscription(rng, i) for i in range(300)))
    events = [
        (rng.choice(TYPES), rng.choice([None, *AREAS]), rng.choice([None, *ENVS]), rng.choice([None, *PIDS]))
        for _ in range(400)
    ]
    found = 0
    for event in events:
        expected = every_active_checked(db, *event)
        assert matching(db, *event) == expected, event
        found += len(expected)
    assert found > 400  # the events did match subscriptions: the comparison was not of empty lists


def test_a_subscription_made_changed_or_deleted_by_another_instance_counts_from_the_next_event(databases):
    a, b = databases
    event = ("fi.espoo.kokeilu.proposal.submitted", "learning", "school", "p-1")
    assert matching(a, *event) == [] and matching(b, *event) == []  # both instances hold an index now
    learning = Subscription(
        "s-learning",
        "Education",
        "webhook",
        "https://example.org/h",
        SubscriptionFilter(focus_areas=["learning"]),
        WHEN,
    )
    add(b, learning)
    assert matching(a, *event) == ["s-learning"]
    with NotificationsUnitOfWork(b) as uow:
        uow.subscriptions.update(
            Subscription(
                "s-learning",
                "Education",
                "webhook",
                "https://example.org/h",
                SubscriptionFilter(focus_areas=["smart_mobility"]),
                WHEN,
            )
        )
        uow.commit()
    assert matching(a, *event) == []
    assert matching(a, event[0], "smart_mobility", "school", "p-1") == ["s-learning"]
    with NotificationsUnitOfWork(b) as uow:
        assert uow.subscriptions.delete("s-learning", WHEN)
        uow.commit()
    assert matching(a, event[0], "smart_mobility", "school", "p-1") == []


def test_a_change_rolled_back_is_not_matched():
    index = SubscriptionIndex([])
    assert index.candidates("t", "learning", None) == []


def test_a_subscription_rolled_back_is_not_matched_by_its_own_instance(databases):
    db, _ = databases
    event = ("fi.espoo.kokeilu.proposal.submitted", "learning", None, None)
    with NotificationsUnitOfWork(db) as uow:
        uow.subscriptions.add(
            Subscription("s-gone", "Education", "webhook", "https://example.org/h", SubscriptionFilter(), WHEN)
        )
        assert [s.id for s in uow.subscriptions.matching(*event)] == ["s-gone"]  # seen inside its transaction
    assert matching(db, *event) == []  # rolled back: not matched after


def test_a_run_of_events_in_one_transaction_reads_the_subscriptions_version_once(databases):
    from sqlalchemy import event as sa_event

    db, _ = databases
    add(db, Subscription("s-all", "Everyone", "webhook", "https://example.org/h", SubscriptionFilter(), WHEN))
    read: list[str] = []

    def seen(conn, cursor, statement, *args):
        if "subscription_changes" in statement and statement.lstrip().upper().startswith("SELECT"):
            read.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", seen)
    try:
        event = ("fi.espoo.kokeilu.proposal.submitted", "learning", None, None)
        with NotificationsUnitOfWork(db) as uow:
            for _ in range(5):
                assert [s.id for s in uow.subscriptions.matching(*event)] == ["s-all"]
            assert len(read) == 1
            uow.subscriptions.add(
                Subscription("s-new", "New", "webhook", "https://example.org/h", SubscriptionFilter(), WHEN)
            )
            assert [s.id for s in uow.subscriptions.matching(*event)] == ["s-all", "s-new"], "its own change counts"
            assert len(read) == 2
        assert matching(db, *event) == ["s-all"]  # rolled back
        assert len(read) == 3, "every transaction reads it anew"
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", seen)


def test_a_proposals_facts_are_read_once_per_transaction_and_again_after_its_own_writes(databases):
    from sqlalchemy import event as sa_event

    db, _ = databases
    read: list[str] = []

    def seen(conn, cursor, statement, *args):
        if "FROM proposal_areas" in statement and statement.lstrip().upper().startswith("SELECT"):
            read.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", seen)
    try:
        with NotificationsUnitOfWork(db) as uow:
            facts = uow.subscriptions
            assert facts.proposal("p-1") is None and facts.proposal("p-1") is None
            assert len(read) == 1
            facts.remember_proposal("p-1", "learning", "school", "fi", "Penkit", "a@espoo.example")
            assert facts.proposal("p-1")["title"] == "Penkit"
            facts.proposal("p-1")["title"] = "changed by a caller"  # a copy: the next read is not
            assert facts.proposal("p-1")["title"] == "Penkit"
            assert len(read) == 2
            facts.remember_proposal("p-1", "learning", "school", "fi", "Penkit 2", None)
            assert (facts.proposal("p-1")["title"], facts.proposal("p-1")["contact_email"]) == (
                "Penkit 2",
                "a@espoo.example",
            )
            assert facts.opt_out_proposer("p-1", WHEN)
            assert facts.proposal("p-1")["proposer_opted_out_at"] == WHEN
            assert len(read) == 4
            assert facts.proposal("p-2") is None
            assert facts.opt_out_proposer("p-2", WHEN), "not known yet: remembered as opted out"
            assert facts.proposal("p-2")["proposer_opted_out_at"] == WHEN
            assert len(read) == 7
            uow.commit()
        with NotificationsUnitOfWork(db) as uow:
            assert uow.subscriptions.proposal("p-1")["title"] == "Penkit 2"
        assert len(read) == 8, "every transaction reads them anew"
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", seen)


def test_deliveries_digest_items_and_attempts_written_together_are_as_written_one_by_one(databases):
    from datetime import timedelta

    from services.notifications.domain import DeliveryStatus
    from services.notifications.ports import AttemptMade, NewDelivery, NewDigestItem

    db, _ = databases
    add(db, Subscription("s-1", "One", "webhook", "https://example.org/h", SubscriptionFilter(), WHEN))
    queued = [
        NewDelivery(f"d-{i}", "s-1", f"e-{i}", "fi.espoo.kokeilu.proposal.submitted", b"{}", WHEN) for i in range(4)
    ]
    queued.append(
        NewDelivery(
            "d-p", "proposer:p-1", "e-0", "t", b"{}", WHEN, "proposer", "email", "a@espoo.example", "sv", "c", "tp"
        )
    )
    with NotificationsUnitOfWork(db) as uow:
        uow.deliveries.add_many(queued)
        uow.digests.add_items([NewDigestItem("s-1", f"e-{i}", "t", b"{}", WHEN) for i in range(3)])
        uow.commit()
    later = WHEN + timedelta(seconds=5)
    with NotificationsUnitOfWork(db) as uow:
        uow.deliveries.record_attempts(
            [
                AttemptMade("d-0", 1, later, 204, 0.01, None, DeliveryStatus.succeeded, None),
                AttemptMade(
                    "d-1", 1, later, 503, 0.02, "HTTP 503", DeliveryStatus.pending, later + timedelta(seconds=9)
                ),
                AttemptMade("d-p", 1, later, None, 0.03, "timeout", DeliveryStatus.failed, None),
            ]
        )
        uow.commit()
    with NotificationsUnitOfWork(db) as uow:
        listed = {d["id"]: d for d in uow.deliveries.list(None, None, 10)}
        assert len(uow.digests.pending(later)) == 3
    assert {i: (d["status"], [(a["status_code"], a["error"]) for a in d["attempts"]]) for i, d in listed.items()} == {
        "d-0": ("succeeded", [(204, None)]),
        "d-1": ("pending", [(503, "HTTP 503")]),
        "d-2": ("pending", []),
        "d-3": ("pending", []),
        "d-p": ("failed", [(None, "timeout")]),
    }
    assert listed["d-1"]["next_attempt_at"] == (later + timedelta(seconds=9)).isoformat()
    assert (listed["d-p"]["kind"], listed["d-p"]["channel"]) == ("proposer", "email")
