"""Rebuild the catalogue's read model from the topics into a fresh store.

    python -m services.catalogue.rebuild --database-url sqlite:///.local/data/catalogue-rebuilt.db

Reads `kokeilu.proposals.v1` and `kokeilu.evaluations.v1` from the beginning up to the end
offsets it finds at start, with a throwaway consumer (no consumer group, nothing committed),
and applies every event with the live service's handlers to the store given. Nothing is
published: the public events were published by the live service when it first applied them.
Because each result is derived from the facts the events state (not from the order they
arrive in), the rebuilt catalogue equals the live one. Progress goes to stderr.

To switch over: stop the catalogue, point its DATABASE_URL at the rebuilt store, start it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from kokeilu.config import get_settings
from kokeilu.contracts import InvalidEvent, decode, parse_envelope, topics
from kokeilu.store import Database

from . import handlers
from .settings import settings as catalogue_settings
from .store import RebuildUnitOfWork

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SOURCES = (topics.PROPOSALS, topics.EVALUATIONS)


def rebuild(
    database_url: str,
    bootstrap: list[str] | None = None,
    progress: Callable[[str], object] | None = None,
    every: int = 500,
) -> dict[str, int]:
    """Apply every event on the source topics to the store at `database_url`; returns counts."""
    settings = get_settings()
    contact_unit = catalogue_settings().contact_unit
    say = progress or (lambda line: None)
    database = Database(database_url, MIGRATIONS, settings.kokeilu_sqlite_busy_timeout_seconds)
    database.migrate()
    with RebuildUnitOfWork(database) as uow:
        if uow.entries.count_entries():
            raise SystemExit(f"{database_url} is not empty: a rebuild goes into a fresh store")
    # The catalogue's own Kafka principal (KAFKA_SASL_*) in a secured cluster: it may read both topics.
    options = settings.kafka_client_options()
    if bootstrap:
        options["bootstrap_servers"] = bootstrap
    consumer = KafkaConsumer(**options, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    counts = {"records": 0, "applied": 0, "ignored": 0, "duplicate": 0, "invalid": 0}
    try:
        partitions = []
        for logical in SOURCES:
            physical = settings.physical_topic(logical)
            for p in sorted(consumer.partitions_for_topic(physical) or ()):
                partitions.append(TopicPartition(physical, p))
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = {tp: offset for tp, offset in consumer.end_offsets(partitions).items() if offset > 0}
        total = sum(end[tp] - (consumer.beginning_offsets([tp])[tp]) for tp in end)
        say(f"rebuilding from {len(partitions)} partitions of {', '.join(SOURCES)}: {total} records")
        started = time.monotonic()
        while any(consumer.position(tp) < offset for tp, offset in end.items()):
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for record in records:
                    if tp in end and record.offset >= end[tp]:
                        continue
                    counts["records"] += 1
                    outcome = _apply(record, settings.logical_topic(tp.topic), database, contact_unit)
                    counts[outcome if outcome in counts else "applied"] += 1
                    if counts["records"] % every == 0:
                        say(f"  {counts['records']}/{total} records ({time.monotonic() - started:.1f}s)")
        with RebuildUnitOfWork(database) as uow:
            size = uow.entries.count_published()
        counts["results"] = size
        say(f"done: {counts['records']} records, {size} results in the catalogue ({time.monotonic() - started:.1f}s)")
        return counts
    finally:
        consumer.close()
        database.dispose()


def _apply(record: Any, topic: str, database: Database, contact_unit: str) -> str:
    try:
        event = parse_envelope(record.value)
        data = decode(event, topic)
    except InvalidEvent:
        return "invalid"  # the live consumer dead-lettered it too
    return handlers.apply(event, data, RebuildUnitOfWork(database), contact_unit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="the fresh store, e.g. sqlite:///rebuilt.db")
    parser.add_argument("--bootstrap-servers", default=None, help="default: KAFKA_BOOTSTRAP_SERVERS")
    parser.add_argument("--every", type=int, default=500, help="print progress every N records")
    args = parser.parse_args(argv)
    bootstrap = args.bootstrap_servers.split(",") if args.bootstrap_servers else None
    counts = rebuild(
        args.database_url, bootstrap, progress=lambda line: print(line, file=sys.stderr, flush=True), every=args.every
    )
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
