"""The Kafka consumer entrypoint.

    @consume(topics.PROPOSALS)
    def on_proposal_event(self, event: CloudEvent, data): ...   # returns an outcome name

    @consume(topics.INTAKE, on_reject=handlers.intake_rejected)  # optional, see __init__

Each poll batch is applied in ONE database transaction: for each record in turn it parses the
CloudEvent and its typed data and runs the service method in a nameko worker (inline, not from
the worker pool: see _run_worker), inside a savepoint of
that transaction (the method's own unit of work, with the inbox, nests in it); a record that
fails for good is rolled back to its savepoint and dead-lettered through the outbox in the
same transaction, so it is undone alone. Then the transaction commits (one fsync for the
batch, its outbox rows woken to the relay together) and only then are the batch's offsets
committed. A crash before the commit leaves nothing applied; a crash after it redelivers and
the inbox makes the redelivery change nothing. A transient failure (store or broker briefly
gone) rolls the batch back and retries it with backoff. Per-record metrics (count, outcome,
processing time) are counted once the batch has committed.

Records of one key are applied in offset order (records of a bulk type may wait in a run while
records of other keys are applied: see _Run). A batch ends early after
`KOKEILU_CONSUMER_BATCH_SECONDS`: on SQLite its transaction holds the store's write lock,
which the service's HTTP requests wait for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata
from nameko.containers import WorkerContext
from nameko.extensions import Entrypoint
from pydantic import BaseModel

from kokeilu import tracing
from kokeilu.config import get_settings
from kokeilu.contracts import CloudEvent, InvalidEvent, decode, parse_envelope
from kokeilu.contracts.catalog import EventType
from kokeilu.errors import is_transient
from kokeilu.extensions import StoreExtension, TopicsExtension
from kokeilu.faults import crash_point
from kokeilu.kafka.deadletter import dead_letter, redrive_of
from kokeilu.kafka.monitor import KafkaMonitor
from kokeilu.kafka.relay import OutboxRelay
from kokeilu.kafka.topics import partitions_of
from kokeilu.metrics import known_type, metrics_for
from kokeilu.store import UnitOfWork
from kokeilu.store.unit_of_work import OutboxRow, RecordSavepoint, Savepoint, write_outbox

log = logging.getLogger(__name__)

# How long an offset commit may wait for the group coordinator's answer.
COMMIT_TIMEOUT_MS = 30000

# A record as kafka-python gives it (its ConsumerRecord: untyped).
Record = Any
# on_reject(raw value, the event when it parsed, reason, the unit of work dead-lettering it)


class EventConsumer(Entrypoint):
    store = StoreExtension()
    topics = TopicsExtension()
    # The relay that publishes the dead letters this entrypoint records.
    relay = OutboxRelay()
    monitor = KafkaMonitor()

    def __init__(
        self,
        *topic_names: str,
        group: str | None = None,
        on_reject: str | None = None,
        types: Iterable[EventType] | None = None,
        bulk: Mapping[EventType, str] | None = None,
        **kwargs: Any,
    ) -> None:
        """`on_reject`, when given, names a method of the service, `method(raw_value, event_or_None,
        reason)`, run in the batch's worker inside the unit of work that dead-letters a record:
        its units of work join that one (so it can publish a rejection in the same transaction,
        all or nothing) and its figures count once the batch has committed. `event` is the
        parsed envelope when the record got that far.

        `types`, when given, are the event types (kokeilu.contracts.catalog entries) the method
        handles: a valid event of another type is counted as ignored without a worker or a
        savepoint (most of what some services read, e.g. contact records, is not theirs).

        `bulk`, when given, maps event types to the name of another method of the service that
        applies a run of consecutive records of those types at once (records that stream in at
        sensor rates, e.g. measurements; types mapped to one method share its runs): it gets a
        list of (event, data) and returns, for each
        item in order, its outcome or the exception that refuses it. A refused record is
        dead-lettered alone, as if the decorated method had raised that exception for it; a run
        whose method fails as a whole is undone and applied again record by record through the
        decorated method, so the bulk method only ever makes the common case cheaper."""
        self.topic_names = topic_names
        self.types = None if types is None else frozenset(t.name for t in types)
        self.bulk = {t.name: method for t, method in (bulk or {}).items()}
        self.group_suffix = group
        self.on_reject = on_reject
        super().__init__(**kwargs)

    def setup(self) -> None:
        self.settings = get_settings()
        service = self.container.service_name
        self.group = f"{self.settings.kokeilu_topic_prefix}kokeilu.{service}" + (
            f".{self.group_suffix}" if self.group_suffix else ""
        )
        self.metrics = metrics_for(service)
        self._stopping = False
        self._done = threading.Event()
        self.consumer: KafkaConsumer | None = None
        self.membership: _Membership | None = None  # the connected consumer's
        self._worker: _BatchWorker | None = None  # the nameko worker of the batch being applied
        # The open transaction of the poll batch being applied, for the workers it spawns
        # (kokeilu.platform.Store hands them units of work inside it); None between batches.
        self.batch: Batch | None = None

    def start(self) -> None:
        self.monitor.watch(self.group, self.topic_names)
        # Exported at 0 from the start, so that increase() (KokeiluRecordsDeadLettered) sees the
        # first dead letter after a restart, and the dashboard shows 0 rather than no data; and
        # so that the processing-time histogram's rate() sees its first batch: a series that
        # first appears with every observation it will get has no rate to show.
        service = self.container.service_name
        for topic in self.topic_names:
            for reason in ("unparseable", "invalid", "failed"):
                self.metrics.dead_lettered.labels(service=service, topic=topic, reason=reason)
            self.metrics.processing.labels(service=service, topic=topic)
        self.container.spawn_managed_thread(self._run)

    def stop(self) -> None:
        self._stopping = True
        self._done.wait()
        super().stop()

    def kill(self) -> None:
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
        while not self._know_partitions(consumer, names):
            if time.monotonic() > deadline:
                consumer.close(autocommit=False)
                raise TimeoutError(f"no partition metadata for {names} after 60 s")
            time.sleep(0.2)
        self.membership = _Membership(self.monitor, self.group)
        consumer.subscribe(names, listener=self.membership)
        return consumer

    @staticmethod
    def _know_partitions(consumer: KafkaConsumer, names: list[str]) -> bool:
        try:
            return all(partitions_of(consumer, name) for name in names)
        except TimeoutError as exc:
            log.warning("%s; asking again", exc)
            return False

    def _run(self) -> None:
        delay = 0.2
        try:
            while not self._stopping:
                try:
                    if self.consumer is None:
                        self.consumer = self._connect()
                    self._poll_once(self.consumer)
                    delay = 0.2
                except Exception as exc:
                    if self._stop_asked():
                        break
                    self.metrics.retries.labels(service=self.container.service_name, stage="consume").inc()
                    log.warning(
                        "consumer %s failed (%s: %s); reconnecting in %.1fs",
                        self.group,
                        exc.__class__.__name__,
                        exc,
                        delay,
                    )
                    self._close(commit=False)
                    time.sleep(delay)
                    delay = min(delay * 2, 10)
        finally:
            self._close(commit=False)
            self._done.set()

    def _stop_asked(self) -> bool:
        """Whether stop() or kill() was called (read anew: another green thread sets it)."""
        return self._stopping

    def _close(self, commit: bool) -> None:
        self.monitor.assigned(self.group, None)
        if self.consumer is not None:
            try:
                self.consumer.close(autocommit=commit)
            except Exception:  # a consumer whose broker is gone may not close cleanly
                pass
            self.consumer = None

    def _poll_once(self, consumer: KafkaConsumer) -> None:
        records: list[Record] = [r for rs in consumer.poll(timeout_ms=500).values() for r in rs]
        waited = self.membership.joining_for() if self.membership is not None else 0.0
        if waited > self.settings.kokeilu_consumer_rejoin_seconds:
            # Given no partitions for that long: start over as a new member (the caller closes
            # this consumer and connects again), rather than wait on a join that may never end.
            raise TimeoutError(f"joining group {self.group} for {waited:.0f} s without partitions")
        while records and not self._stopping:
            applied = self._apply_batch(records)
            if not applied:
                return  # stopping during a retry: leave the records to the next owner
            done: dict[TopicPartition, OffsetAndMetadata] = {}
            for record in records[:applied]:
                done[TopicPartition(record.topic, record.partition)] = OffsetAndMetadata(record.offset + 1, "", -1)
            crash_point("consumer.committed")
            # Bounded (kafka-python waits for the answer without a timeout otherwise): a commit
            # that times out reconnects, and the inbox makes the records redelivered change nothing.
            consumer.commit(offsets=done, timeout_ms=COMMIT_TIMEOUT_MS)
            records = records[applied:]

    def _apply_batch(self, records: list[Record]) -> int:
        """Apply the leading records in one transaction; how many (0 only when stopping).

        A transient failure (store or broker briefly gone) rolls the whole transaction back and
        tries again with backoff: nothing of it was committed, so nothing is applied twice.
        """
        delay = 0.1
        while True:
            try:
                return self._try_batch(records)
            except Exception as exc:
                if not is_transient(exc):
                    # What the records did could not be stored (each record's own failures are
                    # dead-lettered in its savepoint; this is the batch's commit itself). Find the
                    # record: apply them one at a time; one that cannot be stored even alone is
                    # dead-lettered without its value, so the partition moves on.
                    log.error(
                        "a batch of %s from %s[%s]@%s could not be committed (%s: %s)",
                        len(records),
                        records[0].topic,
                        records[0].partition,
                        records[0].offset,
                        exc.__class__.__name__,
                        exc,
                    )
                    if len(records) > 1:
                        records = records[:1]
                        continue
                    return self._last_resort(records[0], f"{exc.__class__.__name__}: {exc}")
                if self._stopping:
                    return 0
                self.metrics.retries.labels(service=self.container.service_name, stage="apply").inc()
                log.warning(
                    "transient failure applying a batch of %s from %s[%s]@%s (%s: %s); retrying in %.1fs",
                    len(records),
                    records[0].topic,
                    records[0].partition,
                    records[0].offset,
                    exc.__class__.__name__,
                    exc,
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, 10)

    def _last_resort(self, record: Record, error: str) -> int:
        with self.store.database.transaction() as conn:
            batch = Batch(conn)
            self._store_dead_letter(batch, record, "failed", error, keep_value=False)
            batch.dead_lettered.append((self.settings.logical_topic(record.topic), "failed"))
            write_outbox(conn, batch.outbox)
        self._committed(batch, [(self.settings.logical_topic(record.topic), "unknown", "dead_lettered", 0.0)])
        return 1

    def _committed(self, batch: Batch, counted: list[tuple[str, str, str, float]]) -> None:
        """After a batch's commit: its events to the relay, its records to the metrics."""
        service = self.container.service_name
        self.relay.wake()
        for count in batch.counts:
            try:
                count()
            except Exception:  # a figure must not fail the batch it counts
                log.exception("a domain count after a batch failed")
        # One count per kind of record, and each histogram's child looked up once per topic: a
        # labels() lookup costs more than the count itself, once per record.
        kinds = Counter((topic, event_type, outcome) for topic, event_type, outcome, _ in counted)
        for (topic, event_type, outcome), n in kinds.items():
            self.metrics.events_consumed.labels(service=service, topic=topic, type=event_type, outcome=outcome).inc(n)
        timers: dict[str, Any] = {}
        for topic, _, _, seconds in counted:
            timer = timers.get(topic)
            if timer is None:
                timer = timers[topic] = self.metrics.processing.labels(service=service, topic=topic)
            timer.observe(seconds)
        for topic, reason in batch.dead_lettered:
            self.metrics.dead_lettered.labels(service=service, topic=topic, reason=reason).inc()
        for topic, outcome in batch.redriven:
            self.metrics.redriven.labels(service=service, topic=topic, outcome=outcome).inc()

    def _try_batch(self, records: list[Record]) -> int:
        """One transaction: each record applied, or dead-lettered, in a savepoint of its own, so
        one bad record is undone alone; the batch ends after the time budget (a transaction
        holds SQLite's write lock, which the service's HTTP requests are waiting for). Metrics
        are counted once the transaction has committed."""
        budget = self.settings.kokeilu_consumer_batch_seconds
        began = time.perf_counter()
        counted: list[tuple[str, str, str, float]] = []
        run = _Run()  # records for a bulk method, not applied yet
        with self.store.database.transaction() as conn:
            batch = self.batch = Batch(conn)
            self._worker = None  # made for the batch's first record that needs it
            try:
                for record in records:
                    if (counted or run) and (self._stopping or time.perf_counter() - began > budget):
                        break
                    started = time.perf_counter()
                    topic = self.settings.logical_topic(record.topic)
                    outcome, event, data = self._read(batch, record, topic)
                    if outcome is None and event is not None and event.type in self.bulk:
                        if run and self.bulk[run.type] != self.bulk[event.type]:
                            self._apply_run(batch, run.take(), counted)
                        run.add(_Pending(record, topic, event, data))
                        continue
                    # The run goes first when the record changes something and has a key in it (a
                    # key's records in order); one of a type the service ignores changes nothing.
                    if run and outcome != "ignored" and run.before(record):
                        self._apply_run(batch, run.take(), counted)
                        started = time.perf_counter()
                    if outcome is None and event is not None:
                        outcome = self._apply_one(batch, record, topic, event, data)
                    self._count(batch, counted, record, topic, event, outcome, time.perf_counter() - started)
                if run:
                    self._apply_run(batch, run.take(), counted)
                write_outbox(conn, batch.outbox)  # the whole batch's events, in one statement
            finally:
                self.batch = None
                self._close_worker()
        self._committed(batch, counted)
        return len(counted)

    def _count(
        self,
        batch: Batch,
        counted: list[tuple[str, str, str, float]],
        record: Record,
        topic: str,
        event: CloudEvent | None,
        outcome: str | None,
        seconds: float,
    ) -> None:
        """One record settled (in the batch's transaction; counted once it commits)."""
        if redrive_of(record.headers):
            batch.redriven.append((topic, outcome or "applied"))
        event_type = event.type if event is not None else "unknown"
        counted.append((topic, known_type(event_type), outcome or "applied", seconds))
        crash_point("consumer.applied")

    def _read(self, batch: Batch, record: Record, topic: str) -> tuple[str | None, CloudEvent | None, Any]:
        """(outcome, event, data) of one record: the outcome is None when the record is for the
        service method to apply, else it was settled here: dead-lettered because it does not
        parse or is invalid (`event` is None, or the envelope when it got that far), or ignored
        (a type the method does not handle). Raises only what is transient."""
        try:
            event = parse_envelope(record.value)
            data = decode(event, topic)
        except InvalidEvent as exc:
            outcome: str | None = self._dead_letter(
                batch, record, "unparseable" if exc.event is None else "invalid", exc.reason, exc.event
            )
            return outcome, exc.event, None
        except Exception as exc:  # anything else a hostile record makes the parser raise
            if is_transient(exc):
                raise
            return self._dead_letter(batch, record, "unparseable", f"{exc.__class__.__name__}: {exc}"), None, None
        if self.types is not None and event.type not in self.types:
            return "ignored", event, None
        return None, event, data

    def _apply_one(self, batch: Batch, record: Record, topic: str, event: CloudEvent, data: BaseModel) -> str | None:
        """One record through the decorated method, in a savepoint of the batch's transaction."""
        with tracing.consuming(event, topic, record.partition, record.offset, self.group) as span:
            outcome = self._apply_event(batch, record, topic, event, data)
            span.set_attribute("kokeilu.outcome", outcome or "applied")
            return outcome

    def _apply_run(self, batch: Batch, items: list[_Pending], counted: list[tuple[str, str, str, float]]) -> None:
        """A run of records for a bulk method, applied at once in a savepoint of the batch's
        transaction; the records it refuses are then dead-lettered one by one. When the method
        fails as a whole (a bug, or another instance applying the same records), the savepoint
        is undone and the run applied record by record instead."""
        started = time.perf_counter()
        method = self.bulk[items[0].event.type]
        savepoint, recorded, counts = Savepoint(batch.conn), len(batch.outbox), len(batch.counts)
        batch.record.savepoint = savepoint
        try:
            results = self._run_worker([(p.event, p.data) for p in items], method=method)
            batch.record.savepoint = None
            if len(results) != len(items):
                raise TypeError(f"{method} returned {len(results)} outcomes for {len(items)} records")
            savepoint.commit()
        except Exception as exc:
            batch.record.savepoint = None
            del batch.outbox[recorded:]
            del batch.counts[counts:]
            if savepoint.is_active:
                savepoint.rollback()
            if is_transient(exc):
                raise
            log.warning(
                "%s failed for a run of %s (%s: %s); applying them one by one",
                method,
                len(items),
                exc.__class__.__name__,
                exc,
            )
            for p in items:
                began = time.perf_counter()
                outcome = self._apply_one(batch, p.record, p.topic, p.event, p.data)
                self._count(batch, counted, p.record, p.topic, p.event, outcome, time.perf_counter() - began)
            return
        each = (time.perf_counter() - started) / len(items)
        recording = tracing.exporting()
        for p, result in zip(items, results, strict=True):
            if isinstance(result, str) and not recording:
                # Its span would be recorded by nothing and hold no log line: not made (about
                # 10 us a record when nothing records spans).
                self._count(batch, counted, p.record, p.topic, p.event, result, each)
                continue
            with tracing.consuming(p.event, p.topic, p.record.partition, p.record.offset, self.group) as span:
                outcome = result
                if isinstance(result, Exception):
                    log.warning("event %s on %s refused: %s", p.event.id, p.topic, result)
                    outcome = self._dead_letter(
                        batch, p.record, "failed", f"{result.__class__.__name__}: {result}", p.event, str(result)
                    )
                span.set_attribute("kokeilu.outcome", outcome or "applied")
            self._count(batch, counted, p.record, p.topic, p.event, outcome, each)

    def _apply_event(self, batch: Batch, record: Record, topic: str, event: CloudEvent, data: BaseModel) -> str | None:
        savepoint, recorded, counts = Savepoint(batch.conn), len(batch.outbox), len(batch.counts)
        batch.record.savepoint = savepoint
        try:
            outcome: str | None = self._run_worker(event, data)
            batch.record.savepoint = None
            savepoint.commit()
            return outcome
        except Exception as exc:
            batch.record.savepoint = None
            del batch.outbox[recorded:]  # the events it recorded go with the rest of its work
            del batch.counts[counts:]  # and so do its counts
            if savepoint.is_active:  # not when releasing it failed: that fails the batch (below)
                savepoint.rollback()  # raises if the connection itself is gone: transient, retried
            if is_transient(exc):
                raise
            log.warning("event %s on %s failed permanently: %s", event.id, topic, exc)
            return self._dead_letter(batch, record, "failed", f"{exc.__class__.__name__}: {exc}", event, str(exc))

    def _close_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()

    def _run_worker(self, *args: Any, method: str | None = None) -> Any:
        """Run the service method (or `method`, another method of the service: a bulk method)
        for a record, in the batch's nameko worker: one per batch, made with its dependencies
        injected (units of work and figures inside the batch) and its hooks run as nameko's own
        worker run does, and closed when the batch ends. The worker runs here, in the
        consumer's green thread, not through the service's worker pool: the batch holds the
        store's lock, HTTP workers waiting for that lock can fill the pool (max_workers), and a
        pooled spawn would then wait for them while they wait for the batch: a deadlock."""
        worker = self._worker
        if worker is None:
            worker = self._worker = _BatchWorker(self)
        return getattr(worker.service, method or self.method_name)(*args)

    def _dead_letter(
        self,
        batch: Batch,
        record: Record,
        reason: str,
        error: str,
        event: CloudEvent | None = None,
        message: str | None = None,
    ) -> str:
        """Record the dead letter (and the rejection, if any) in the batch's transaction; the
        outcome: "dead_lettered", or "duplicate" for a record dead-lettered before. When even
        that fails for a reason no retry changes, one that names the record and the error but
        leaves its value out keeps the partition moving."""
        try:
            if not self._store_dead_letter(batch, record, reason, error, event, message, keep_value=True):
                return "duplicate"
        except Exception as exc:
            if is_transient(exc):
                raise
            log.error(
                "dead letter for %s[%s]@%s could not be stored (%s: %s); storing it without its value",
                record.topic,
                record.partition,
                record.offset,
                exc.__class__.__name__,
                exc,
            )
            self._store_dead_letter(batch, record, "failed", f"{exc.__class__.__name__}: {exc}", keep_value=False)
            reason = "failed"
        batch.dead_lettered.append((self.settings.logical_topic(record.topic), reason))
        return "dead_lettered"

    def _store_dead_letter(
        self,
        batch: Batch,
        record: Record,
        reason: str,
        error: str,
        event: CloudEvent | None = None,
        message: str | None = None,
        keep_value: bool = True,
    ) -> bool:
        # The last resort (keep_value=False) keeps nothing of the record's but its key and where it was.
        letter = dead_letter(
            record.value if keep_value else None,
            record.key,
            reason,
            error,
            self.container.service_name,
            original=record.headers if keep_value else None,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            consumer_group=self.group,
        )
        with UnitOfWork.joining(self.store.database, batch.conn, batch.outbox) as uow:
            # A record is dead-lettered once, even when a crash between the batch's commit and
            # its offsets' commit delivers it again (it has no event id the inbox could know).
            if not uow.first_time_key(
                f"dead-letter:{self.group}", f"{record.topic}:{record.partition}:{record.offset}", "dead-letter"
            ):
                return False
            uow.add_outbox(letter.topic, letter.key, letter.value, letter.headers, letter.event_type)
            if self.on_reject is not None and keep_value:
                self._reject(uow, record, event, message or error)
            uow.commit()
        log.warning(
            "dead-lettered %s[%s]@%s: %s",
            record.topic,
            record.partition,
            record.offset,
            letter.headers["kokeilu.error"][:300],
        )
        return True

    def _reject(self, uow: UnitOfWork, record: Record, event: CloudEvent | None, reason: str) -> None:
        if self.on_reject is None:
            return
        # In a savepoint: a failing callback must not stop the dead letter (nor stall the partition).
        try:
            with uow.conn.begin_nested():
                self._run_worker(record.value, event, reason, method=self.on_reject)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning("on_reject failed for %s[%s]@%s: %s", record.topic, record.partition, record.offset, exc)


class _Membership(ConsumerRebalanceListener):
    """Tells the monitor (readiness, metrics) when the group takes partitions away and gives them,
    and knows since when this member has been joining (without partitions)."""

    def __init__(self, monitor: KafkaMonitor, group: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.monitor, self.group, self.clock = monitor, group, clock
        self.joining_since: float | None = clock()  # subscribed: joining until partitions come
        monitor.assigned(group, None, joining=True)

    def joining_for(self) -> float:
        """Seconds since this member began (re)joining its group; 0 while it holds its partitions."""
        since = self.joining_since
        return 0.0 if since is None else self.clock() - since

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self.joining_since is None:
            self.joining_since = self.clock()
        self.monitor.assigned(self.group, None, joining=True)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.joining_since = None
        self.monitor.assigned(self.group, len(assigned))


@dataclass
class Batch:
    """A poll batch being applied: its transaction's connection, the outbox rows its records
    recorded (written together just before it commits), its dead letters (topic, reason) and
    redriven records (topic, outcome), counted once it has committed."""

    conn: sa.Connection
    outbox: list[OutboxRow] = field(default_factory=list)
    # The savepoint around the record being applied, offered to its first unit of work block.
    record: RecordSavepoint = field(default_factory=RecordSavepoint)
    # Its use cases' domain counts (kokeilu.platform.Figures), made once it has committed.
    counts: list[Callable[[], object]] = field(default_factory=list)
    dead_lettered: list[tuple[str, str]] = field(default_factory=list)
    # Its records an operator redrove from the dead-letter topic: (topic, outcome).
    redriven: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Pending:
    """A parsed record waiting in a run for its service's bulk method."""

    record: Record
    topic: str
    event: CloudEvent
    data: Any


class _Run:
    """Records for one bulk method waiting for it, in offset order, and their keys.

    A record for no bulk method is applied at once, before the run, unless it has the key of a
    record in the run (or no key, so no order can be told): then the run is applied first (not
    for a record of a type the service ignores: it changes nothing). Records of one key so stay
    in offset order, the order Kafka keeps (per partition, and so per key) and the only one
    consumers rely on, while a stream of measurements mixed with other intake still goes to the
    bulk method in long runs."""

    def __init__(self) -> None:
        self.items: list[_Pending] = []
        self.keys: set[bytes | None] = set()

    def __bool__(self) -> bool:
        return bool(self.items)

    @property
    def type(self) -> str:
        return self.items[0].event.type

    def add(self, pending: _Pending) -> None:
        self.items.append(pending)
        self.keys.add(pending.record.key)

    def before(self, record: Record) -> bool:
        """Whether the run must be applied before `record`."""
        return record.key is None or record.key in self.keys

    def take(self) -> list[_Pending]:
        items, self.items, self.keys = self.items, [], set()
        return items


class _BatchWorker:
    """A nameko worker for a poll batch: the service instance, its dependencies injected once
    (each record's method is called on it), and the worker hooks run around the batch, as
    nameko's ServiceContainer._run_worker runs them around one call (nameko 2.14)."""

    def __init__(self, consumer: EventConsumer):
        self.container = consumer.container
        self.ctx = WorkerContext(self.container, self.container.service_cls(), consumer, (), {})
        self.container._inject_dependencies(self.ctx)
        self.container._worker_setup(self.ctx)
        self.service = self.ctx.service

    def close(self) -> None:
        self.container._worker_result(self.ctx, None, None)
        self.container._worker_teardown(self.ctx)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def consume(*topic_names: str, **options: Any) -> Callable[[_Method], _Method]:
    """`@consume(topic, ...)`: the method applies the events of `topic` (EventConsumer's arguments)."""
    decorate: Callable[[_Method], _Method] = EventConsumer.decorator(*topic_names, **options)  # nameko's (untyped)
    return decorate
