"""An example for departments: keep a table of Kokeilu's current results, read from the public
topic `kokeilu.results.v1` with kafka-python.

    python examples/results_consumer.py --bootstrap-servers 127.0.0.1:9092 --group education-dept \\
        --database results.db

Against the production stack, which authenticates every client (docs/operations.md, "Kafka
security"), give your department's user name and CA certificate, the password in the
environment, and a group the department may use (kokeilu.department.<name>[.<anything>]):

    KAFKA_SASL_PASSWORD=... python examples/results_consumer.py --bootstrap-servers kafka.example:9092 \\
        --username education --cafile ca.pem --group kokeilu.department.education --database results.db

The topic is compacted and keyed by result id, so a consumer that starts today reads the current
state of every result from the beginning. Each record is a CloudEvent (structured JSON):
`result.published` and `result.updated` carry the whole result (upsert it), `result.withdrawn`
says the result left the catalogue (delete it). Applying a record twice changes nothing, and an
older version never overwrites a newer one (`updated_at`), so the consumer is idempotent: it
commits its offsets after the rows are stored, and a redelivery after a crash is harmless.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time

from kafka import KafkaConsumer

TOPIC = "kokeilu.results.v1"
PREFIX = "fi.espoo.kokeilu.result."

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    result_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    focus_area TEXT NOT NULL,
    environment TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT,
    lessons_learned TEXT,
    updated_at TEXT NOT NULL,
    document TEXT NOT NULL
)
"""


def open_table(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute(SCHEMA)
    return db


def apply(db: sqlite3.Connection, value: bytes | None) -> str:
    """Apply one record's value; returns what it did."""
    if value is None:
        return "skipped"  # a tombstone: nothing to keep
    event = json.loads(value)
    kind, data = event.get("type", "").removeprefix(PREFIX), event.get("data") or {}
    if kind == "withdrawn":
        db.execute("DELETE FROM results WHERE result_id = ?", (data["result_id"],))
        return "deleted"
    if kind not in ("published", "updated"):
        return "skipped"  # a type added later: this example does not know it, and that is fine
    # Upsert, but never let an older version replace a newer one. ISO-8601 UTC times compare as text.
    db.execute(
        """INSERT INTO results (result_id, title, focus_area, environment, status, outcome, lessons_learned,
                                updated_at, document)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (result_id) DO UPDATE SET
               title = excluded.title, focus_area = excluded.focus_area, environment = excluded.environment,
               status = excluded.status, outcome = excluded.outcome, lessons_learned = excluded.lessons_learned,
               updated_at = excluded.updated_at, document = excluded.document
           WHERE excluded.updated_at >= results.updated_at""",
        (
            data["result_id"],
            data["title"],
            data["focus_area"],
            data["environment"],
            data["status"],
            data.get("outcome"),
            data.get("lessons_learned"),
            data["updated_at"],
            json.dumps(data),
        ),
    )
    return "upserted"


def secured(username: str, password: str, cafile: str | None) -> dict:
    """kafka-python options for a SCRAM-SHA-512 user over TLS (the production stack's listener)."""
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": username,
        "sasl_plain_password": password,
        "ssl_cafile": cafile,
    }


def run(
    bootstrap: str,
    group: str,
    database: str,
    topic: str = TOPIC,
    idle_seconds: float | None = None,
    security: dict | None = None,
) -> int:
    """Consume until stopped (or, with `idle_seconds`, until nothing arrived for that long).
    `security`: connection options such as `secured(...)` gives; none for a local broker."""
    db = open_table(database)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **(security or {}),
    )
    applied, quiet_since = 0, time.monotonic()
    try:
        while idle_seconds is None or time.monotonic() - quiet_since < idle_seconds:
            batch = consumer.poll(timeout_ms=500)
            if not batch:
                continue
            with db:  # one transaction per batch, committed before the offsets are
                for records in batch.values():
                    for record in records:
                        apply(db, record.value)
                        applied += 1
            consumer.commit()
            quiet_since = time.monotonic()
    finally:
        consumer.close()
        db.close()
    return applied


def main() -> None:
    parser = argparse.ArgumentParser(description="Keep a SQLite table of Kokeilu's current results.")
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--group", required=True, help="your own consumer group, e.g. education-dept")
    parser.add_argument("--database", default="results.db")
    parser.add_argument("--topic", default=TOPIC)
    parser.add_argument(
        "--username",
        help="your department's Kafka user (SCRAM-SHA-512 over TLS); the password is read from KAFKA_SASL_PASSWORD",
    )
    parser.add_argument("--cafile", help="the CA certificate that signed the broker's certificate")
    args = parser.parse_args()
    security = secured(args.username, os.environ["KAFKA_SASL_PASSWORD"], args.cafile) if args.username else None
    run(args.bootstrap_servers, args.group, args.database, args.topic, security=security)


if __name__ == "__main__":
    main()
