"""Two instances of a service sharing one store and one consumer group (docs/operations.md,
"Several instances"): on PostgreSQL, as on a cluster, and on one SQLite file, as on one host.
Each test runs two real `nameko run` processes against the real store and the real broker, once
per store, and each would fail on the naive implementation named in its docstring.

What these tests read back is mostly the store's outbox: it holds, in commit order, every event an
instance decided to publish, so it shows what each instance did and in which order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict

import pytest
import requests
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from kafka import KafkaProducer

from kokeilu.contracts import topics
from kokeilu.contracts.sources import service_source
from services.evaluation.domain import assign
from services.evaluation.settings import DEFAULT_PANELS
from tests.builders import cloudevent, submission
from tests.support import AUTH, BOOTSTRAP, ROOT, Platform, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

PARTITIONS = 3
T = "fi.espoo.kokeilu."


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def databases(request, tmp_path_factory):
    """A fresh store per call: a PostgreSQL database (dropped at the end of the module), or a
    SQLite file that instances on one host share. Every test of this module runs on both."""
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("stores")
        yield lambda: f"sqlite:///{folder / f't_{uuid.uuid4().hex[:12]}.db'}"
        return
    postgres_url = request.getfixturevalue("postgres_url")
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return postgres_url.rsplit("/", 1)[0] + "/" + name

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def store_env(url: str) -> dict:
    """A service's environment for the store at `url`. On SQLite, a write transaction of one
    instance waits for the other's (a batch of screenings can hold the file for a second or
    more): the default deadline of 10 s, not the tests' usual 1 s."""
    env = {"DATABASE_URL": url}
    if url.startswith("sqlite"):
        env["KOKEILU_SQLITE_BUSY_TIMEOUT_SECONDS"] = "10"
    return env


def outbox(url: str, event_type: str) -> list[dict]:
    """The events of `event_type` an instance recorded, in the order they were committed."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT value FROM outbox WHERE event_type = :t ORDER BY id"), {"t": T + event_type}
            )
            return [json.loads(bytes(r.value)) for r in rows]
    finally:
        engine.dispose()


def outbox_count(url: str, event_type: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT count(*) FROM outbox WHERE event_type = :t"), {"t": T + event_type}
            ).scalar_one()
    finally:
        engine.dispose()


def consumed(platform: Platform, instance: str) -> float:
    """Records an instance has applied, from its own metrics."""
    text = platform.get(instance, "/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("kokeilu_events_consumed_total{") and 'outcome="applied"' in line
    )


def send_to(producer, topic: str, event: dict, partition: int) -> None:
    producer.send(topic, value=json.dumps(event).encode(), key=event["subject"].encode(), partition=partition)


@pytest.fixture
def at_once():
    """A producer that holds what it is given until flush(), then sends it in one go: every
    partition's records reach the broker, and so the instances, at the same moment."""
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=60_000, batch_size=512 * 1024)
    yield producer
    producer.close()


def two_instances(tmp_path_factory, service: str, url: str, **env) -> Platform:
    platform = Platform(tmp_path_factory.mktemp(service), extra_env=env, service_env={service: store_env(url)})
    # Both at once on an empty store: the migrations race, as when a Deployment's pods start.
    platform.start(service, f"{service}@2")
    platform.wait_for_members(service, 2)
    return platform


# evaluation -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def evaluation(tmp_path_factory, databases):
    url = databases()
    # An SLA of under two seconds and a clock every 0.3 s in each instance: the overdue checks race.
    # Learning has no panel here: screening its proposals writes no workload row, whose lock would
    # make two instances' screenings take turns by chance (and hide the race the twins look for).
    panels = {"sustainable_development": DEFAULT_PANELS["sustainable_development"]}
    p = two_instances(
        tmp_path_factory,
        "evaluation",
        url,
        KOKEILU_TOPIC_PARTITIONS=str(PARTITIONS),
        KOKEILU_PANELS=json.dumps(panels),
        KOKEILU_EVALUATION_SLA_HOURS="0.0005",
        KOKEILU_OVERDUE_CHECK_SECONDS="0.3",
    )
    p.database_url = url
    yield p
    p.stop()


def proposal_submitted(pid: str, title: str, focus_area: str = "learning") -> dict:
    data = {
        "proposal_id": pid,
        "title": title,
        "summary": "Older pupils read with younger ones twice a week, with a tablet app to log progress.",
        "focus_area": focus_area,
        "environment": "school",
        "proposer": {"organisation": "Kera school", "kind": "school"},
        "hypothesis": "Reading buddies raise reading fluency.",
        "kpis": [{"name": "words per minute", "unit": "wpm", "baseline": 60, "target": 80}],
        "budget_eur": 20000,
        "duration_weeks": 20,
        "language": "fi",
        "submitted_at": "2026-11-28T10:00:00Z",
    }
    return cloudevent(T + "proposal.submitted", data, subject=pid, source=service_source("proposals"))


def test_instances_started_at_once_on_an_empty_store_migrate_it_once(evaluation):
    """Naive: each instance runs Alembic at start; the second's CREATE TABLE fails (or both stamp
    the version), and one instance never starts. Both are ready here (the fixture waited)."""
    engine = sa.create_engine(evaluation.database_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    finally:
        engine.dispose()
    head = ScriptDirectory(str(ROOT / "services/evaluation/migrations")).get_current_head()
    assert versions == [head]
    for instance in ("evaluation", "evaluation@2"):
        assert evaluation.get(instance, "/health/ready").status_code == 200
        # A failed migration is retried at start: that it was not needed is the point here.
        assert "store not ready" not in evaluation.log_text(instance)


MIGRATE_AT = """
import sys, time
from pathlib import Path
from kokeilu.store import Database
database = Database(sys.argv[1], Path("services/{service}/migrations"))
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
database.migrate()
"""


@pytest.mark.parametrize("service", ["proposals", "catalogue"])
def test_migrations_started_at_the_same_instant_by_three_processes_all_succeed(databases, service):
    """Naive: all three find no schema, all three create it, and two fail on the first's tables."""
    url, at = databases(), time.time() + 3  # time enough to import; then all three go at once
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_AT.format(service=service), url, str(at)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(e[-1500:] for e in errors)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    finally:
        engine.dispose()
    assert versions == [ScriptDirectory(str(ROOT / f"services/{service}/migrations")).get_current_head()]


def test_near_duplicates_screened_at_once_by_two_instances_pass_once(evaluation, at_once):
    """Naive: each instance checks the duplicate rule against what its own transaction sees, so
    twins on partitions of different instances, screened at the same moment, both pass."""
    topic = evaluation.topic(topics.PROPOSALS)
    pairs = []
    for n in range(30):
        title = f"Pilot {uuid.uuid4().hex} {uuid.uuid4().hex}"  # unlike every other pair's
        twins = (str(uuid.uuid4()), str(uuid.uuid4()))
        first, second = n % PARTITIONS, (n + 1) % PARTITIONS  # never the same partition
        send_to(at_once, topic, proposal_submitted(twins[0], title), first)
        send_to(at_once, topic, proposal_submitted(twins[1], title), second)
        pairs.append(twins)
    # Work behind the twins on every partition: each instance's batch stays open (uncommitted) a while.
    for n in range(150):
        send_to(
            at_once,
            topic,
            proposal_submitted(str(uuid.uuid4()), f"Filler {uuid.uuid4().hex} {uuid.uuid4().hex}"),
            n % PARTITIONS,
        )
    at_once.flush(timeout=30)
    ours = {pid for twins in pairs for pid in twins}

    def screened():
        found = {
            e["subject"]: e for e in outbox(evaluation.database_url, "screening.completed") if e["subject"] in ours
        }
        return found if len(found) == len(ours) else None

    found = wait_until(screened, timeout=90, what="every proposal screened")
    passed = {pid for pid, e in found.items() if e["data"]["passed"]}
    twice = [twins for twins in pairs if set(twins) <= passed]
    assert not twice, f"{len(twice)} of {len(pairs)} pairs of identical titles both passed screening"
    for twins in pairs:
        [failed] = [found[pid] for pid in twins if pid not in passed]
        assert [f["rule"] for f in failed["data"]["failed_rules"]] == ["duplicate"], failed["data"]


def test_panels_assigned_by_two_instances_follow_the_workload_one_after_another(evaluation, at_once):
    """Naive: two instances read the evaluators' workload at the same moment and give the next
    two proposals the same least-loaded evaluators. Replaying the assignment rule over the
    evaluations in the order they were committed must give exactly the panels chosen."""
    focus, topic = "sustainable_development", evaluation.topic(topics.PROPOSALS)
    ours = [str(uuid.uuid4()) for _ in range(40)]
    for n, pid in enumerate(ours):
        send_to(
            at_once,
            topic,
            proposal_submitted(pid, f"Waterfront sensors, section {n} {uuid.uuid4().hex}", focus),
            n % PARTITIONS,
        )
    at_once.flush(timeout=30)

    def opened():
        events = [e for e in outbox(evaluation.database_url, "evaluation.opened") if e["data"]["focus_area"] == focus]
        return events if len(events) == len(ours) else None

    events = wait_until(opened, timeout=90, what="an evaluation opened for every proposal")
    load: Counter = Counter()
    for event in events:
        expected = assign(DEFAULT_PANELS[focus], load, 3)
        assert event["data"]["evaluators"] == expected, (
            f"{event['subject']} got {event['data']['evaluators']} with the workload at {dict(load)}"
        )
        load.update(expected)
    assert max(load.values()) - min(load.values()) <= 1, load


def test_each_overdue_evaluation_is_flagged_once_by_two_clocks(evaluation, probe):
    """Naive: both instances' clocks find the same evaluations past due and each emits
    evaluation.overdue. Here every evaluation opened by the tests above is overdue within two
    seconds, and said so once."""
    opened = {e["subject"] for e in outbox(evaluation.database_url, "evaluation.opened")}
    assert opened, "the tests above open evaluations"
    wait_until(
        lambda: opened <= {e["subject"] for e in outbox(evaluation.database_url, "evaluation.overdue")},
        timeout=60,
        what="every evaluation flagged overdue",
    )
    # Absence needs a window to be seen in: both clocks run at least five more times in it.
    time.sleep(1.5)
    flagged = Counter(e["subject"] for e in outbox(evaluation.database_url, "evaluation.overdue"))
    assert {pid: n for pid, n in flagged.items() if n != 1} == {}


def test_work_moves_between_instances_as_they_join_and_die_and_is_applied_once(tmp_path_factory, databases, at_once):
    """A second instance joins while the first is applying batches (a rebalance in the middle of
    a batch), then the first is killed with -9 (its uncommitted batch is redelivered to the
    survivor). Naive: offsets committed before the store, or no inbox: events lost or applied
    twice. Every proposal is screened exactly once, by one instance or the other.

    Submissions keep coming until after the kill (a fixed number would all be screened before
    the second instance has joined: a run of them is screened in milliseconds)."""
    url = databases()
    p = Platform(
        tmp_path_factory.mktemp("moves"),
        extra_env={"KOKEILU_TOPIC_PARTITIONS": str(PARTITIONS), "KOKEILU_PANELS": json.dumps({})},
        service_env={"evaluation": store_env(url)},
    )
    topic, ours, stop = p.topic(topics.PROPOSALS), [], threading.Event()

    def submit() -> None:  # about 500 a second, in bursts, until told to stop
        while not stop.is_set():
            for _ in range(50):
                pid = str(uuid.uuid4())
                send_to(
                    at_once,
                    topic,
                    proposal_submitted(pid, f"Pilot {uuid.uuid4().hex} {uuid.uuid4().hex}"),
                    len(ours) % PARTITIONS,
                )
                ours.append(pid)
            at_once.flush(timeout=60)
            time.sleep(0.1)

    submitter = threading.Thread(target=submit, daemon=True)
    try:
        p.start("evaluation")
        submitter.start()
        wait_until(lambda: outbox_count(url, "screening.completed"), timeout=60, what="the first instance at work")
        p.start("evaluation@2")
        wait_until(lambda: consumed(p, "evaluation@2") > 0, timeout=120, what="the second instance at work")
        p.procs["evaluation"].kill()  # -9: no graceful stop, a batch may be half applied
        p.procs["evaluation"].wait()
        time.sleep(1)  # the survivor takes the dead one's partitions while submissions still come
        stop.set()
        submitter.join(timeout=60)
        wait_until(
            lambda: outbox_count(url, "screening.completed") >= len(ours),
            timeout=180,
            interval=0.5,
            what="the survivor to screen the rest",
        )
        # Absence needs a window: what the killed instance had left in flight is redelivered by now.
        time.sleep(1)
        done = Counter(e["subject"] for e in outbox(url, "screening.completed"))
        assert {pid: n for pid, n in done.items() if n != 1} == {}
        assert set(done) == set(ours)
    finally:
        stop.set()
        p.stop()


# proposals ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def proposals(tmp_path_factory, databases):
    url = databases()
    p = two_instances(tmp_path_factory, "proposals", url, KOKEILU_TOPIC_PARTITIONS=str(PARTITIONS))
    p.database_url = url
    yield p
    p.stop()


def test_one_idempotency_key_racing_to_two_instances_makes_one_proposal(proposals):
    """Naive: each instance looks the key up, finds nothing, and does the work: two proposals."""
    for n in range(15):
        key, title = f"race-{uuid.uuid4()}", f"Kera bike lanes, stretch {n} {uuid.uuid4().hex[:6]}"
        start, answers = threading.Barrier(2), {}

        def post(instance):
            start.wait()
            answers[instance] = requests.post(
                proposals.url(instance, "/v1/proposals"),
                json=submission(title=title),
                headers={**AUTH, "Idempotency-Key": key},
                timeout=30,
            )

        threads = [threading.Thread(target=post, args=(i,)) for i in ("proposals", "proposals@2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(r.status_code for r in answers.values())
        assert statuses == [201, 201], [r.text for r in answers.values()]
        ids = {r.json()["id"] for r in answers.values()}
        assert len(ids) == 1, f"one key, two proposals: {ids}"
        assert sorted(r.headers.get("Idempotent-Replayed", "") for r in answers.values()) == ["", "true"]
    submitted = Counter(e["data"]["title"] for e in outbox(proposals.database_url, "proposal.submitted"))
    assert [t for t, n in submitted.items() if n > 1] == []


def test_two_relays_publish_one_outbox_keeping_each_keys_order(proposals, probe):
    """Naive (SKIP LOCKED alone): each relay locks a different batch of the outbox and publishes
    it at the same time, so a key's later events can reach the topic before its earlier ones.
    Here 6,000 events of five keys are committed at once, for both relays to find."""
    run = uuid.uuid4().hex[:8]
    keys = [f"order-{run}-{k}" for k in range(5)]
    rows = [
        {
            "topic": topics.PROPOSALS,
            "key": keys[n % 5],
            "value": json.dumps({"run": run, "seq": n}).encode(),
            "headers": json.dumps({}),
            "event_type": T + "test.ordered",
            "created_at": "2026-11-28T10:00:00Z",
        }
        for n in range(6000)
    ]
    engine = sa.create_engine(proposals.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO outbox (topic, key, value, headers, event_type, created_at) "
                    "VALUES (:topic, :key, :value, :headers, :event_type, :created_at)"
                ),
                rows,
            )
    finally:
        engine.dispose()
    records = probe.records(
        proposals.topic(topics.PROPOSALS),
        lambda r: r.key is not None and r.key.decode() in keys,
        count=len(rows),
        timeout=120,
    )
    seen: dict[str, list[int]] = defaultdict(list)
    for r in records:
        seen[r.key.decode()].append(json.loads(r.value)["seq"])
    for key, seqs in seen.items():
        out_of_order = sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b < a)
        assert out_of_order == 0, f"{key}: {out_of_order} events published before an earlier one"
        assert sorted(seqs) == seqs and len(seqs) == len(set(seqs)) == 1200


# notifications --------------------------------------------------------------------------------
DIGEST_WINDOW = 3


@pytest.fixture(scope="module")
def notifications(tmp_path_factory, databases, mailbox):
    url = databases()
    p = two_instances(
        tmp_path_factory,
        "notifications",
        url,
        KOKEILU_TOPIC_PARTITIONS=str(PARTITIONS),
        KOKEILU_SMTP_HOST="127.0.0.1",
        KOKEILU_SMTP_PORT=str(mailbox.port),
        KOKEILU_DIGEST_WINDOW_SECONDS=str(DIGEST_WINDOW),
    )
    yield p
    p.stop()


def test_a_digest_window_is_sent_once_by_two_instances(notifications, at_once, mailbox):
    """Naive: each instance's digest job runs when the window closes and sends its own digest of
    the same items. Every event goes out in exactly one digest e-mail."""
    from tests import builders as ev

    address = f"digest-{uuid.uuid4().hex[:8]}@espoo.example"
    response = notifications.post(
        "notifications",
        "/v1/subscriptions",
        {
            "subscriber": "Education department",
            "channel": "email",
            "email": address,
            "mode": "daily_digest",
            "language": "en",
            "filter": {"types": [T + "proposal.status-changed"]},
        },
    )
    assert response.status_code == 201, response.text
    pids = [str(uuid.uuid4()) for _ in range(12)]
    titles = [f"Digest pilot {n:02d} {pid[:8]}" for n, pid in enumerate(pids)]
    topic = notifications.topic(topics.PROPOSALS)
    for n, (pid, title) in enumerate(zip(pids, titles, strict=False)):
        send_to(at_once, topic, ev.submitted(pid, title=title), n % PARTITIONS)
        send_to(at_once, topic, ev.status(pid, "submitted", "screening"), n % PARTITIONS)
    at_once.flush(timeout=30)

    def listed() -> Counter:
        return Counter(
            {
                title: sum(m.get_body(("plain",)).get_content().count(title) for m in mailbox.to(address))
                for title in titles
            }
        )

    wait_until(lambda: all(listed().values()), timeout=60, what="every event in a digest")
    # Absence needs a window: two more digest windows close, and both instances' jobs run in each.
    time.sleep(2 * DIGEST_WINDOW)
    assert listed() == Counter(dict.fromkeys(titles, 1)), f"{len(mailbox.to(address))} digests"
