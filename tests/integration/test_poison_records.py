"""No record stalls the platform: garbage of any size or shape on the intake topic and on the
internal topic is dead-lettered, the partitions move on, the metrics stay bounded, and a valid
proposal sent after the garbage reaches the catalogue.

The short form runs in `make test`; `KOKEILU_GARBAGE_RECORDS=10000` runs the full form.
"""

from __future__ import annotations

import json
import os
import random
import re
import uuid
from datetime import UTC

import pytest

from kokeilu.contracts import topics
from tests.builders import cloudevent, submission
from tests.support import deadletters, headers_of, wait_until

pytestmark = pytest.mark.kafka

T = "fi.espoo.kokeilu."
COUNT = int(os.environ.get("KOKEILU_GARBAGE_RECORDS", "240"))
KEYS = [f"k{i}" for i in range(6)]  # few keys: the valid records after the garbage share its partitions


def garbage(i: int, rnd: random.Random) -> bytes | None:
    """One hostile record; the kinds rotate so every kind appears in any run of a dozen or more."""
    ok = cloudevent(T + "intake.proposal", submission(), source=f"fuzz/{i}")
    kinds = [
        lambda: rnd.randbytes(rnd.randint(0, 300)),
        lambda: b"[" * 5000 + b"]" * 5000,  # deep nesting, 10 KB
        lambda: json.dumps(dict(ok, data={"x": json.loads("[" * 900 + "]" * 900)})).encode(),
        lambda: b'{"specversion": "1.0", "id": "\\ud800", "source": "s", "type": "t", "time": "x"}',
        lambda: json.dumps(dict(ok, type=f"{T}made.up.{uuid.uuid4().hex}")).encode(),  # unbounded label values
        lambda: json.dumps(dict(ok, source=f"fuzz/{uuid.uuid4().hex}", data={"title": "\x00"})).encode(),
        lambda: json.dumps(dict(ok, data=submission(title="NUL\x00 and \udfff"))).encode(errors="surrogatepass"),
        lambda: (
            b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "time": "2026-01-01T00:00:00Z", '
            b'"data": {"budget_eur": 1e400, "kpis": [{"baseline": NaN}]}}'
        ),
        lambda: json.dumps([ok]).encode(),
        lambda: None,  # tombstone
        lambda: json.dumps(ok).encode()[: rnd.randint(1, 200)],  # cut short
        lambda: json.dumps(dict(ok, data="x" * 200)).encode(),
    ]
    if i % 120 == 7:  # about 1 MiB: over the event limit, and its dead letter would be over the producer's
        return json.dumps(dict(ok, data=submission(summary="y" * 1_000_000))).encode()[:1_040_000]
    return kinds[i % len(kinds)]()


def test_garbage_is_dead_lettered_and_a_valid_proposal_after_it_reaches_the_catalogue(platform, probe):
    platform.start("proposals", "evaluation", "catalogue")
    rnd = random.Random(20261128)
    sent = {topics.INTAKE: 0, topics.PROPOSALS: 0}
    for i in range(COUNT):
        topic = topics.INTAKE if i % 2 == 0 else topics.PROPOSALS
        probe.producer.send(platform.topic(topic), value=garbage(i, rnd), key=KEYS[i % len(KEYS)].encode())
        sent[topic] += 1
    probe.producer.flush(timeout=120)

    # After the garbage, on every partition it used: valid intake events become proposals and
    # travel on through evaluation to the catalogue.
    subjects = [
        "Footbridge lighting",
        "School lunch composting",
        "Metro station wayfinding",
        "Harbour sauna rafts",
        "Library robot tutors",
        "Snow-melt cycle lanes",
    ]  # unlike each other: screening refuses near-duplicates
    titles = {
        key: f"{subject} after the garbage {uuid.uuid4().hex[:6]}" for key, subject in zip(KEYS, subjects, strict=False)
    }
    for key, title in titles.items():
        probe.send(
            platform.topic(topics.INTAKE),
            cloudevent(T + "intake.proposal", submission(title=title), source="e-services-portal"),
            key=key,
        )

    def in_catalogue():
        found = platform.get("catalogue", "/v1/results?limit=200").json()["items"]
        return {r["title"] for r in found} >= set(titles.values())

    wait_until(in_catalogue, timeout=240, what="the valid proposals sent after the garbage to reach the catalogue")

    # Every garbage record was dead-lettered by every consumer group that reads its topic.
    readers = {topics.INTAKE: ["proposals"], topics.PROPOSALS: ["evaluation", "catalogue"]}
    expected = sum(sent[t] * len(readers[t]) for t in sent)
    letters = probe.records(
        platform.topic(topics.DEADLETTER),
        lambda r: headers_of(r).get("kokeilu.reason") in ("unparseable", "invalid", "failed"),
        count=expected,
        timeout=240,
    )
    seen = {
        (
            headers_of(r)["kokeilu.consumer.group"],
            headers_of(r)["kokeilu.source.topic"],
            headers_of(r)["kokeilu.source.partition"],
            headers_of(r)["kokeilu.source.offset"],
        )
        for r in letters
    }
    assert len(seen) == expected
    truncated = [r for r in letters if "kokeilu.value.truncated" in headers_of(r)]
    assert truncated and all(len(r.value) <= 64 * 1024 for r in truncated)
    assert all(int(headers_of(r)["kokeilu.value.truncated"]) > 1_000_000 for r in truncated)

    # Nothing is stuck: outboxes drained, lag zero, every service ready.
    for service in ("proposals", "evaluation", "catalogue"):
        wait_until(
            lambda: metric(platform, service, "kokeilu_outbox_backlog") == [0.0],
            timeout=60,
            what=f"{service}'s outbox to drain",
        )
        wait_until(
            lambda: set(metric(platform, service, "kokeilu_consumer_lag")) == {0.0},
            timeout=60,
            what=f"{service}'s lag to reach 0",
        )
        assert platform.get(service, "/health/ready", headers={}).status_code == 200

    # Label values that come from outside stay bounded however many kinds of garbage arrive.
    text = platform.get("proposals", "/metrics", headers={}).text
    types = set(re.findall(r'kokeilu_events_consumed_total\{[^}]*type="([^"]*)"', text))
    assert "other" in types and not any("made.up" in t for t in types)
    sources = set(re.findall(r'kokeilu_intake_total\{[^}]*source="([^"]*)"', text))
    assert len(sources) <= 51


def metric(platform, service: str, name: str) -> list[float]:
    text = platform.get(service, "/metrics", headers={}).text
    return [float(v) for v in re.findall(rf'^{name}\{{[^}}]*service="{service}"[^}}]*\}} (\S+)$', text, re.M)]


def test_an_outbox_row_the_brokers_refuse_is_parked_and_the_rows_behind_it_are_published(platform, probe):
    """The relay's side: a row larger than any broker accepts (here written into the store
    directly, as a defect might) must not hold up the events recorded after it."""
    import sqlite3
    from datetime import datetime

    platform.start("proposals")
    store = sqlite3.connect(platform.tmp / "data" / "proposals.db", isolation_level=None)
    try:
        store.execute("BEGIN IMMEDIATE")
        store.execute(
            "INSERT INTO outbox (topic, key, value, headers, event_type, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                topics.PROPOSALS,
                "too-large",
                b"z" * 2_000_000,
                '{"content-type": "application/cloudevents+json"}',
                T + "proposal.submitted",
                datetime.now(UTC).isoformat(),
            ),
        )
        store.execute("COMMIT")
    finally:
        store.close()
    title = f"Behind a parked row {uuid.uuid4().hex[:8]}"
    pid = platform.post("proposals", "/v1/proposals", submission(title=title)).json()["id"]

    probe.events(
        platform.topic(topics.PROPOSALS), T + "proposal.submitted", where=lambda e: e["subject"] == pid, timeout=60
    )
    [parked] = probe.records(platform.topic(topics.DEADLETTER), lambda r: r.key == b"too-large", timeout=60)
    headers = headers_of(parked)
    assert headers["kokeilu.reason"] == "unpublishable" and "MessageSizeTooLarge" in headers["kokeilu.error"]
    assert headers["kokeilu.source.topic"] == topics.PROPOSALS and headers["kokeilu.value.truncated"] == "2000000"
    assert headers["content-type"] == "application/cloudevents+json"  # the row's own header, kept
    # Its value was cut: the dead-letter tool will not redrive it, and says where the whole is.
    [step] = json.loads(deadletters(platform, "redrive", f"{parked.partition}:{parked.offset}", "--json").stdout)[
        "skipped"
    ]
    assert "cut to its first 65536 bytes of 2000000" in step["why"] and "outbox row" in step["why"]
    wait_until(
        lambda: metric(platform, "proposals", "kokeilu_outbox_backlog") == [0.0], timeout=60, what="the outbox to drain"
    )
