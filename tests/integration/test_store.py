"""The store layer on SQLite and on a real PostgreSQL server: migrations, unit of work, outbox, inbox."""

import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from kokeilu import tracing
from kokeilu.contracts import CloudEvent, new_event
from kokeilu.contracts import catalog as types
from kokeilu.contracts.evaluation import ScreeningCompleted
from kokeilu.kafka.deadletter import dead_letter
from kokeilu.store import OUTBOX, Database, OutboxReader, Relayed, UnitOfWork
from kokeilu.store.statements import insert_rows
from kokeilu.store.unit_of_work import RecordSavepoint, Savepoint

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["proposals", "evaluation", "notifications", "catalogue"]


def screening_event(pid: str | None = None) -> CloudEvent:
    pid = pid or str(uuid.uuid4())
    return new_event(
        types.SCREENING_COMPLETED.name,
        ScreeningCompleted(proposal_id=pid, passed=True, screened_at=datetime.now(UTC)),
        source="tests",
        subject=pid,
    )


def screenings_recorded(database: Database, count: int) -> list[str]:
    """`count` screening events recorded, each in a transaction of its own; their subjects."""
    pids = [str(uuid.uuid4()) for _ in range(count)]
    for pid in pids:
        with UnitOfWork(database) as uow:
            uow.publish(screening_event(pid))
            uow.commit()
    return pids


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_migrates_to_head_and_again_without_change(database_url, service):
    db = Database(database_url, ROOT / "services" / service / "migrations")
    db.migrate()
    db.migrate()
    tables = set(sa.inspect(db.engine).get_table_names())
    assert {"outbox", "inbox", "alembic_version"} <= tables
    db.dispose()


@pytest.fixture
def database(database_url):
    db = Database(database_url, ROOT / "services" / "evaluation" / "migrations")
    db.migrate()
    yield db
    db.dispose()


def test_outbox_rows_commit_with_the_change_or_not_at_all(database):
    woken = []
    with UnitOfWork(database, on_commit=lambda: woken.append(1)) as uow:
        uow.publish(screening_event())
        uow.commit()
    with pytest.raises(RuntimeError):
        with UnitOfWork(database) as uow:
            uow.publish(screening_event())
            raise RuntimeError("the change failed")
    with UnitOfWork(database) as uow:
        uow.publish(screening_event())  # left without commit: rolled back
    assert OutboxReader(database).backlog() == 1
    assert woken == [1]


def test_the_inbox_says_first_time_once_per_consumer(database):
    event = screening_event()
    with UnitOfWork(database) as uow:
        assert uow.first_time("catalogue", event) is True
        uow.commit()
    with UnitOfWork(database) as uow:
        assert uow.first_time("catalogue", event) is False
        assert uow.first_time("notifications", event) is True


def test_the_relay_hands_rows_over_in_order_and_marks_them_sent(database):
    pids = screenings_recorded(database, 5)
    reader = OutboxReader(database)
    seen = []
    assert reader.relay(3, lambda rows: sent(seen, rows)) == 3
    assert reader.relay(10, lambda rows: sent(seen, rows)) == 2
    assert seen == pids
    assert reader.backlog() == 0


def sent(seen: list, rows) -> Relayed:
    seen.extend(r.key for r in rows)
    return Relayed(sent=[r.id for r in rows])


def test_two_relays_on_one_store_take_turns_and_publish_each_row_once(database, database_url):
    """Two instances' relays on one store (PostgreSQL: an advisory lock; SQLite: a file lock
    beside the store, since its relay reads, publishes and marks in three steps). Naive: the
    second reads the rows the first is still publishing, and publishes them again."""
    pids = screenings_recorded(database, 5)
    other = Database(database_url)
    first_inside, release, second_published = threading.Event(), threading.Event(), threading.Event()
    seen_first: list = []
    seen_second: list = []

    def publish_first(rows) -> Relayed:
        first_inside.set()
        assert release.wait(30)
        return sent(seen_first, rows)

    def publish_second(rows) -> Relayed:
        second_published.set()
        return sent(seen_second, rows)

    first = threading.Thread(target=OutboxReader(database).relay, args=(100, publish_first))
    second = threading.Thread(target=OutboxReader(other).relay, args=(100, publish_second))
    first.start()
    try:
        assert first_inside.wait(10)
        second.start()
        assert not second_published.wait(0.5), "the second relay published while the first was publishing"
    finally:
        release.set()
        first.join(30)
        if second.ident is not None:  # started
            second.join(30)
    other.dispose()
    assert seen_first == pids
    assert seen_second == []
    assert OutboxReader(database).backlog() == 0


def test_a_row_that_can_never_be_sent_is_parked_as_a_dead_letter_and_the_rest_go_on(database):
    pids = screenings_recorded(database, 3)
    reader = OutboxReader(database)

    def middle_too_large(rows):
        too_large = rows[1]
        letter = dead_letter(
            too_large.value,
            too_large.key,
            "unpublishable",
            "MessageSizeTooLargeError: 2 MB",
            "tests",
            topic=too_large.topic,
            outbox_id=too_large.id,
        )
        return Relayed(sent=[rows[0].id, rows[2].id], parked={too_large.id: letter})

    assert reader.relay(10, middle_too_large) == 3
    # The dead letter is now the only row left to publish; nothing stays behind the parked row.
    seen = []
    assert reader.relay(10, lambda rows: sent(seen, rows)) == 1
    assert seen == [pids[1]]
    with database.transaction() as conn:
        letter = conn.execute(sa.select(OUTBOX).where(OUTBOX.c.topic == "kokeilu.deadletter.v1")).one()
    assert (
        letter.headers["kokeilu.reason"] == "unpublishable"
        and letter.headers["kokeilu.source.topic"] == "kokeilu.evaluations.v1"
    )
    assert reader.backlog() == 0


def test_a_transient_failure_keeps_what_was_acknowledged_before_it(database):
    for _ in range(3):
        with UnitOfWork(database) as uow:
            uow.publish(screening_event())
            uow.commit()
    reader = OutboxReader(database)
    with pytest.raises(ConnectionError):
        reader.relay(10, lambda rows: Relayed(sent=[rows[0].id], error=ConnectionError("broker gone")))
    assert reader.backlog() == 2


def test_a_failed_publish_leaves_the_rows_unsent(database):
    with UnitOfWork(database) as uow:
        uow.publish(screening_event())
        uow.commit()
    reader = OutboxReader(database)

    def broker_down(rows):
        raise ConnectionError("broker unavailable")

    with pytest.raises(ConnectionError):
        reader.relay(10, broker_down)
    assert reader.backlog() == 1


def test_sent_rows_are_pruned_after_the_retention(database):
    with UnitOfWork(database) as uow:
        uow.publish(screening_event())
        uow.commit()
    reader = OutboxReader(database)
    reader.relay(10, lambda rows: Relayed(sent=[r.id for r in rows]))
    from datetime import timedelta

    assert reader.prune(timedelta(days=1)) == 0
    assert reader.prune(timedelta(seconds=-1)) == 1
    with database.transaction() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar_one() == 0


def test_timestamps_come_back_timezone_aware(database):
    with UnitOfWork(database) as uow:
        uow.publish(screening_event())
        uow.commit()
    with database.transaction() as conn:
        created = conn.execute(sa.select(OUTBOX.c.created_at)).scalar_one()
    assert created.tzinfo is not None


def test_a_deleted_subscription_gets_no_more_attempts(database_url):
    from kokeilu.contracts import utcnow
    from services.notifications import handlers
    from services.notifications.domain import Caller, NewSubscription
    from services.notifications.store import NotificationsUnitOfWork

    db = Database(database_url, ROOT / "services" / "notifications" / "migrations")
    db.migrate()
    uow = lambda: NotificationsUnitOfWork(db)  # noqa: E731
    owner = Caller("dept")
    kept = handlers.create_subscription(
        NewSubscription(subscriber="A", channel="webhook", url="http://127.0.0.1/a"), uow(), owner
    )
    gone = handlers.create_subscription(
        NewSubscription(subscriber="B", channel="webhook", url="http://127.0.0.1/b"), uow(), owner
    )
    with uow() as u:
        for sub in (kept, gone):
            u.deliveries.add(str(uuid.uuid4()), sub.id, "e-1", "fi.espoo.kokeilu.result.published", b"{}", utcnow())
        u.commit()
    assert handlers.delete_subscription(gone.id, uow(), owner)
    from datetime import timedelta

    with uow() as u:
        due = u.deliveries.claim_due(utcnow(), 10, timedelta(seconds=60))
        u.commit()
    assert [d.subscription_id for d in due] == [kept.id]
    db.dispose()


def test_subscription_owners_and_the_personal_data_flag_round_trip(database_url):
    from kokeilu.contracts import utcnow
    from services.notifications import handlers
    from services.notifications.domain import Caller, NewSubscription
    from services.notifications.store import NotificationsUnitOfWork

    db = Database(database_url, ROOT / "services" / "notifications" / "migrations")
    db.migrate()
    uow = lambda: NotificationsUnitOfWork(db)  # noqa: E731
    a, r = Caller("dept-a"), Caller("research", personal_data=True)
    mine = handlers.create_subscription(
        NewSubscription(subscriber="A", channel="webhook", url="http://x.example/a"), uow(), a
    )
    theirs = handlers.create_subscription(
        NewSubscription(subscriber="R", channel="webhook", url="http://x.example/r"), uow(), r
    )
    with uow() as u:
        for sub in (mine, theirs):
            u.deliveries.add(str(uuid.uuid4()), sub.id, "e-1", "fi.espoo.kokeilu.result.published", b"{}", utcnow())
        u.subscriptions.remember_proposal(
            "p-1", "learning", "kera", "fi", "t", None, resident_name="Maija M", content=True
        )
        u.commit()
    assert [(s.owner, s.personal_data) for s in handlers.list_subscriptions(uow(), Caller("admin", admin=True))] == [
        ("dept-a", False),
        ("research", True),
    ]
    assert [d["subscription_id"] for d in handlers.list_deliveries(uow(), None, None, 10, caller=a)] == [mine.id]
    assert len(handlers.list_deliveries(uow(), None, None, 10, caller=Caller("admin", admin=True))) == 2
    with uow() as u:
        assert u.subscriptions.proposal("p-1")["resident_name"] == "Maija M"
    db.dispose()


def test_a_proposers_opt_out_keeps_their_queued_emails_unclaimed_and_a_digest_knows_its_subscriptions(database_url):
    from datetime import timedelta

    from services.notifications.store import NotificationsUnitOfWork

    db = Database(database_url, ROOT / "services" / "notifications" / "migrations")
    db.migrate()
    now = datetime.now(UTC)
    with NotificationsUnitOfWork(db) as u:
        u.subscriptions.remember_proposal("p-1", "learning", "kera", "fi", "t", "maija@example.fi")
        for pid in ("p-1", "p-2"):
            u.deliveries.add(
                f"d-{pid}",
                f"proposer:{pid}",
                "e-1",
                "t",
                b"{}",
                now,
                kind="proposer",
                channel="email",
                recipient="maija@example.fi",
            )
        u.digests.add_item("s-1", "e-1", "t", b"{}", now)
        u.digests.add_item("s-2", "e-1", "t", b"{}", now)
        u.digests.add_item("s-3", "e-2", "t", b"{}", now)
        u.digests.mark([1, 2], "digest-1")
        assert u.subscriptions.opt_out_proposer("p-1", now) is True
        assert u.subscriptions.opt_out_proposer("p-1", now + timedelta(seconds=1)) is False  # the first one counts
        assert u.subscriptions.opt_out_proposer("p-unknown", now) is True
        u.commit()
    with NotificationsUnitOfWork(db) as u:
        assert u.subscriptions.proposal("p-1")["proposer_opted_out_at"] == now
        assert u.subscriptions.proposal("p-1")["contact_email"] == "maija@example.fi"
        assert u.subscriptions.proposal("p-unknown")["proposer_opted_out_at"] == now
        assert [d.id for d in u.deliveries.claim_due(now + timedelta(seconds=5), 10, timedelta(seconds=60))] == [
            "d-p-2"
        ]
        assert u.digests.subscriptions_of("digest-1") == ["s-1", "s-2"]
        u.commit()
    db.dispose()


def test_subscriptions_from_before_owners_belong_to_admin_and_carry_no_personal_data(database_url):
    from alembic import command
    from alembic.config import Config

    from services.notifications import handlers
    from services.notifications.domain import Caller

    db = Database(database_url, ROOT / "services" / "notifications" / "migrations")
    cfg = Config()
    cfg.set_main_option("script_location", str(db.migrations))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO subscriptions (id, subscriber, channel, url, filter, created_at) "
                "VALUES ('old-1', 'Old dept', 'webhook', 'https://u:p@x.example/', '{}', :at)"
            ),
            {"at": datetime.now(UTC)},
        )
    db.migrate()
    from services.notifications.store import NotificationsUnitOfWork

    uow = lambda: NotificationsUnitOfWork(db)  # noqa: E731
    [old] = handlers.list_subscriptions(uow(), Caller("admin", admin=True))
    assert (old.id, old.owner, old.personal_data) == ("old-1", "admin", False)
    assert handlers.list_subscriptions(uow(), Caller("old-dept")) == []
    db.dispose()


def test_the_kept_workload_equals_the_counted_one_through_an_evaluations_life(database_url):
    from services.evaluation.domain import Evaluation
    from services.evaluation.settings import Workflow
    from services.evaluation.store import EvaluationUnitOfWork

    db = Database(database_url, ROOT / "services" / "evaluation" / "migrations")
    db.migrate()
    now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    rubric = Workflow().rubric
    scores = {c: 4 for c in rubric.weights}

    def step(change):
        with EvaluationUnitOfWork(db) as uow:
            change(uow)
            uow.commit()
        with EvaluationUnitOfWork(db) as uow:
            kept, counted = uow.evaluations.workload(), uow.evaluations.counted_workload()
        assert kept == counted
        return kept

    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    assert step(
        lambda uow: uow.evaluations.add(
            Evaluation.open(first, 1, "learning", "A", 1000, False, ["anna", "bert"], now, now)
        )
    ) == {"anna": 1, "bert": 1}
    assert step(
        lambda uow: uow.evaluations.add(
            Evaluation.open(second, 1, "learning", "B", 1000, False, ["anna", "cecilia"], now, now)
        )
    ) == {"anna": 2, "bert": 1, "cecilia": 1}
    # anna declares a conflict on the first and dora replaces her; bert scores it
    step(
        lambda uow: uow.evaluations.save(
            uow.evaluations.current(first).declare("anna", True, "my company", now, "dora")
        )
    )
    assert step(
        lambda uow: uow.evaluations.save(
            uow.evaluations.current(first).declare("bert", False, None, now, None).score("bert", scores, None, now)
        )
    ) == {"anna": 1, "cecilia": 1, "dora": 1}
    # the second is closed (withdrawn): its assignments leave the workload
    assert step(lambda uow: uow.evaluations.save(uow.evaluations.current(second).close(now))) == {"dora": 1}

    # a second revision of the first opens while the first revision closes
    def revise(uow):
        uow.evaluations.save(uow.evaluations.current(first).close(now))
        uow.evaluations.add(Evaluation.open(first, 2, "learning", "A2", 1000, False, ["bert", "erik"], now, now))

    assert step(revise) == {"bert": 1, "erik": 1}


def test_the_workload_migration_counts_the_evaluations_already_stored(database_url):
    from services.evaluation.store import EvaluationUnitOfWork

    db = Database(database_url, ROOT / "services" / "evaluation" / "migrations")
    db.migrate("0002")  # the schema of the release before
    now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    with db.engine.begin() as conn:  # rows as the release before wrote them
        for pid, status, evaluators in (
            ("p1", "open", ["anna", "bert"]),
            ("p2", "open", ["anna"]),
            ("p3", "decided", ["anna"]),
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO evaluations (proposal_id, revision, focus_area, title, budget_eur, "
                    "external_funding_sought, status, opened_at, due_at) VALUES "
                    "(:p, 1, 'learning', 't', 1, false, :s, :now, :now)"
                ),
                {"p": pid, "s": status, "now": now},
            )
            for i, name in enumerate(evaluators):
                conn.execute(
                    sa.text(
                        "INSERT INTO assignments (proposal_id, revision, evaluator, position, assigned_at, "
                        "recused) VALUES (:p, 1, :e, :i, :now, false)"
                    ),
                    {"p": pid, "e": name, "i": i, "now": now},
                )
    db.migrate()
    with EvaluationUnitOfWork(db) as uow:
        assert uow.evaluations.workload() == uow.evaluations.counted_workload() == {"anna": 2, "bert": 1}


def test_the_near_duplicate_index_follows_open_proposals_and_their_titles(database_url):
    from services.evaluation.store import EvaluationUnitOfWork

    db = Database(database_url, ROOT / "services" / "evaluation" / "migrations")
    db.migrate()
    now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    title = "Autonomous shuttle feeder for Kera station"
    with EvaluationUnitOfWork(db) as uow:
        uow.known.upsert("p1", title, True, now)
        uow.known.upsert("p2", "Snow-melt cycle lanes in Otaniemi", True, now)
        uow.known.upsert("p3", title, False, now)  # failed screening: not open, not a candidate
        uow.commit()
    with EvaluationUnitOfWork(db) as uow:
        assert uow.known.near_duplicate_candidates("Autonomous shuttle feeder for Kera station 2027") == [("p1", title)]
        uow.known.upsert("p1", "Library robot tutors", True, now)  # a revision with a new title
        assert uow.known.near_duplicate_candidates(title) == []
        assert uow.known.near_duplicate_candidates("Library robot tutor") == [("p1", "Library robot tutors")]
        uow.known.close("p2", now)
        assert uow.known.near_duplicate_candidates("Snow-melt cycle lanes in Otaniemi") == []


def test_the_index_rules_out_by_profile_what_cannot_reach_the_similarity(database_url):
    from services.evaluation.store import EvaluationUnitOfWork

    db = Database(database_url, ROOT / "services" / "evaluation" / "migrations")
    db.migrate()
    now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    title = "Autonomous shuttle feeder for Kera station"
    longer = title + " and the new housing blocks"  # shares a key, too long to reach 0.9
    with EvaluationUnitOfWork(db) as uow:
        uow.known.upsert("p1", title, True, now)
        uow.known.upsert("p2", longer, True, now)
        uow.commit()
    with EvaluationUnitOfWork(db) as uow:
        assert uow.known.near_duplicate_candidates(title) == [("p1", title), ("p2", longer)]
        assert uow.known.near_duplicate_candidates(title, 0.7) == [("p1", title), ("p2", longer)]
        assert uow.known.near_duplicate_candidates(title, 0.9) == [("p1", title)]
        assert uow.known.near_duplicate_candidates(title + " 2027", 0.9) == [("p1", title)]
    db.dispose()


def known_as_stored(db: Database, now: datetime, *proposals: tuple[str, str, bool]) -> None:
    """Rows of evaluation's known_proposals written in SQL, as a release before this one left them."""
    with db.engine.begin() as conn:
        for pid, title, is_open in proposals:
            conn.execute(
                sa.text(
                    "INSERT INTO known_proposals (proposal_id, title, is_open, updated_at) VALUES (:p, :t, :o, :now)"
                ),
                {"p": pid, "t": title, "o": is_open, "now": now},
            )


def test_the_index_migration_indexes_the_proposals_already_open(database_url):
    from services.evaluation.store import EvaluationUnitOfWork

    db = Database(database_url, ROOT / "services" / "evaluation" / "migrations")
    db.migrate("0003")  # the schema of the release before
    now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    known_as_stored(db, now, ("p1", "Stormwater sensors in Leppävaara", True))
    known_as_stored(db, now, ("p2", "Stormwater sensors in Leppävaara", False))
    db.migrate()
    with EvaluationUnitOfWork(db) as uow:
        assert uow.known.near_duplicate_candidates("Stormwater sensors in Leppavaara") == [
            ("p1", "Stormwater sensors in Leppävaara")
        ]


def test_the_profile_migration_indexes_again_the_proposals_already_open(database_url):
    from services.evaluation.store import EvaluationUnitOfWork

    db = Database(database_url, ROOT / "services" / "evaluation" / "migrations")
    db.migrate("0005")  # keys without profiles
    now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    title = "Stormwater sensors in Leppävaara"
    known_as_stored(db, now, ("p1", title, True), ("p2", title, False))
    db.migrate()
    with EvaluationUnitOfWork(db) as uow:
        assert uow.known.near_duplicate_candidates("Stormwater sensors in Leppavaara", 0.9) == [("p1", title)]
        uow.known.upsert("p3", title, True, now)  # the rows the repository writes sit beside the migrated ones
        assert uow.known.near_duplicate_candidates(title, 0.9) == [("p1", title), ("p3", title)]
    db.dispose()


def test_key_rows_an_instance_of_the_release_before_writes_are_candidates_still(database_url):
    """A rolling upgrade: 0006 has run, and an instance of the release before (keys only) indexes a title."""
    from services.evaluation.screening import title_keys
    from services.evaluation.store import EvaluationUnitOfWork

    db = Database(database_url, ROOT / "services" / "evaluation" / "migrations")
    db.migrate()
    now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    title = "Stormwater sensors in Leppävaara"
    known_as_stored(db, now, ("old", title, True))
    with db.engine.begin() as conn:
        for key in sorted(set(title_keys(title))):
            conn.execute(sa.text("INSERT INTO title_keys (key, proposal_id) VALUES (:k, 'old')"), {"k": key})
    with EvaluationUnitOfWork(db) as uow:
        uow.known.upsert("new", title + " and the new housing blocks", True, now)  # too long to reach 0.9
        assert uow.known.near_duplicate_candidates("Stormwater sensors in Leppavaara", 0.9) == [("old", title)]
    db.dispose()


def test_the_index_answers_the_candidates_within_reach_among_titles_alike(database_url):
    """Titles built on the same patterns share keys by the hundred (bench/screening.py's): the
    store answers exactly the open ones sharing a key that within_reach keeps."""
    import random

    from bench.screening import a_title, near_duplicate
    from services.evaluation.screening import title_keys, title_profile, within_reach
    from services.evaluation.store import EvaluationUnitOfWork

    db = Database(database_url, ROOT / "services" / "evaluation" / "migrations")
    db.migrate()
    now = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    rng = random.Random(11)
    stored = {f"p{n:04}": a_title(rng) for n in range(1500)}
    closed = {pid for pid in stored if rng.random() < 0.1}
    with EvaluationUnitOfWork(db) as uow:
        for pid, title in stored.items():
            uow.known.upsert(pid, title, True, now)
        uow.commit()
    with EvaluationUnitOfWork(db) as uow:
        for pid in closed:
            uow.known.close(pid, now)
        uow.commit()
    keys = {pid: set(title_keys(t)) for pid, t in stored.items() if pid not in closed}

    def expected(title: str, similarity: float) -> list[tuple[str, str]]:
        mine = set(title_keys(title))
        shared = sorted((pid, stored[pid]) for pid, k in keys.items() if k & mine)
        reach = within_reach(title_profile(title), [title_profile(t) for _, t in shared], similarity)
        return [c for c, ok in zip(shared, reach, strict=True) if ok]

    titles = list(stored.values())
    queries = [near_duplicate(rng, rng.choice(titles)) for _ in range(60)] + [a_title(rng) for _ in range(60)]
    sharing = kept = 0
    with EvaluationUnitOfWork(db) as uow:
        for title in queries:
            for similarity in (0.9, 0.6):
                assert uow.known.near_duplicate_candidates(title, similarity) == expected(title, similarity), title
            sharing += len(expected(title, 0.0))
            kept += len(expected(title, 0.9))
    assert sharing > 5 * kept > 0  # most titles sharing a key are ruled out by their profiles
    db.dispose()


def test_a_title_with_a_full_letter_count_still_finds_its_near_twin(database_url):
    """A count stored as 255 means 255 or more: such a class bounds nothing (within_reach), so a
    title with more than 255 of one letter still finds its near twin (a bound that read 255 as
    255 would rule it out)."""
    from services.evaluation.store import EvaluationUnitOfWork

    db = Database(database_url, ROOT / "services" / "evaluation" / "migrations")
    db.migrate()
    now = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    title = "ß" * 150 + " kera shuttle feeder"  # normalised: "ss" * 150 ..., 300 letters s
    with EvaluationUnitOfWork(db) as uow:
        uow.known.upsert("p1", title, True, now)
        uow.commit()
    with EvaluationUnitOfWork(db) as uow:
        assert uow.known.near_duplicate_candidates("ß" * 160 + " kera shuttle feeder", 0.9) == [("p1", title)]
    db.dispose()


def test_the_index_rows_are_read_from_the_primary_key_alone(database_url):
    """What near_duplicate_candidates reads of a key row (its length and profile) is in the
    primary key's B-tree: on SQLite the table has no rowid (0006), on PostgreSQL the primary
    key's index includes them (0007), so an index-only scan answers without the heap."""
    db = Database(database_url, ROOT / "services" / "evaluation" / "migrations")
    db.migrate()
    with db.engine.connect() as conn:
        if db.is_sqlite:
            sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'title_keys'")).scalar_one()
            assert "WITHOUT ROWID" in sql.upper()
        else:
            definition = conn.execute(sa.text("SELECT pg_get_indexdef('title_keys_pkey'::regclass)")).scalar_one()
            assert definition.endswith("(key, proposal_id) INCLUDE (length, profile)")
    db.dispose()


# flows (kokeilu/tracing.py): one correlation id and one trace per aggregate -------------------
def recorded(database) -> list[CloudEvent]:
    with database.transaction() as conn:
        return [CloudEvent.model_validate_json(r.value) for r in conn.execute(sa.select(OUTBOX).order_by(OUTBOX.c.id))]


def test_events_recorded_in_one_request_share_its_correlation_id_and_span(database):
    with tracing.serving("POST", "/v1/test", {"X-Correlation-Id": "case-1"}) as span:
        with UnitOfWork(database) as uow:
            uow.publish(screening_event("p-1"))
            uow.publish(screening_event("p-1"))
            uow.commit()
    events = recorded(database)
    assert [e.correlationid for e in events] == ["case-1", "case-1"]
    [traceparent] = {e.traceparent for e in events}  # the transaction's span, in the request's trace
    assert tracing.trace_id_of(traceparent) == f"{span.get_span_context().trace_id:032x}"


def test_a_later_request_about_the_same_subject_joins_its_flow_and_trace(database):
    with tracing.serving("POST", "/v1/test", {}) as first:
        with UnitOfWork(database) as uow:
            uow.remember_flow("p-2")  # a new aggregate
            uow.publish(screening_event("p-2"))
            uow.commit()
    with tracing.serving("POST", "/v1/test", {"X-Correlation-Id": "someone-else"}) as second:
        with UnitOfWork(database) as uow:
            uow.join_flow("p-2")  # acting on it later
            uow.join_flow("p-3")  # no flow remembered: the request's own
            uow.publish(screening_event("p-2"))
            uow.publish(screening_event("p-3"))  # another subject: the request's own flow
            uow.commit()
    one, two, other = recorded(database)
    assert one.correlationid == two.correlationid != "someone-else" and other.correlationid == "someone-else"
    assert tracing.trace_id_of(two.traceparent) == tracing.trace_id_of(one.traceparent)
    assert tracing.trace_id_of(one.traceparent) == f"{first.get_span_context().trace_id:032x}"
    assert tracing.trace_id_of(other.traceparent) == f"{second.get_span_context().trace_id:032x}"


def test_an_event_caused_by_another_carries_the_cause_on_and_a_remembered_flow_is_undone_with_its_savepoint(database):
    cause = screening_event("p-4").model_copy(
        update={"correlationid": "from-upstream", "traceparent": f"00-{'a' * 32}-{'b' * 16}-01"}
    )
    with tracing.consuming(cause, "kokeilu.proposals.v1", 0, 7, "g") as span:
        with UnitOfWork(database) as uow:
            with uow:  # a nested block that is undone: its flow row goes with it
                uow.remember_flow("p-5")
                uow.publish(
                    new_event(
                        types.SCREENING_COMPLETED.name,
                        ScreeningCompleted(proposal_id="p-5", passed=True, screened_at=datetime.now(UTC)),
                        source="tests",
                        subject="p-5",
                        cause=cause,
                    )
                )
            uow.remember_flow("p-4")
            uow.publish(
                new_event(
                    types.SCREENING_COMPLETED.name,
                    ScreeningCompleted(proposal_id="p-4", passed=True, screened_at=datetime.now(UTC)),
                    source="tests",
                    subject="p-4",
                    cause=cause,
                )
            )
            uow.commit()
    [event] = recorded(database)
    assert event.correlationid == "from-upstream" and event.causationid == cause.id
    # the consumer's span is a child of the producer's, and the event's of the consumer's
    assert tracing.trace_id_of(event.traceparent) == f"{span.get_span_context().trace_id:032x}" == "a" * 32
    with database.transaction() as conn:
        assert [r.subject for r in conn.execute(sa.text("SELECT subject FROM flows"))] == ["p-4"]


class Emitting(UnitOfWork):
    source = "tests"


def test_remember_flows_gives_a_runs_new_subjects_the_flows_their_causes_spans_would(database):
    """A run of consumed events applied together, outside their spans: each new subject's events
    and stored flow are those remember_flow gives it inside the consumer's span for its cause."""
    traced = screening_event("r-1").model_copy(
        update={"correlationid": "upstream", "traceparent": f"00-{'e' * 32}-{'f' * 16}-01"}
    )
    untraced = screening_event("r-2").model_copy(update={"traceparent": None})
    with Emitting(database) as uow:
        with uow:  # undone: its flows rows, and the flows its events would be made in, go with it
            uow.remember_flows([("r-0", traced)])
        uow.remember_flows([("r-1", traced), ("r-2", untraced)])
        for pid, cause in (("r-1", traced), ("r-2", untraced), ("r-0", traced)):
            uow.emit(types.SCREENING_COMPLETED, screening(pid), pid, cause)
        uow.commit()
    one, two, zero = recorded(database)
    assert (one.correlationid, one.traceparent, one.causationid) == ("upstream", traced.traceparent, traced.id)
    assert two.correlationid == untraced.id and two.traceparent is not None  # a trace of its own
    assert zero.correlationid == "upstream" and zero.traceparent != traced.traceparent  # no flow kept
    with tracing.serving("POST", "/v1/test", {"X-Correlation-Id": "later"}):
        with Emitting(database) as uow:
            uow.join_flow("r-1")
            uow.join_flow("r-2")
            uow.emit(types.SCREENING_COMPLETED, screening("r-1"), "r-1")
            uow.emit(types.SCREENING_COMPLETED, screening("r-2"), "r-2")
            uow.commit()
    later_one, later_two = recorded(database)[3:]
    assert later_one.correlationid == "upstream" and tracing.trace_id_of(later_one.traceparent) == "e" * 32
    assert later_two.correlationid == untraced.id
    assert tracing.trace_id_of(later_two.traceparent) == tracing.trace_id_of(two.traceparent)
    with database.transaction() as conn:
        assert sorted(r.subject for r in conn.execute(sa.text("SELECT subject FROM flows"))) == ["r-1", "r-2"]
    # A subject remembered before (a revision) keeps its stored flow, as with remember_flow,
    # and this unit of work's events about it are made in its cause's span all the same.
    revision = screening_event("r-1").model_copy(update={"correlationid": "revised", "traceparent": None})
    with Emitting(database) as uow:
        uow.remember_flows([("r-1", revision), ("r-3", revision)])
        uow.emit(types.SCREENING_COMPLETED, screening("r-1"), "r-1", revision)
        uow.commit()
    assert recorded(database)[5].correlationid == "revised"
    with database.transaction() as conn:
        rows = {r.subject: r.correlation_id for r in conn.execute(sa.text("SELECT subject, correlation_id FROM flows"))}
    assert rows == {"r-1": "upstream", "r-2": untraced.id, "r-3": "revised"}


def screening(pid: str) -> ScreeningCompleted:
    return ScreeningCompleted(proposal_id=pid, passed=True, screened_at=datetime.now(UTC))


def test_emit_puts_an_event_in_the_flow_publish_would(database):
    # emit makes the event in its flow at once; publish(new_event(...)) makes it and then moves
    # it into the flow. Both must say the same correlation, causation and trace: without a
    # cause (the request's flow), with a cause (its flow) and for a subject with a remembered flow.
    cause = screening_event("q-2").model_copy(
        update={"correlationid": "upstream", "traceparent": f"00-{'c' * 32}-{'d' * 16}-01"}
    )
    with tracing.serving("POST", "/v1/test", {}) as first:
        with Emitting(database) as uow:
            uow.remember_flow("q-3")
            uow.commit()
    with tracing.serving("POST", "/v1/test", {"X-Correlation-Id": "req-1"}):
        with Emitting(database) as uow:
            uow.join_flow("q-3")
            for pid, by in (("q-1", None), ("q-2", cause), ("q-3", None), ("q-3", cause)):
                data = screening(pid)
                uow.emit(types.SCREENING_COMPLETED, data, pid, by)
                made = new_event(
                    types.SCREENING_COMPLETED.name,
                    data,
                    source="tests",
                    subject=pid,
                    dataschema=types.SCREENING_COMPLETED.dataschema,
                    cause=by,
                )
                uow.publish(made)
            uow.commit()
    events = recorded(database)
    pairs = list(zip(events[::2], events[1::2], strict=True))
    for emitted, published in pairs:
        assert emitted.correlationid == published.correlationid
        assert emitted.causationid == published.causationid
        assert emitted.dataschema == published.dataschema and emitted.data == published.data
        assert tracing.trace_id_of(emitted.traceparent) == tracing.trace_id_of(published.traceparent)
    (request, _), (caused, _), (joined, _), (joined_caused, _) = pairs
    assert request.correlationid == "req-1" and request.causationid is None
    assert caused.correlationid == "upstream" and caused.causationid == cause.id
    assert tracing.trace_id_of(caused.traceparent) == "c" * 32
    first_trace = f"{first.get_span_context().trace_id:032x}"
    assert joined.correlationid == joined_caused.correlationid != "req-1"
    assert tracing.trace_id_of(joined.traceparent) == tracing.trace_id_of(joined_caused.traceparent) == first_trace


def test_the_catalogue_rebuild_records_nothing_to_publish(database_url):
    from services.catalogue.store import RebuildUnitOfWork

    db = Database(database_url, ROOT / "services" / "catalogue" / "migrations")
    db.migrate()
    with RebuildUnitOfWork(db) as uow:
        uow.emit(types.SCREENING_COMPLETED, screening("r-1"), "r-1")
        uow.publish(screening_event("r-1"))
        uow.commit()
    assert recorded(db) == []
    db.dispose()


def _inbox_keys(database) -> list[str]:
    with database.transaction() as conn:
        return sorted(conn.execute(sa.text("SELECT event_id FROM inbox")).scalars())


def test_a_records_savepoint_is_its_first_blocks_own_and_later_blocks_nest_their_own(database):
    # A consumer offers the savepoint it takes around a record to the record's first block
    # (RecordSavepoint): that block neither opens nor releases one of its own.
    with database.transaction() as conn:
        record, outbox = RecordSavepoint(), []
        around = record.savepoint = Savepoint(conn)
        uow = UnitOfWork.joining(database, conn, outbox, record)
        with uow:  # takes it; left without commit: its work is undone, the savepoint stays
            assert uow.first_time_key("c", "undone", "k")
        assert record.savepoint is None and around.is_active
        with pytest.raises(RuntimeError), uow:  # a later block nests its own: a failure undoes only it
            assert uow.first_time_key("c", "failed", "k")
            raise RuntimeError("boom")
        with uow:
            assert uow.first_time_key("c", "kept", "k")
            uow.commit()
        around.commit()  # the consumer releases it: what was kept stays
    assert _inbox_keys(database) == ["kept"]


def test_a_record_whose_first_block_fails_is_undone_whole_by_its_consumer(database):
    with database.transaction() as conn:
        record = RecordSavepoint()
        around = record.savepoint = Savepoint(conn)
        uow = UnitOfWork.joining(database, conn, [], record)
        with pytest.raises(RuntimeError), uow:
            assert uow.first_time_key("c", "failed", "k")
            raise RuntimeError("boom")
        with uow:  # work the record did after it (e.g. outside its first block) ...
            uow.first_time_key("c", "after", "k")
            uow.commit()
        around.rollback()  # ... goes with the record when the consumer undoes it
        with UnitOfWork.joining(database, conn, []) as other:  # the batch's next record
            assert other.first_time_key("c", "next", "k")
            other.commit()
    assert _inbox_keys(database) == ["next"]


def test_rows_inserted_in_bulk_read_back_as_core_inserts_them(database):
    # insert_rows binds values itself on SQLite (each column type's own processor): the rows must
    # be the ones SQLAlchemy's insert would have written, byte for byte once read back.
    when = datetime(2026, 11, 29, 7, 0, 0, 123456, tzinfo=UTC)
    rows = [
        {
            "topic": "t",
            "key": f"k{i}" if i else None,
            "value": bytes([i, 0, 255]) if i != 1 else None,
            "headers": {"content-type": "application/cloudevents+json", "n": str(i), "ä": "ö"},
            "event_type": "e",
            "created_at": when,
        }
        for i in range(3)
    ]
    with database.transaction() as conn:
        insert_rows(conn, OUTBOX, rows)
        conn.execute(OUTBOX.insert(), rows)
    with database.transaction() as conn:
        read = [
            {k: v for k, v in r._mapping.items() if k != "id"}
            for r in conn.execute(sa.select(OUTBOX).order_by(OUTBOX.c.id))
        ]
    assert read[:3] == read[3:] == [dict(r, sent_at=None) for r in rows]
    with database.transaction() as conn:  # and the same text in the file, not only equal values
        raw = list(conn.exec_driver_sql("SELECT headers, created_at FROM outbox ORDER BY id"))
    assert raw[:3] == raw[3:]


def test_first_times_says_which_events_of_a_run_are_new_and_applied_records_them(database):
    e0, e1, e2, e3 = (screening_event(f"run-{i}") for i in range(4))
    with UnitOfWork(database) as uow:
        assert uow.first_time("c", e0)
        uow.commit()
    with UnitOfWork(database) as uow:
        assert uow.first_times("c", [e0, e1, e1, e2]) == [False, True, False, True]  # a twin in the run too
        uow.applied("c", [e1, e2])
        uow.commit()
    with UnitOfWork(database) as uow:
        assert uow.first_times("c", [e1, e2, e3]) == [False, False, True]
        assert uow.first_times("another consumer", [e1]) == [True]
        assert uow.first_times("c", []) == []
