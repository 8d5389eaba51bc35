"""The outbox relay: publishes what units of work recorded, in order, with an idempotent
producer (acks=all), and marks rows sent. The only code path that produces to Kafka."""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from kafka import KafkaProducer
from nameko.extensions import SharedExtension

from kokeilu.config import get_settings
from kokeilu.faults import crash_point
from kokeilu.extensions import StoreExtension, TopicsExtension
from kokeilu.metrics import metrics_for
from kokeilu.store import OutboxReader

log = logging.getLogger(__name__)

BATCH = 500
KEEP_SENT = timedelta(days=1)


def make_producer(settings, client_id: str) -> KafkaProducer:
    return KafkaProducer(
        **settings.kafka_client_options(),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        retries=2147483647,
        max_in_flight_requests_per_connection=5,
        request_timeout_ms=15000,
        delivery_timeout_ms=60000,
    )


class OutboxRelay(SharedExtension):
    store = StoreExtension()
    topics = TopicsExtension()

    def setup(self):
        self.settings = get_settings()
        self.metrics = metrics_for(self.container.service_name)
        self._wakeup = threading.Event()
        self._running = False
        self._done = threading.Event()
        self.producer = None

    def start(self):
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

    def _publish(self, rows) -> None:
        producer = self._ensure_producer()
        futures = []
        for row in rows:
            headers = [(k, v.encode()) for k, v in (row.headers or {}).items()]
            key = row.key.encode() if row.key is not None else None
            futures.append((row, producer.send(self.settings.physical_topic(row.topic), key=key, value=row.value, headers=headers)))
        producer.flush(timeout=60)
        for row, future in futures:
            future.get(timeout=60)  # raises if the broker did not acknowledge it
        crash_point("relay.published")
        for row, _ in futures:
            self.metrics.events_published.labels(
                service=self.container.service_name, topic=row.topic, type=row.event_type).inc()

    def relay_once(self) -> int:
        return self.reader.relay(BATCH, self._publish)

    def _loop(self):
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
                        self._wakeup.wait(self.settings.kokeilu_relay_interval_seconds)
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

    def _close_producer(self):
        if self.producer is not None:
            try:
                self.producer.close(timeout=5)
            except Exception:  # closing a broken producer may fail too; it is replaced anyway
                pass
            self.producer = None

    def stop(self):
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

    def kill(self):
        self._running = False
        self._wakeup.set()
        self._close_producer()
