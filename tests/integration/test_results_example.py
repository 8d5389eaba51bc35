"""The department's example consumer (examples/results_consumer.py) against the real broker."""

import json
import sqlite3
import uuid

import pytest

from examples import results_consumer
from kokeilu.config import Settings
from kokeilu.contracts.sources import service_source
from kokeilu.kafka.topics import ensure_topics
from tests.builders import cloudevent
from tests.support import BOOTSTRAP

pytestmark = pytest.mark.kafka

T = "fi.espoo.kokeilu.result."


def result(pid, status, updated_at, title="Reading buddies"):
    return cloudevent(
        T + ("published" if status == "in_evaluation" else "updated"),
        {
            "result_id": pid,
            "proposal_id": pid,
            "title": title,
            "summary": "Pupils read together.",
            "focus_area": "learning",
            "environment": "school",
            "proposer_kind": "school",
            "status": status,
            "contact_unit": "Espoo",
            "licence": "CC-BY-4.0",
            "published_at": "2026-03-01T10:00:00Z",
            "updated_at": updated_at,
        },
        subject=pid,
        source=service_source("catalogue"),
    )


def test_the_example_consumer_keeps_a_table_of_current_results(probe, tmp_path):
    topic = f"t{uuid.uuid4().hex[:10]}.kokeilu.results.v1"
    # Created as the platform creates the real one: compacted.
    ensure_topics(
        Settings(), {topic: {"num_partitions": 3, "replication_factor": 1, "configs": {"cleanup.policy": "compact"}}}
    )
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    probe.send(topic, result(a, "in_evaluation", "2026-03-01T10:00:00Z"), key=a)
    probe.send(topic, result(a, "piloting", "2026-04-01T10:00:00Z"), key=a)
    probe.send(topic, result(b, "in_evaluation", "2026-03-01T10:00:00Z"), key=b)
    probe.send(
        topic,
        cloudevent(
            T + "withdrawn",
            {"result_id": b, "proposal_id": b, "reason": "rejected", "withdrawn_at": "2026-03-05T10:00:00Z"},
            subject=b,
        ),
        key=b,
    )
    database = str(tmp_path / "department.db")
    assert results_consumer.run(BOOTSTRAP, f"dept-{uuid.uuid4().hex[:6]}", database, topic, idle_seconds=3) == 4

    rows = sqlite3.connect(database).execute("SELECT result_id, status, document FROM results").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(a, "piloting")]
    assert json.loads(rows[0][2])["licence"] == "CC-BY-4.0"


def test_applying_a_record_twice_or_an_older_one_late_changes_nothing(tmp_path):
    db = results_consumer.open_table(str(tmp_path / "d.db"))
    pid = str(uuid.uuid4())
    newer = json.dumps(result(pid, "completed", "2026-08-01T10:00:00Z")).encode()
    older = json.dumps(result(pid, "piloting", "2026-04-01T10:00:00Z")).encode()
    for value in (newer, newer, older):
        results_consumer.apply(db, value)
    assert db.execute("SELECT status FROM results").fetchall() == [("completed",)]
    assert results_consumer.apply(db, None) == "skipped"
