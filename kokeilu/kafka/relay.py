"""The outbox relay: publishes what units of work recorded, in order, with an idempotent
producer (acks=all), and marks rows sent. The only code path that produces to Kafka."""

from __future__ import annotations

import functools
import logging
import threading
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from kafka import KafkaProducer
from kafka.cluster import ClusterMetadata
from kafka.errors import (
    CorruptRecordError,
    InvalidRecordError,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)
from kafka.partitioner.default import DefaultPartitioner, murmur2
from nameko.extensions import SharedExtension

from kokeilu import tracing
from kokeilu.config import Settings, get_settings
from kokeilu.contracts import topics
from kokeilu.extensions import StoreExtension, TopicsExtension
from kokeilu.faults import crash_point
from kokeilu.kafka.deadletter import dead_letter
from kokeilu.metrics import child, metrics_for
from kokeilu.store import OutboxReader, Relayed

log = logging.getLogger(__name__)

BATCH = 500
# What no retry changes: the record is too large for the brokers, or refused as invalid.
UNSENDABLE = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidRecordError,
    CorruptRecordError,
    InvalidTopicError,
    UnicodeError,
    TypeError,
    ValueError,
)
KEEP_SENT = timedelta(days=1)


@functools.lru_cache(maxsize=4096)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


class KeyPartitioner(DefaultPartitioner):
    """kafka-python's default partitioner (a keyed record goes to murmur2(key) modulo the topic's
    partitions, as the Java client puts it; an unkeyed one to a random available partition),
    remembering the hash of recent keys: a change records several events with one key (a
    submission three), and the pure-Python murmur2 was a tenth of the relay's send."""

    def partition(
        self,
        topic: str,
        key: Any,
        serialized_key: bytes | None,
        value: Any,
        serialized_value: bytes | None,
        cluster: ClusterMetadata,
    ) -> int:
        if serialized_key is None:
            return int(super().partition(topic, key, serialized_key, value, serialized_value, cluster))
        partitions = cluster.partitions_for_topic(topic)
        if partitions is None:
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        ordered = sorted(partitions)
        return int(ordered[_key_hash(serialized_key) % len(ordered)])


def make_producer(settings: Settings, client_id: str) -> KafkaProducer:
    return KafkaProducer(
        **settings.kafka_client_options(),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        partitioner=KeyPartitioner(),
        # The relay sends a whole outbox batch and then flushes, so linger only matters for
        # the first records; batch_size lets one produce request carry a batch per partition
        # (the default 16 KiB holds about ten of our events). Measured: bench/README.md.
        linger_ms=5,
        batch_size=256 * 1024,
        retries=2147483647,
        max_in_flight_requests_per_connection=5,
        request_timeout_ms=15000,
        delivery_timeout_ms=60000,
    )


class OutboxRelay(SharedExtension):
    store = StoreExtension()
    topics = TopicsExtension()

    def setup(self) -> None:
        self.settings = get_settings()
        self.metrics = metrics_for(self.container.service_name)
        self._wakeup = threading.Event()
        self._running = False
        self._done = threading.Event()
        self.producer: KafkaProducer | None = None

    def start(self) -> None:
        self._running = True
        self.reader = OutboxReader(self.store.database)
        self.container.spawn_managed_thread(self._loop)

    def wake(self) -> None:
        """Called after a unit of work that recorded events commits, so they go out at once."""
        self._wakeup.set()

    def _ensure_producer(self) -> KafkaProducer:
        if self.producer is None:
            self.topics.ensure()
            self.producer = make_producer(self.settings, f"{self.container.service_name}-relay")
        return self.producer

    def _publish(self, rows: list[sa.Row[Any]]) -> Relayed:
        """Send rows in order. A row that no retry can ever send (too large, refused as invalid)
        is parked: replaced by a dead letter, so it never blocks the rows behind it. A transient
        failure stops the batch there: what was acknowledged before it is kept, the rest retried."""
        producer = self._ensure_producer()
        result = Relayed()
        pending: list[tuple[sa.Row[Any], Any]] = []  # (row, its future or the error that refused it)
        for row in rows:
            try:
                headers = [(k, v.encode()) for k, v in (row.headers or {}).items()]
                key = row.key.encode() if row.key is not None else None
                pending.append(
                    (
                        row,
                        producer.send(
                            self.settings.physical_topic(row.topic), key=key, value=row.value, headers=headers
                        ),
                    )
                )
            except UNSENDABLE as exc:
                pending.append((row, exc))
            except Exception as exc:  # e.g. no metadata in time: the broker is away
                result.error = exc
                break
        try:
            producer.flush(timeout=60)
        except Exception:  # each record's own outcome says what happened to it, below
            pass
        published: dict[tuple[str, str], int] = {}
        spans = tracing.exporting()
        for row, future in pending:
            try:
                if isinstance(future, Exception):
                    raise future
                future.get(timeout=60)  # raises if the broker did not acknowledge it
            except UNSENDABLE as exc:
                self._park(result, row, exc)
                continue
            except Exception as exc:
                result.error = exc
                break
            result.sent.append(row.id)
            published[row.topic, row.event_type] = published.get((row.topic, row.event_type), 0) + 1
            if spans:
                tracing.producer_span(
                    f"send {row.topic}",
                    (row.headers or {}).get("traceparent"),
                    **{
                        "messaging.system": "kafka",
                        "messaging.operation.type": "send",
                        "messaging.destination.name": row.topic,
                    },
                )
        for (topic, event_type), count in published.items():  # counted once per topic and type
            child(self.metrics.events_published, service=self.container.service_name, topic=topic, type=event_type).inc(
                count
            )
        crash_point("relay.published")
        return result

    def _park(self, result: Relayed, row: sa.Row[Any], exc: Exception) -> None:
        service = self.container.service_name
        error = f"{exc.__class__.__name__}: {exc}"
        log.error(
            "outbox row %s (%s on %s) can never be published (%s); parked on the dead-letter topic",
            row.id,
            row.event_type,
            row.topic,
            error,
        )
        if row.topic == topics.DEADLETTER:  # a dead letter that cannot be sent is not dead-lettered again
            result.parked[row.id] = None
            return
        result.parked[row.id] = dead_letter(
            row.value, row.key, "unpublishable", error, service, original=row.headers, topic=row.topic, outbox_id=row.id
        )
        self.metrics.dead_lettered.labels(service=service, topic=row.topic, reason="unpublishable").inc()

    def relay_once(self) -> int:
        return self.reader.relay(BATCH, self._publish)

    def _loop(self) -> None:
        service = self.container.service_name
        delay = 0.1
        last_housekeeping = 0.0
        try:
            while self._running:
                try:
                    sent = self.relay_once()
                    delay = 0.1
                    if time.monotonic() - last_housekeeping > 60:
                        last_housekeeping = time.monotonic()
                        self.reader.prune(KEEP_SENT)
                    if sent < BATCH:
                        woken = self._wakeup.wait(self.settings.kokeilu_relay_interval_seconds)
                        if woken and self._running and self.settings.kokeilu_relay_linger_seconds > 0:
                            time.sleep(self.settings.kokeilu_relay_linger_seconds)  # green: others go on
                        self._wakeup.clear()
                except Exception as exc:
                    self.metrics.retries.labels(service=service, stage="relay").inc()
                    log.warning("outbox relay failed (%s: %s); retrying in %.1fs", exc.__class__.__name__, exc, delay)
                    self._close_producer()
                    self._wakeup.wait(delay)
                    self._wakeup.clear()
                    delay = min(delay * 2, 10)
        finally:
            self._done.set()

    def _close_producer(self) -> None:
        if self.producer is not None:
            try:
                self.producer.close(timeout=5)
            except Exception:  # closing a broken producer may fail too; it is replaced anyway
                pass
            self.producer = None

    def stop(self) -> None:
        """Graceful: publish what is left (bounded), then close."""
        self._running = False
        self._wakeup.set()
        self._done.wait()
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline and self.relay_once():
                pass
        except Exception as exc:
            log.warning("outbox not fully flushed at stop (%s); it is published on next start", exc)
        self._close_producer()

    def kill(self) -> None:
        self._running = False
        self._wakeup.set()
        self._close_producer()
