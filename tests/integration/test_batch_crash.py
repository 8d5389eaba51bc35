"""A service killed (SIGKILL, as `kill -9`) in the middle of a large batch, or between a batch's
commit and its offsets' commit, applies every record exactly once after it restarts, and the bad
records inside the batch are dead-lettered once each, alone.

The intake topic is filled before proposals starts, so its first polls are full batches
(KOKEILU_CONSUMER_MAX_RECORDS); the crash point fires inside the first one.
"""

from __future__ import annotations

import json
import signal
import uuid

import pytest

from kokeilu.config import Settings
from kokeilu.contracts import topics
from kokeilu.kafka.topics import ensure_topics
from tests.builders import cloudevent, submission
from tests.support import BOOTSTRAP, headers_of, wait_until

pytestmark = pytest.mark.kafka

T = "fi.espoo.kokeilu."
RECORDS = 600
BAD_EVERY = 40  # records 0, 40, 80, ... are bad: an unknown type, dead-lettered as invalid


def fill_intake(platform, probe) -> tuple[dict[str, str], set[int]]:
    """The intake topic, filled: title -> event id of each good record, and the indexes of the bad."""
    ensure_topics(
        Settings(kafka_bootstrap_servers=BOOTSTRAP, kokeilu_topic_prefix=platform.prefix, kokeilu_topic_partitions=3)
    )
    run = uuid.uuid4().hex[:6]
    good, bad = {}, set()
    for i in range(RECORDS):
        title = f"Batch crash pilot {run} number {i:04d} {uuid.uuid4().hex[:6]}"
        event = cloudevent(T + "intake.proposal", submission(title=title), source="e-services-portal")
        if i % BAD_EVERY == 0:
            event["type"] = T + "intake.nonsense"
            bad.add(i)
        else:
            good[title] = event["id"]
        probe.producer.send(platform.topic(topics.INTAKE), value=json.dumps(event).encode(), key=f"k{i % 7}".encode())
    probe.producer.flush(timeout=60)
    return good, bad


def consumed(platform, outcome: str) -> float:
    total = 0.0
    for line in platform.get("proposals", "/metrics", headers={}).text.splitlines():
        if (
            line.startswith("kokeilu_events_consumed_total{")
            and f'outcome="{outcome}"' in line
            and 'topic="kokeilu.intake.v1"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def crash_and_restart(platform, point: str) -> None:
    """proposals started on the filled topic with whole-poll batches, killed at `point` (SIGKILL,
    by itself), restarted, and waited for until it has consumed the whole topic."""
    platform.extra_env.update(
        {"KOKEILU_CRASH_AT": point, "KOKEILU_CONSUMER_MAX_RECORDS": "500", "KOKEILU_CONSUMER_BATCH_SECONDS": "30"}
    )
    platform.start("proposals")
    proc = platform.procs.pop("proposals")
    assert proc.wait(timeout=120) == -signal.SIGKILL, platform.log_text("proposals")[-2000:]
    assert f"crash point {point.split('@')[0]}" in platform.log_text("proposals")
    del platform.extra_env["KOKEILU_CRASH_AT"]
    platform.start("proposals")
    wait_until(
        lambda: (
            consumed(platform, "applied") + consumed(platform, "dead_lettered") + consumed(platform, "duplicate")
            >= RECORDS
        ),
        timeout=180,
        what="the restarted service to consume the whole topic",
    )


@pytest.mark.parametrize("point", ["consumer.applied@150", "consumer.committed@1"])
def test_a_kill_during_a_batch_applies_every_record_exactly_once(platform, probe, point):
    good, bad = fill_intake(platform, probe)
    crash_and_restart(platform, point)

    # Every good record became exactly one proposal, and exactly one proposal.submitted event.
    def stored():
        items, cursor = [], None
        while True:
            page = platform.get("proposals", "/v1/proposals?limit=200" + (f"&cursor={cursor}" if cursor else "")).json()
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    titles = [p["title"] for p in stored() if p["title"] in good]
    assert sorted(titles) == sorted(good), f"{len(titles)} stored for {len(good)} good records"
    submitted = probe.events(
        platform.topic(topics.PROPOSALS),
        T + "proposal.submitted",
        count=len(good),
        timeout=120,
        where=lambda e: e["data"]["title"] in good,
    )
    assert sorted(e["data"]["title"] for e in submitted) == sorted(good)  # none published twice

    # Every bad record was dead-lettered once, alone: the good records around it were applied.
    letters = probe.records(
        platform.topic(topics.DEADLETTER),
        lambda r: headers_of(r).get("kokeilu.source.topic") == platform.topic(topics.INTAKE),
        count=len(bad),
        timeout=120,
    )
    origins = [(headers_of(r)["kokeilu.source.partition"], headers_of(r)["kokeilu.source.offset"]) for r in letters]
    assert len(origins) == len(set(origins)) == len(bad)

    if point.startswith("consumer.committed"):
        # The first batch was committed but not its offsets: redelivered, and recognised.
        assert consumed(platform, "duplicate") > 0


def test_http_requests_beyond_the_worker_pool_do_not_deadlock_a_batch(platform, probe):
    # A batch holds the store's lock while it applies its records. HTTP requests that wait for
    # that lock fill nameko's worker pool (max_workers 10): a record must not need a free
    # worker, or the batch waits for the requests that wait for it.
    from concurrent.futures import ThreadPoolExecutor

    import requests

    good, bad = fill_intake(platform, probe)
    platform.extra_env.update({"KOKEILU_CONSUMER_MAX_RECORDS": "500", "KOKEILU_CONSUMER_BATCH_SECONDS": "30"})
    platform.start("proposals")
    answers: list[int] = []

    def submit_until_consumed(n: int) -> None:
        while consumed(platform, "applied") + consumed(platform, "dead_lettered") < RECORDS:
            try:
                answers.append(
                    platform.post(
                        "proposals",
                        "/v1/proposals",
                        submission(title=f"Pool pressure {n} {uuid.uuid4().hex[:8]}"),
                        timeout=30,
                    ).status_code
                )
            except requests.RequestException as exc:
                answers.append(exc.__class__.__name__)
                return

    with ThreadPoolExecutor(max_workers=30) as pool:
        list(pool.map(submit_until_consumed, range(30)))
    assert answers and set(answers) == {201}, [a for a in answers if a != 201][:5]
    assert consumed(platform, "applied") == len(good) and consumed(platform, "dead_lettered") == len(bad)


def running_pilot(platform, probe) -> str:
    """A proposal submitted over HTTP, passed and approved by evaluation's events (as the
    evaluation service publishes them), and started: measurements apply to it."""
    from bench.events import approval

    pid = platform.post("proposals", "/v1/proposals", submission(title=f"Pilot {uuid.uuid4().hex}")).json()["id"]
    for record in approval(pid):
        probe.producer.send(platform.topic(record.topic), value=record.value, key=record.key)
    probe.producer.flush(timeout=60)
    wait_until(
        lambda: platform.get("proposals", f"/v1/proposals/{pid}").json()["status"] == "approved",
        timeout=60,
        what="the seeded proposal to be approved",
    )
    assert platform.post("proposals", f"/v1/proposals/{pid}/pilot/start", {}).status_code == 200
    return pid


@pytest.mark.parametrize("point", ["consumer.applied@150", "consumer.committed@1"])
def test_a_kill_during_a_batch_of_measurements_applies_each_exactly_once(platform, probe, point):
    # Measurements stream in runs that the intake consumer applies at once (its bulk method);
    # refused ones inside a run (an unknown proposal) are dead-lettered alone, and intake
    # proposals between the runs are applied record by record, in the order polled.
    platform.start("proposals")
    pid = running_pilot(platform, probe)
    platform.stop("proposals")

    run = uuid.uuid4().hex[:6]
    values, refused, titles = [], set(), set()
    intake = platform.topic(topics.INTAKE)
    for i in range(RECORDS):
        if i % 50 == 25:
            title = f"Between runs {run} {i:04d}"
            titles.add(title)
            event = cloudevent(T + "intake.proposal", submission(title=title), source="e-services-portal")
        else:
            unknown = i % BAD_EVERY == 0
            body = {
                "proposal_id": f"no-such-proposal-{i}" if unknown else pid,
                "kpi": "daily riders",
                "value": i,
                "measured_at": "2026-12-01T08:00:00Z",
            }
            event = cloudevent(T + "intake.measurement", body, source="sensors/west-metro")
            (refused.add(event["id"]) if unknown else values.append(i))
        probe.producer.send(intake, value=json.dumps(event).encode(), key=f"k{i % 7}".encode())
    probe.producer.flush(timeout=60)

    crash_and_restart(platform, point)

    # Every good measurement is stored exactly once, and published once.
    stored = platform.get("proposals", f"/v1/proposals/{pid}/measurements").json()["items"]
    assert sorted(m["value"] for m in stored) == sorted(values)
    recorded = probe.events(
        platform.topic(topics.PROPOSALS),
        T + "pilot.measurement-recorded",
        count=len(values),
        timeout=120,
        where=lambda e: e["subject"] == pid,
    )
    assert sorted(e["data"]["value"] for e in recorded) == sorted(values)
    # Every refused one is dead-lettered once, and its source told once.
    letters = probe.records(
        platform.topic(topics.DEADLETTER),
        lambda r: headers_of(r).get("kokeilu.source.topic") == intake,
        count=len(refused),
        timeout=120,
    )
    assert sorted(json.loads(r.value)["id"] for r in letters) == sorted(refused)
    # The intake proposals between the runs were applied too.
    listed = platform.get("proposals", "/v1/proposals?limit=200").json()["items"]
    assert titles <= {p["title"] for p in listed}
    if point.startswith("consumer.committed"):
        assert consumed(platform, "duplicate") > 0
