"""Unit of work: one database transaction that changes a service's store, records the events to
publish (outbox) and the events applied (inbox), all or nothing."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self, TypedDict

import sqlalchemy as sa
from pydantic import BaseModel

from kokeilu import tracing
from kokeilu.contracts import CONTENT_TYPE, CloudEvent, utcnow
from kokeilu.contracts.catalog import BY_NAME, EventType
from kokeilu.contracts.envelope import carried, new_event_json
from kokeilu.errors import TransientError
from kokeilu.faults import crash_point

from .database import Database
from .locks import file_lock, hold
from .statements import as_list, insert_new, insert_rows, one_of
from .tables import add_flows_table, add_messaging_tables

_meta = sa.MetaData()
OUTBOX, INBOX = add_messaging_tables(_meta)
FLOWS = add_flows_table(_meta)


class OutboxRow(TypedDict):
    """An outbox row to write (its id and sent_at are the table's)."""

    topic: str
    key: str | None
    value: bytes | None
    headers: dict[str, str]
    event_type: str
    created_at: datetime


@dataclass
class _Level:
    """One open level of a unit of work: its savepoint (None for the transaction itself),
    whether its block called commit(), and how many outbox rows were pending when it began."""

    savepoint: Savepoint | None
    committed: bool
    pending: int
    # The savepoint is its caller's (RecordSavepoint): leaving the block without commit undoes
    # its work and keeps the savepoint; keeping the work leaves releasing it to the caller.
    shared: bool = False


class RecordSavepoint:
    """The savepoint a consumer takes around one record, offered to the record's first unit of
    work block, which uses it as its own instead of nesting a savepoint in it (two statements
    fewer per record). `savepoint` is None once a block has taken it, or between records."""

    def __init__(self) -> None:
        self.savepoint: Savepoint | None = None


class UnitOfWork:
    """Use as `with uow_factory() as uow: ...; uow.commit()`; leaving without commit rolls back.

    Services subclass it and bind their repositories in `bind(conn)`.

    Entering a unit of work that is already open nests it in a savepoint of the same
    transaction: the inner block's commit() keeps its changes (they become durable only when
    the outer one commits), leaving it without commit() or by an exception undoes just them.
    This is how a caller makes someone else's use case part of its own transaction (the
    Idempotency-Key is recorded in the same transaction as the work it answers for).

    Every event it records is put in the flow in hand (kokeilu/tracing.py): the correlation id
    of the event or request being handled, and its trace. A use case that creates an aggregate
    calls `remember_flow(id)`, so the store keeps that flow; one that acts on an aggregate
    outside its events (an HTTP request, a timer, a sensor's measurement) calls `join_flow(id)`
    first, and the events it records about the aggregate join the aggregate's flow.

    A service's subclass names the CloudEvents `source` of what it publishes; its use cases
    record events with `emit`.
    """

    source: str | None = None  # the service's CloudEvents source (kokeilu.contracts.service_source)
    conn: sa.Connection  # the open transaction's (set on entering, or by `joining`)

    def __init__(self, database: Database, on_commit: Callable[[], None] | None = None):
        self.database = database
        self._on_commit = on_commit
        # Outbox rows recorded and not yet written: they are written together, in one statement,
        # just before the transaction commits. Each open level: [savepoint or None, committed,
        # how many rows were pending when it began].
        self._outbox: list[OutboxRow] = []
        self._levels: list[_Level] = []
        self._joined: dict[str, tuple[str, str | None]] = {}
        # Flows of aggregates made by a run of consumed events (remember_flows): the events
        # about each are made in its cause's span, as they would be inside that span.
        self._spans: dict[str, tuple[str, str | None]] = {}
        self._cm: AbstractContextManager[sa.Connection] | None = None
        self._record: RecordSavepoint | None = None

    @classmethod
    def joining(
        cls, database: Database, conn: sa.Connection, outbox: list[OutboxRow], record: RecordSavepoint | None = None
    ) -> Self:
        """A unit of work inside a transaction that its caller opened and will commit (a consumer
        applying a poll batch): every block of it is a savepoint of that transaction, whose
        commit() keeps its changes and whose failure undoes only them. The outbox rows it
        records go to `outbox`, which the caller writes (`write_outbox`) before it commits.
        Nothing is durable, and no event is published, until the caller commits. `record`, when
        given, offers the caller's savepoint around the work to the first block entered."""
        uow = cls(database)
        uow._record = record
        uow.conn = conn
        uow._outbox = outbox
        uow._levels = [_Level(None, True, len(outbox))]  # the caller's level: never left through this object
        uow.bind(conn)
        return uow

    def bind(self, conn: sa.Connection) -> None:  # extension point
        """Create the service's repositories on this transaction's connection."""

    def __enter__(self) -> Self:
        if self._levels:
            self.flush()  # what the levels outside hold goes before this one's savepoint
            record = self._record if len(self._levels) == 1 else None
            offered = record.savepoint if record is not None else None
            if record is not None and offered is not None:
                record.savepoint = None  # taken: later blocks nest savepoints of their own
                self._levels.append(_Level(offered, False, len(self._outbox), shared=True))
            else:
                self._levels.append(_Level(Savepoint(self.conn), False, len(self._outbox)))
            return self
        self._cm = self.database.transaction()
        self.conn = self._cm.__enter__()
        self._outbox = []
        self._levels.append(_Level(None, False, 0))
        self.bind(self.conn)
        return self

    def commit(self) -> None:
        self.flush()
        self._levels[-1].committed = True

    def flush(self) -> None:  # extension point
        """Write what the repositories hold back (a service whose repositories write a run of
        work in a few statements at commit overrides this and `forget`)."""

    def forget(self) -> None:  # extension point
        """Drop what the repositories hold back: the level that recorded it is undone."""

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        level = self._levels.pop()
        savepoint, committed, pending = level.savepoint, level.committed, level.pending
        keep = exc_type is None and committed
        if not keep:
            del self._outbox[pending:]
            self._joined.clear()  # what it stored of flows may be undone with it
            self._spans.clear()
            self.forget()
        if savepoint is not None and level.shared:
            if not keep:
                savepoint.undo()  # raises if the connection is gone: the caller's batch is retried
            return False
        if savepoint is not None:
            if keep:
                savepoint.commit()
            elif exc_type is None:
                savepoint.rollback()
            else:
                try:
                    savepoint.rollback()
                except Exception:  # the outer transaction rolls back anyway; keep the first error
                    pass
            return False
        cm = self._cm
        assert cm is not None, "the outermost level of a unit of work is entered, not joined"
        if exc_type is None and not committed:
            # Roll back: leaving the block without commit() means the work was not wanted.
            transaction = self.conn.get_transaction()
            assert transaction is not None  # the block's, begun on entering
            transaction.rollback()
        published = len(self._outbox)
        if keep:
            try:
                write_outbox(self.conn, self._outbox)
            except BaseException as error:
                cm.__exit__(type(error), error, error.__traceback__)
                raise
        result = cm.__exit__(exc_type, exc, tb)
        if keep:
            crash_point("uow.committed")
            if published and self._on_commit:
                self._on_commit()
        return result

    def lock(self, name: str) -> None:
        """Hold `name` until this unit of work's transaction ends (for a consumer's batch: until
        the batch commits). Another instance of the service that asks for it meanwhile waits:
        how a rule that reads many rows and then writes (the duplicate rule, panel assignment)
        stays true when instances apply events at the same moment. Take it before any row lock
        the same work takes, so that two instances always lock in one order."""
        hold(self.conn, name)

    # outbox ---------------------------------------------------------------------------
    def emit(
        self,
        event_type: EventType,
        data: BaseModel,
        subject: str,
        cause: CloudEvent | None = None,
        *,
        correlationid: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        """Record a new event of `event_type` (a kokeilu.contracts.catalog entry) from this
        service's `source` about `subject`, keyed by it, to be published after commit. `cause`,
        the event being handled, carries its correlation id and trace on and is named as the
        causation; without one, `correlationid` and `traceparent` say the flow (else it is the
        flow in hand). Then `publish` puts it in its subject's joined flow, if any."""
        if self.source is None:
            raise TypeError(f"{type(self).__name__} has no source: a service's unit of work names it")
        correlationid, traceparent = carried(cause, correlationid, traceparent)
        # Made in its flow at once (what publish's _in_flow gives), not made and then copied.
        correlationid, traceparent = self._flow_of(subject, correlationid, traceparent, cause is not None)
        value = new_event_json(
            event_type.name,
            data,
            source=self.source,
            subject=subject,
            dataschema=event_type.dataschema,
            correlationid=correlationid,
            traceparent=traceparent,
            causationid=cause.id if cause is not None else None,
        )
        self.record_json(event_type.name, subject, value, traceparent)

    def publish(self, event: CloudEvent, key: str | None = None) -> None:
        """Record an event to be published after commit, on the topic its type belongs to, in
        the flow in hand."""
        event = self._in_flow(event)
        self.record_json(event.type, key or event.subject, event.to_bytes(), event.traceparent)

    def record_json(self, event_type: str, key: str | None, value: bytes, traceparent: str | None) -> None:
        """The outbox row of an event already in its flow, as JSON: where emit and publish end
        (a unit of work that publishes nothing, the catalogue's rebuild, overrides it)."""
        headers = {"content-type": CONTENT_TYPE}
        if traceparent:  # also as a record header, where Kafka tooling looks for it
            headers["traceparent"] = traceparent
        self.add_outbox(BY_NAME[event_type].topic, key, value, headers, event_type)

    def add_outbox(
        self, topic: str, key: str | None, value: bytes | None, headers: dict[str, str], event_type: str
    ) -> None:
        self._outbox.append(
            {
                "topic": topic,
                "key": key,
                "value": value,
                "headers": headers,
                "event_type": event_type,
                "created_at": utcnow(),
            }
        )

    # flows ----------------------------------------------------------------------------
    def remember_flow(self, subject: str) -> None:
        """A new aggregate: keep the flow in hand (the request's or the consumed event's) as its
        flow, unless it has one already (a replay)."""
        flow = tracing.current_flow()
        if flow is None:
            return
        traceparent = tracing.current_traceparent()
        row = {
            "subject": subject,
            "correlation_id": flow.correlation_id,
            "traceparent": traceparent,
            "created_at": utcnow(),
        }
        if insert_new(self.conn, FLOWS, row):
            self._joined[subject] = (flow.correlation_id, traceparent)

    def remember_flows(self, causes: Sequence[tuple[str, CloudEvent]]) -> None:
        """remember_flow for aggregates made or acted on by a run of consumed events applied
        together, outside each event's own span: each `(subject, event)` gets the flow that the
        span the consumer applies the event in alone would have given it (tracing.span_of), and
        the events this unit of work records about the subject are made in that span. A subject
        with a flow already (a revision, a replay) keeps it in the store, as with remember_flow;
        the others are written in one insert."""
        if not causes:
            return
        now = utcnow()
        rows: dict[str, dict[str, Any]] = {}
        for subject, event in causes:
            flow = self._spans[subject] = (event.correlationid or event.id, tracing.span_of(event))
            rows.setdefault(
                subject, {"subject": subject, "correlation_id": flow[0], "traceparent": flow[1], "created_at": now}
            )
        for row in self._stored_flows(rows):
            del rows[row.subject]
        _insert_run(self.conn, FLOWS, list(rows.values()), "a flow of the run was remembered")

    def _stored_flows(self, subjects: Iterable[str]) -> Iterator[sa.Row[Any]]:
        """The flows the store has for `subjects` (asked 500 at a time)."""
        wanted = list(dict.fromkeys(subjects))
        for start in range(0, len(wanted), 500):
            yield from self.conn.execute(_FLOWS_OF, {"subjects": wanted[start : start + 500]})

    def join_flows(self, subjects: Iterable[str]) -> None:
        """join_flow for several subjects at once (a run of events applied together)."""
        for row in self._stored_flows(subjects):
            self._joined[row.subject] = (row.correlation_id, row.traceparent)

    def join_flow(self, subject: str) -> None:
        """What this unit of work records about `subject` from here on joins its remembered flow
        (when it has one): an evaluator's score, a manager's pilot start, a timer, a sensor's
        measurement act on a proposal whose flow began elsewhere."""
        row = self.conn.execute(_FLOW_OF, {"subject": subject}).first()
        if row is not None:
            self._joined[subject] = (row.correlation_id, row.traceparent)

    def _in_flow(self, event: CloudEvent) -> CloudEvent:
        """The event with the correlation id and trace context of the flow it belongs to: its
        subject's joined flow first; else the cause's (set by new_event), or the request's when
        no event caused it. Its parent span is the current one when that is in the event's
        trace (a consumer's span for the record that caused it), else a span made in the
        event's trace (tracing.continuing)."""
        correlation, traceparent = self._flow_of(
            event.subject, event.correlationid, event.traceparent, event.causationid is not None
        )
        if (correlation, traceparent) == (event.correlationid, event.traceparent):
            return event
        return event.model_copy(update={"correlationid": correlation, "traceparent": traceparent})

    def _flow_of(
        self, subject: str | None, correlation: str | None, traceparent: str | None, caused: bool
    ) -> tuple[str | None, str | None]:
        """The correlation id and traceparent of an event about `subject` that would carry
        `correlation` and `traceparent` (those of its cause, when `caused`): see _in_flow."""
        if self._spans and subject is not None:
            made = self._spans.get(subject)
            if made is not None:
                return made
        joined = self._joined.get(subject) if self._joined and subject is not None else None
        if joined is not None:
            correlation, traceparent = joined
        elif not caused:
            flow = tracing.current_flow()
            if flow is not None:
                correlation = flow.correlation_id
        traceparent = tracing.continuing(traceparent) if traceparent else tracing.current_traceparent()
        return correlation, traceparent

    # inbox ----------------------------------------------------------------------------
    def first_time(self, consumer: str, event: CloudEvent) -> bool:
        """Record that `consumer` applies `event`; False when it already did (a redelivery).

        Keyed on source + id, which is what makes a CloudEvent unique.
        """
        return self.first_time_key(consumer, f"{event.source}#{event.id}", event.type)

    def first_times(self, consumer: str, events: Sequence[CloudEvent]) -> list[bool]:
        """For a run of events applied together: whether each is new to `consumer` (not applied
        before, nor earlier in the run). Writes nothing; `applied(consumer, events)` then records
        the ones applied, in one statement. (Another instance applying the same events meanwhile
        makes that insert fail, and the caller's run with it.)"""
        keys = [f"{e.source}#{e.id}" for e in events]
        seen: set[str] = set()
        unique = list(dict.fromkeys(keys))
        dialect = self.conn.dialect.name
        seen.update(
            self.conn.execute(
                _APPLIED_BEFORE[dialect], {"consumer": consumer, "keys": as_list(dialect, unique)}
            ).scalars()
        )
        fresh = []
        for key in keys:
            fresh.append(key not in seen)
            seen.add(key)
        return fresh

    def applied(self, consumer: str, events: Sequence[CloudEvent]) -> None:
        """Record that `consumer` applied each of `events` (new to it: see first_times)."""
        if events:
            now = utcnow()
            rows = [
                {"consumer": consumer, "event_id": f"{e.source}#{e.id}", "event_type": e.type, "applied_at": now}
                for e in events
            ]
            # first_times found them new: another instance applied one meanwhile (a consumer
            # whose partitions moved while it worked).
            _insert_run(self.conn, INBOX, rows, f"{consumer}: an event of the run was applied")

    def first_time_key(self, consumer: str, key: str, kind: str) -> bool:
        """Record that `consumer` handled what `key` names; False when it already did."""
        row = {"consumer": consumer, "event_id": key, "event_type": kind, "applied_at": utcnow()}
        return insert_new(self.conn, INBOX, row)


def _insert_run(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], meanwhile: str) -> None:
    """insert_rows for rows a run found new: a primary key another instance wrote since (its
    own run of the same records) is a transient error, so the batch is retried and the retry
    finds them written."""
    try:
        insert_rows(conn, table, rows)
    except sa.exc.IntegrityError as exc:
        raise TransientError(f"{meanwhile} meanwhile ({exc.orig})") from exc


class Savepoint:
    """A savepoint of the connection's open transaction, by its SQL statements: what
    Connection.begin_nested() does, at a fifth of its cost (it is taken for every record a
    consumer applies). Release it with commit() or undo its work with rollback(), once."""

    _names = itertools.count()

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.name = f"kokeilu_{next(self._names)}"
        self.is_active = True
        conn.exec_driver_sql(f"SAVEPOINT {self.name}")

    def commit(self) -> None:
        self.is_active = False
        self.conn.exec_driver_sql(f"RELEASE SAVEPOINT {self.name}")

    def undo(self) -> None:
        """Undo the work done since the savepoint, and keep it (for more work, then commit() or
        rollback())."""
        self.conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {self.name}")

    def rollback(self) -> None:
        self.is_active = False
        self.conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {self.name}")
        self.conn.exec_driver_sql(f"RELEASE SAVEPOINT {self.name}")


def write_outbox(conn: sa.Connection, rows: list[OutboxRow]) -> None:
    """Write recorded outbox rows, in order, in one statement (ids follow the order given)."""
    insert_rows(conn, OUTBOX, rows)


# The inbox row, unless it is there already (one statement: checked and written at once).


_APPLIED_BEFORE = {
    dialect: sa.text(f"SELECT event_id FROM inbox WHERE consumer = :consumer AND {one_of(dialect, 'event_id', 'keys')}")
    for dialect in ("sqlite", "postgresql")
}


@functools.lru_cache(maxsize=8)
def _unsent(limit: int) -> sa.Select[Any]:
    """The relay's read, built once per limit: the oldest unsent rows, with what sending them
    takes (not their times, which it would convert for nothing)."""
    return (
        sa.select(OUTBOX.c.id, OUTBOX.c.topic, OUTBOX.c.key, OUTBOX.c.value, OUTBOX.c.headers, OUTBOX.c.event_type)
        .where(OUTBOX.c.sent_at.is_(None))
        .order_by(OUTBOX.c.id)
        .limit(limit)
    )


# Marks a relay batch sent: the ids as one list parameter (an expanding IN is rendered per call).
_MARK_SENT = {
    dialect: sa.text(f"UPDATE outbox SET sent_at = :now WHERE {one_of(dialect, 'id', 'ids')}").bindparams(
        sa.bindparam("now", type_=OUTBOX.c.sent_at.type)
    )
    for dialect in ("sqlite", "postgresql")
}


_FLOW_OF = sa.select(FLOWS.c.correlation_id, FLOWS.c.traceparent).where(FLOWS.c.subject == sa.bindparam("subject"))
_FLOWS_OF = sa.select(FLOWS.c.subject, FLOWS.c.correlation_id, FLOWS.c.traceparent).where(
    FLOWS.c.subject.in_(sa.bindparam("subjects", expanding=True))
)


class Letter(Protocol):
    """A record that replaces an outbox row the relay parks (kokeilu.kafka.deadletter.DeadLetter)."""

    @property
    def topic(self) -> str: ...
    @property
    def key(self) -> str | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def event_type(self) -> str: ...


@dataclass
class Relayed:
    """What one relay batch did: rows acknowledged by the brokers (in order), rows parked (with
    the dead letter that replaces each, or None), and the transient error that stopped it."""

    sent: list[int] = field(default_factory=list)
    parked: dict[int, Letter | None] = field(default_factory=dict)
    error: Exception | None = None


class OutboxReader:
    """What the relay needs of the outbox, in short transactions of their own."""

    def __init__(self, database: Database):
        self.database = database

    def relay(self, limit: int, publish: Callable[[list[sa.Row[Any]]], Relayed]) -> int:
        """Hand the oldest unsent rows to `publish`, then mark what it sent, and what it parked
        (recording the dead letter that replaces each), in one transaction. Raises the
        transient error that stopped `publish`, once that is done. Returns how many rows left
        the backlog.

        On PostgreSQL one relay at a time publishes a store's outbox: several instances of a
        service each run a relay, and the one that holds the lock reads, publishes and marks in
        one transaction while the others wait for it. Two relays publishing different batches at
        once could put a key's later events on the topic before its earlier ones (a batch
        published beside the one before it). Rows are read in id order, and one key's rows get
        their ids in the order of its changes: they are written when a transaction commits, and
        two transactions that change the same aggregate are serialised by its row lock.
        On SQLite a transaction holds the whole file, so it must not be held across network IO:
        the relay reads, publishes outside any transaction and then marks, and one relay at a
        time does the three, holding a file lock beside the store: instances on one host that
        share a SQLite store take turns as on PostgreSQL.
        """
        query = _unsent(limit)
        if self.database.is_sqlite:
            path = self.database.file
            with file_lock(path + ".relay.lock") if path else nullcontext():
                with self.database.transaction() as conn:
                    rows = list(conn.execute(query))
                if not rows:
                    return 0
                result = publish(rows)
                with self.database.transaction() as conn:
                    self._settle(conn, result)
        else:
            with self.database.transaction() as conn:
                hold(conn, "kokeilu.outbox-relay")
                rows = list(conn.execute(query))
                if not rows:
                    return 0
                result = publish(rows)
                self._settle(conn, result)
        if result.error is not None:
            raise result.error
        return len(result.sent) + len(result.parked)

    @staticmethod
    def _settle(conn: sa.Connection, result: Relayed) -> None:
        now = utcnow()
        done = result.sent + list(result.parked)
        if done:
            dialect = conn.dialect.name
            conn.execute(_MARK_SENT[dialect], {"now": now, "ids": as_list(dialect, done)})
        write_outbox(
            conn,
            [
                {
                    "topic": letter.topic,
                    "key": letter.key,
                    "value": letter.value,
                    "headers": letter.headers,
                    "event_type": letter.event_type,
                    "created_at": now,
                }
                for letter in filter(None, result.parked.values())
            ],
        )

    def backlog(self) -> int:
        with self.database.transaction() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(OUTBOX).where(OUTBOX.c.sent_at.is_(None))
                ).scalar_one()
            )

    def prune(self, older_than: timedelta) -> int:
        with self.database.transaction() as conn:
            return int(conn.execute(OUTBOX.delete().where(OUTBOX.c.sent_at < utcnow() - older_than)).rowcount)
