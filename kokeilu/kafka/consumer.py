"""The Kafka consumer entrypoint.

    @consume(topics.PROPOSALS)
    def on_proposal_event(self, event: CloudEvent, data): ...   # returns an outcome name

    @consume(topics.INTAKE, on_reject=handlers.intake_rejected)  # optional, see __init__

For each record it parses the CloudEvent and its typed data, runs the service method in a
worker (which applies it in one unit of work with the inbox), retries transient failures with
backoff, and sends records it cannot process to the dead-letter topic through the outbox.
Offsets are committed only after the records before them were applied or dead-lettered, so
a crash redelivers and the inbox makes the redelivery change nothing.
"""
from __future__ import annotations

import logging
import threading
import time
from functools import partial

from eventlet.event import Event
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata
from nameko.extensions import Entrypoint

from kokeilu.config import get_settings
from kokeilu.contracts import InvalidEvent, decode, parse_envelope
from kokeilu.errors import is_transient
from kokeilu.faults import crash_point
from kokeilu.extensions import StoreExtension, TopicsExtension
from kokeilu.metrics import known_type, metrics_for
from kokeilu.kafka.deadletter import dead_letter
from kokeilu.kafka.monitor import KafkaMonitor
from kokeilu.kafka.relay import OutboxRelay
from kokeilu.store import UnitOfWork

log = logging.getLogger(__name__)


class EventConsumer(Entrypoint):
    store = StoreExtension()
    topics = TopicsExtension()
    # The relay that publishes the dead letters this entrypoint records.
    relay = OutboxRelay()
    monitor = KafkaMonitor()

    def __init__(self, *topic_names: str, group: str | None = None, on_reject=None, **kwargs):
        """`on_reject(raw_value, event_or_None, reason, uow)`, when given, runs inside the unit of
        work that dead-letters a record (so it can publish a rejection in the same transaction);
        `event` is the parsed envelope when the record got that far."""
        self.topic_names = topic_names
        self.group_suffix = group
        self.on_reject = on_reject
        super().__init__(**kwargs)

    def setup(self):
        self.settings = get_settings()
        service = self.container.service_name
        self.group = f"{self.settings.kokeilu_topic_prefix}kokeilu.{service}" + (f".{self.group_suffix}" if self.group_suffix else "")
        self.metrics = metrics_for(service)
        self._stopping = False
        self._done = threading.Event()
        self.consumer: KafkaConsumer | None = None

    def start(self):
        self.monitor.watch(self.group, self.topic_names)
        self.container.spawn_managed_thread(self._run)

    def stop(self):
        self._stopping = True
        self._done.wait()
        super().stop()

    def kill(self):
        self._stopping = True
        if self.consumer is not None:
            self.consumer.close(autocommit=False)

    # -- the loop -------------------------------------------------------------------------
    def _connect(self) -> KafkaConsumer:
        self.topics.ensure()
        consumer = KafkaConsumer(
            **self.settings.kafka_client_options(),
            group_id=self.group,
            client_id=f"{self.group}-{id(self):x}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.kokeilu_consumer_max_records,
            max_poll_interval_ms=300000,
            session_timeout_ms=10000,
            # A safety net for partitions added later: they are seen within a minute, not five.
            metadata_max_age_ms=60000,
            heartbeat_interval_ms=3000,
        )
        names = [self.settings.physical_topic(t) for t in self.topic_names]
        # Join the group only once this client knows every topic's partitions: a member that
        # joins before (topics just created by another service) is assigned nothing for them,
        # and would idle until its next metadata refresh.
        deadline = time.monotonic() + 60
        while not all(consumer.partitions_for_topic(name) for name in names):
            if time.monotonic() > deadline:
                consumer.close(autocommit=False)
                raise TimeoutError(f"no partition metadata for {names} after 60 s")
            time.sleep(0.2)
        consumer.subscribe(names)
        return consumer

    def _run(self):
        delay = 0.2
        try:
            while not self._stopping:
                try:
                    if self.consumer is None:
                        self.consumer = self._connect()
                    self._poll_once()
                    delay = 0.2
                except Exception as exc:
                    if self._stopping:
                        break
                    self.metrics.retries.labels(service=self.container.service_name, stage="consume").inc()
                    log.warning("consumer %s failed (%s: %s); reconnecting in %.1fs",
                                self.group, exc.__class__.__name__, exc, delay)
                    self._close(commit=False)
                    time.sleep(delay)
                    delay = min(delay * 2, 10)
        finally:
            self._close(commit=False)
            self._done.set()

    def _close(self, commit: bool):
        if self.consumer is not None:
            try:
                self.consumer.close(autocommit=commit)
            except Exception:  # a consumer whose broker is gone may not close cleanly
                pass
            self.consumer = None

    def _poll_once(self):
        batch = self.consumer.poll(timeout_ms=500)
        done: dict[TopicPartition, OffsetAndMetadata] = {}
        try:
            for tp, records in batch.items():
                for record in records:
                    if self._stopping:
                        return
                    if not self._process(record):
                        return  # stopping during retries: leave the record for the next owner
                    crash_point("consumer.applied")
                    done[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
        finally:
            if done:
                self.consumer.commit(offsets=done)

    def _process(self, record) -> bool:
        """Apply, or dead-letter, one record. False only when stopping interrupted a retry.

        Whatever a record holds, it ends applied or dead-lettered and the partition moves on;
        only a transient failure (store or broker briefly gone) holds it, retried with backoff.
        """
        service = self.container.service_name
        topic = self.settings.logical_topic(record.topic)
        started = time.perf_counter()
        delay = 0.1
        while True:
            try:
                outcome, event_type = self._apply(record, topic)
                break
            except Exception as exc:
                if not is_transient(exc):
                    # Even the dead letter could not be stored whole: keep the partition moving
                    # with one that names the record and the error but leaves its value out.
                    log.error("dead letter for %s[%s]@%s could not be stored (%s: %s); storing it without its value",
                              record.topic, record.partition, record.offset, exc.__class__.__name__, exc)
                    self._dead_letter(record, "failed", f"{exc.__class__.__name__}: {exc}", keep_value=False)
                    outcome, event_type = "dead_lettered", "unknown"
                    break
                if self._stopping:
                    return False
                self.metrics.retries.labels(service=service, stage="apply").inc()
                log.warning("transient failure on %s[%s]@%s (%s); retrying in %.1fs",
                            record.topic, record.partition, record.offset, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10)
        self.metrics.events_consumed.labels(service=service, topic=topic, type=known_type(event_type),
                                            outcome=outcome or "applied").inc()
        self.metrics.processing.labels(service=service, topic=topic).observe(time.perf_counter() - started)
        return True

    def _apply(self, record, topic: str) -> tuple[str | None, str]:
        """(outcome, event type) of one attempt; raises only what is transient, or a failure to
        store the dead letter."""
        try:
            event = parse_envelope(record.value)
            data = decode(event, topic)
        except InvalidEvent as exc:
            self._dead_letter(record, "unparseable" if exc.event is None else "invalid", exc.reason, exc.event)
            return "dead_lettered", exc.event.type if exc.event is not None else "unknown"
        except Exception as exc:  # anything else a hostile record makes the parser raise
            if is_transient(exc):
                raise
            self._dead_letter(record, "unparseable", f"{exc.__class__.__name__}: {exc}")
            return "dead_lettered", "unknown"
        try:
            return self._run_worker(event, data), event.type
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning("event %s on %s failed permanently: %s", event.id, topic, exc)
            self._dead_letter(record, "failed", f"{exc.__class__.__name__}: {exc}", event, str(exc))
            return "dead_lettered", event.type

    def _run_worker(self, event, data):
        done = Event()
        self.container.spawn_worker(self, (event, data), {}, handle_result=partial(_handle_result, done))
        return done.wait()

    def _dead_letter(self, record, reason: str, error: str, event=None, message: str | None = None,
                     keep_value: bool = True):
        service = self.container.service_name
        letter = dead_letter(record.value if keep_value else None, record.key, reason, error, service,
                             topic=record.topic, partition=record.partition, offset=record.offset,
                             consumer_group=self.group)
        with UnitOfWork(self.store.database, on_commit=self.relay.wake) as uow:
            uow.add_outbox(letter.topic, letter.key, letter.value, letter.headers, letter.event_type)
            if self.on_reject is not None and keep_value:
                self._reject(uow, record, event, message or error)
            uow.commit()
        self.metrics.dead_lettered.labels(service=service, topic=self.settings.logical_topic(record.topic),
                                          reason=reason).inc()
        log.warning("dead-lettered %s[%s]@%s: %s", record.topic, record.partition, record.offset, letter.headers["kokeilu.error"][:300])

    def _reject(self, uow, record, event, reason: str) -> None:
        # In a savepoint: a failing callback must not stop the dead letter (nor stall the partition).
        try:
            with uow.conn.begin_nested():
                self.on_reject(record.value, event, reason, uow)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning("on_reject failed for %s[%s]@%s: %s", record.topic, record.partition, record.offset, exc)


def _handle_result(done: Event, worker_ctx, result, exc_info):
    done.send(result, exc_info)
    return result, exc_info


consume = EventConsumer.decorator
