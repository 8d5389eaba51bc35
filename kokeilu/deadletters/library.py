"""Dead letters as an operator sees them: read, filter, show, and plan and perform a redrive.

Pure parts (Letter, Filter, plan, formatting) take records as kafka-python returns them and are
unit-tested with fakes; the parts that talk to the brokers (read_topic, letters, Sender,
redrive) take the settings of kokeilu.config (KAFKA_BOOTSTRAP_SERVERS, KAFKA_SASL_*,
KOKEILU_TOPIC_PREFIX). The CLI is kokeilu/deadletters/__main__.py.

A dead letter's id is `<partition>:<offset>` on the dead-letter topic. Redriving one produces
its value, with its key and its original headers (none of the `kokeilu.*` ones) plus
`kokeilu.redrive.of: <id>`, to the topic it came from, with an idempotent producer (acks=all),
and then records the redrive on the compacted topic kokeilu.deadletter-redrives.v1 (key: the
id). A dead letter recorded there is not redriven again, nor is another dead letter of the same
source record (several consumer groups may have set one record aside). The record is sent
before the redrive is recorded: a tool stopped in between leaves a record sent and not
recorded, which the next redrive sends again; the consumers' inboxes (source + id) then drop
the second copy of the event, so it is applied once.
"""

from __future__ import annotations

import base64
import getpass
import json
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Protocol

from kokeilu.config import Settings
from kokeilu.contracts import deadletter as contract
from kokeilu.contracts import flows, topics

REDRIVABLE_TOPICS = flows.REDRIVE_TARGETS
ID = re.compile(r"^([0-9]+):([0-9]+)$")
RELATIVE = re.compile(r"^([0-9]+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class ToolError(Exception):
    """Something the operator must fix (a bad argument, a missing topic): said, not traced."""


def parse_id(text: str) -> tuple[int, int]:
    match = ID.match(text.strip())
    if not match:
        raise ToolError(f"dead letter id {text!r}: expected <partition>:<offset>, e.g. 2:118")
    return int(match.group(1)), int(match.group(2))


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC when it names no zone), or a time ago: 30m, 2h, 7d."""
    match = RELATIVE.match(text.strip())
    if match:
        return (now or datetime.now(UTC)) - timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ToolError(
            f"time {text!r}: expected ISO 8601 (2026-11-28T10:00:00Z) or a time ago (30m, 2h, 7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# A record as kafka-python gives it (its ConsumerRecord: untyped).
Record = Any


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


@dataclass(frozen=True)
class Letter:
    """One record of the dead-letter topic."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    prefix: str = ""  # KOKEILU_TOPIC_PREFIX of the topics it names

    @classmethod
    def from_record(cls, record: Record, prefix: str = "") -> Letter:
        return cls(
            record.partition,
            record.offset,
            record.timestamp,
            record.key,
            record.value,
            tuple((name, value if value is not None else b"") for name, value in record.headers or ()),
            prefix,
        )

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @cached_property
    def meta(self) -> dict[str, str]:
        """The platform's headers (kokeilu.*), as text."""
        return {
            name: value.decode("utf-8", "replace")
            for name, value in self.headers
            if name.startswith(contract.NAMESPACE)
        }

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        """The original record's headers, as the dead letter kept them."""
        return [(name, value) for name, value in self.headers if not name.startswith(contract.NAMESPACE)]

    def _get(self, name: str) -> str | None:
        return self.meta.get(name)

    @property
    def service(self) -> str:
        return self._get("kokeilu.service") or "?"

    @property
    def reason(self) -> str:
        return self._get("kokeilu.reason") or "?"

    @property
    def error(self) -> str:
        return self._get("kokeilu.error") or ""

    @property
    def unpublishable(self) -> bool:
        return self.reason == "unpublishable"

    @property
    def source_topic(self) -> str:
        """The source topic's logical name (without KOKEILU_TOPIC_PREFIX). A consumer's dead letter
        names the physical topic it read; the relay's (unpublishable) the logical one it meant."""
        named = self._get("kokeilu.source.topic") or ""
        return named if self.unpublishable else named.removeprefix(self.prefix)

    @property
    def target_topic(self) -> str:
        """The physical topic a redrive produces to."""
        return self.prefix + self.source_topic

    def _int(self, name: str) -> int | None:
        text = self._get(name)
        return int(text) if text is not None and text.isdigit() else None

    @property
    def source_partition(self) -> int | None:
        return self._int("kokeilu.source.partition")

    @property
    def source_offset(self) -> int | None:
        return self._int("kokeilu.source.offset")

    @property
    def truncated(self) -> int | None:
        return self._int("kokeilu.value.truncated")

    @property
    def source(self) -> dict[str, Any]:
        """Where the original was, as a redrive record says it."""
        if self.unpublishable:
            return {"topic": self.source_topic, "service": self.service, "outbox_id": self._int("kokeilu.outbox.id")}
        return {"topic": self.source_topic, "partition": self.source_partition, "offset": self.source_offset}

    @property
    def source_identity(self) -> str:
        """One string per original record, whichever consumer group set it aside."""
        s = self.source
        if self.unpublishable:
            return f"{s['topic']} outbox {s['service']}#{s['outbox_id']}"
        return f"{s['topic']}[{s['partition']}]@{s['offset']}"

    def describe_source(self) -> str:
        s = self.source
        if self.unpublishable:
            return f"{s['topic']} (meant for; outbox row {s['outbox_id']} of {s['service']})"
        return f"{s['topic']} partition {s['partition']} offset {s['offset']}"


@dataclass(frozen=True)
class Filter:
    """Which dead letters a command takes; an empty criterion takes every letter."""

    services: frozenset[str] = frozenset()
    reasons: frozenset[str] = frozenset()
    topics: frozenset[str] = frozenset()  # logical names; a physical one is taken as its logical
    since: datetime | None = None
    until: datetime | None = None
    ids: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.services or self.reasons or self.topics or self.since or self.until or self.ids)

    def matches(self, letter: Letter) -> bool:
        return (
            (not self.ids or letter.id in self.ids)
            and (not self.services or letter.service in self.services)
            and (not self.reasons or letter.reason in self.reasons)
            and (not self.topics or letter.source_topic in {t.removeprefix(letter.prefix) for t in self.topics})
            and (self.since is None or letter.time >= self.since)
            and (self.until is None or letter.time < self.until)
        )


# -- redrives -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Redrive:
    """The record of one redrive, on kokeilu.deadletter-redrives.v1 (contract.REDRIVE_RECORD)."""

    deadletter: str
    source: dict[str, Any]
    redriven_to: dict[str, Any]
    service: str
    reason: str
    at: str
    by: str

    def to_bytes(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Redrive:
        body = json.loads(raw)
        return cls(**{name: body.get(name) for name in cls.__dataclass_fields__})

    @property
    def source_identity(self) -> str:
        s = self.source or {}
        if "outbox_id" in s:
            return f"{s.get('topic')} outbox {s.get('service')}#{s.get('outbox_id')}"
        return f"{s.get('topic')}[{s.get('partition')}]@{s.get('offset')}"


def redrives_of(records: Iterable[Record]) -> dict[str, Redrive]:
    """The redrives recorded, by dead letter id: the latest record of each key; a tombstone (or a
    record that is not one of ours) forgets that id."""
    found: dict[str, Redrive] = {}
    for record in records:
        key = _text(record.key)
        if key is None:
            continue
        try:
            found[key] = Redrive.from_bytes(record.value)
        except (TypeError, ValueError):
            found.pop(key, None)
    return found


@dataclass(frozen=True)
class Step:
    """What a redrive does with one dead letter: sends it, or skips it and says why."""

    letter: Letter
    skip: str | None = None


def skip_reason(letter: Letter) -> str | None:
    """Why a dead letter can never be redriven from the dead-letter topic itself, if it cannot."""
    if letter.source_topic not in REDRIVABLE_TOPICS:
        return f"source topic {letter.source_topic!r} is not a topic a redrive may write"
    if letter.value is None:
        return (
            "no value (stored without it, or the original was a tombstone); the original is on "
            + letter.describe_source()
        )
    if letter.truncated is not None and letter.unpublishable:
        return (
            f"value cut to its first {len(letter.value)} bytes of {letter.truncated}; the whole event was outbox "
            f"row {letter.source['outbox_id']} of {letter.service} (deleted a day after it was parked), larger "
            "than the brokers accept: it cannot be redriven (a defect to report)"
        )
    if letter.truncated is not None:
        return (
            f"value cut to its first {len(letter.value)} bytes of {letter.truncated}: the whole record is on "
            + letter.describe_source()
            + " while that topic keeps it"
        )
    if not letter.unpublishable and (letter.source_partition is None or letter.source_offset is None):
        return "no source partition and offset: not a dead letter this tool knows"
    return None


def plan(letters: Iterable[Letter], redrives: dict[str, Redrive]) -> list[Step]:
    """A redrive's steps, in the order of the source records (so one partition's records go back in
    their order). A dead letter redriven before is skipped, and so is a second dead letter of one
    source record (several consumer groups may set one record aside): it is sent once."""
    sent_sources = {r.source_identity: r.deadletter for r in redrives.values()}
    steps = []
    for letter in sorted(letters, key=_source_order):
        done = redrives.get(letter.id)
        if done is not None:
            steps.append(Step(letter, f"already redriven at {done.at} to {_where(done.redriven_to)}"))
            continue
        why = skip_reason(letter)
        if why is None and letter.source_identity in sent_sources:
            why = f"its source record was already redriven, with dead letter {sent_sources[letter.source_identity]}"
        if why is None:
            sent_sources[letter.source_identity] = letter.id
        steps.append(Step(letter, why))
    return steps


def _source_order(letter: Letter) -> tuple[Any, ...]:
    s = letter.source
    return (
        s["topic"],
        s.get("partition") if s.get("partition") is not None else -1,
        s.get("offset") if "offset" in s else (s.get("outbox_id") or 0),
        letter.time,
        letter.partition,
        letter.offset,
    )


def _where(to: dict[str, Any] | None) -> str:
    to = to or {}
    return f"{to.get('topic')}[{to.get('partition')}]@{to.get('offset')}"


def redrive_headers(letter: Letter) -> list[tuple[str, bytes]]:
    """The original headers, and the one naming the dead letter."""
    return letter.original_headers + [(contract.REDRIVE_OF, letter.id.encode())]


def operator(settings: Settings) -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a bare container: say so rather than fail
        user = "unknown"
    who = f"{user}@{socket.gethostname()}"
    return who + (f" as {settings.kafka_sasl_username}" if settings.kafka_sasl_username else "")


# -- formatting ------------------------------------------------------------------------------
def summary(letter: Letter, redrives: dict[str, Redrive]) -> dict[str, Any]:
    done = redrives.get(letter.id)
    return {
        "id": letter.id,
        "time": letter.time.isoformat().replace("+00:00", "Z"),
        "service": letter.service,
        "reason": letter.reason,
        "source_topic": letter.source_topic,
        "source": letter.source,
        "consumer_group": letter.meta.get("kokeilu.consumer.group"),
        "key": _text(letter.key),
        "error": letter.error,
        "value_bytes": None if letter.value is None else len(letter.value),
        "value_truncated_from": letter.truncated,
        "original_headers": {name: _text(value) for name, value in letter.original_headers},
        "redriven": None if done is None else {"at": done.at, "to": done.redriven_to, "by": done.by},
    }


def detail(letter: Letter, redrives: dict[str, Redrive]) -> dict[str, Any]:
    out = summary(letter, redrives)
    out["headers"] = [[name, _text(value)] for name, value in letter.headers]
    if letter.value is None:
        out["value"] = None
    else:
        try:
            out["value"] = letter.value.decode("utf-8")
        except UnicodeDecodeError:
            out["value_base64"] = base64.b64encode(letter.value).decode()
    return out


def _cut(text: str | None, width: int) -> str:
    text = (text or "-").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def table(letters: Iterable[Letter], redrives: dict[str, Redrive]) -> str:
    rows = [("ID", "TIME (UTC)", "SERVICE", "REASON", "SOURCE", "KEY", "REDRIVEN", "ERROR")]
    for letter in letters:
        s = letter.source
        where = (
            f"{s['topic']} outbox#{s['outbox_id']}"
            if letter.unpublishable
            else f"{s['topic']}[{s['partition']}]@{s['offset']}"
        )
        done = redrives.get(letter.id)
        rows.append(
            (
                letter.id,
                letter.time.strftime("%Y-%m-%d %H:%M:%S"),
                letter.service,
                letter.reason,
                where,
                _cut(_text(letter.key), 38),
                "yes" if done else "-",
                _cut(letter.error, 70),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows
    )


def show_text(letter: Letter, redrives: dict[str, Redrive]) -> str:
    d = detail(letter, redrives)
    lines = [
        f"dead letter {letter.id}  {d['time']}",
        f"  service {letter.service}, reason {letter.reason}",
        f"  source  {letter.describe_source()}",
        f"  key     {d['key'] if d['key'] is not None else '(none)'}",
    ]
    if d["redriven"]:
        lines.append(f"  redriven at {d['redriven']['at']} to {_where(d['redriven']['to'])} by {d['redriven']['by']}")
    why = skip_reason(letter)
    if why:
        lines.append(f"  cannot be redriven: {why}")
    lines.append("  headers")
    lines.extend(f"    {name}: {value}" for name, value in d["headers"])
    if letter.value is None:
        lines.append("  value   (none)")
    elif "value" in d:
        lines.append(f"  value   ({len(letter.value)} bytes)")
        lines.append(d["value"])
    else:
        lines.append(f"  value   ({len(letter.value)} bytes, not UTF-8; base64)")
        lines.append(d["value_base64"])
    return "\n".join(lines)


# -- the brokers -----------------------------------------------------------------------------
def _consumer(settings: Settings) -> Any:  # a kafka-python KafkaConsumer (untyped)
    from kafka import KafkaConsumer

    return KafkaConsumer(
        **settings.kafka_client_options(),
        group_id=None,
        enable_auto_commit=False,
        client_id="kokeilu-deadletters",
        allow_auto_create_topics=False,
    )


def read_topic(settings: Settings, physical: str, timeout: float = 60) -> list[Record] | None:
    """Every record of `physical` from its beginning to its end as of now, without a consumer
    group (assign and seek); None when there is no such topic."""
    from kafka import TopicPartition

    consumer = _consumer(settings)
    try:
        partitions = consumer.partitions_for_topic(physical)
        if not partitions:
            return None
        parts = [TopicPartition(physical, p) for p in sorted(partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        found: list[Record] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise ToolError(f"could not read {physical} to its end in {timeout:.0f} s")
            for tp, records in consumer.poll(timeout_ms=500).items():
                found.extend(r for r in records if r.offset < end[tp])
        return found
    finally:
        consumer.close()


def read_one(settings: Settings, physical: str, partition: int, offset: int, timeout: float = 30) -> Record:
    from kafka import TopicPartition

    consumer = _consumer(settings)
    try:
        partitions = consumer.partitions_for_topic(physical)
        if not partitions:
            raise ToolError(f"no topic {physical} (is KOKEILU_TOPIC_PREFIX right?)")
        tp = TopicPartition(physical, partition)
        if partition not in partitions:
            raise ToolError(
                f"no dead letter {partition}:{offset}: {physical} has partitions "
                f"{', '.join(map(str, sorted(partitions)))}"
            )
        consumer.assign([tp])
        first, end = consumer.beginning_offsets([tp])[tp], consumer.end_offsets([tp])[tp]
        if not first <= offset < end:
            raise ToolError(
                f"no dead letter {partition}:{offset}: partition {partition} holds offsets "
                + (f"{first} to {end - 1}" if end > first else "none")
            )
        consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.offset == offset:
                        return record
                    if record.offset > offset:  # gone (a compacted or transactional gap)
                        raise ToolError(f"no dead letter {partition}:{offset}")
        raise ToolError(f"could not read dead letter {partition}:{offset} in {timeout:.0f} s")
    finally:
        consumer.close()


def letters(settings: Settings) -> list[Letter]:
    physical = settings.physical_topic(topics.DEADLETTER)
    records = read_topic(settings, physical)
    if records is None:
        raise ToolError(f"no topic {physical} (is KOKEILU_TOPIC_PREFIX right? is KAFKA_BOOTSTRAP_SERVERS?)")
    return [Letter.from_record(r, settings.kokeilu_topic_prefix) for r in records]


def letter(settings: Settings, letter_id: str) -> Letter:
    partition, offset = parse_id(letter_id)
    record = read_one(settings, settings.physical_topic(topics.DEADLETTER), partition, offset)
    return Letter.from_record(record, settings.kokeilu_topic_prefix)


def redrives(settings: Settings) -> dict[str, Redrive]:
    """The redrives recorded (none when their topic does not exist yet)."""
    return redrives_of(read_topic(settings, settings.physical_topic(topics.REDRIVES)) or [])


class RecordSender(Protocol):
    """What a redrive sends with: Sender, or a test's fake."""

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> Any: ...

    def flush(self) -> None: ...


class Sender:
    """An idempotent producer (acks=all), as the services' relays use."""

    def __init__(self, settings: Settings):
        from kokeilu.kafka.relay import make_producer

        self.producer = make_producer(settings, "kokeilu-deadletters")

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> Any:
        """The record's future (kafka-python's FutureRecordMetadata)."""
        return self.producer.send(topic, key=key, value=value, headers=headers)

    def flush(self) -> None:
        self.producer.flush(timeout=60)

    def close(self) -> None:
        self.producer.close(timeout=10)


@dataclass
class Report:
    dry_run: bool = False
    redriven: list[tuple[Letter, dict[str, Any]]] = field(default_factory=list)
    skipped: list[tuple[Letter, str]] = field(default_factory=list)
    failed: list[tuple[Letter, str]] = field(default_factory=list)
    # Redriven, but the record of it could not be written: a later redrive sends it again.
    unrecorded: list[tuple[Letter, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        verb = "would redrive" if self.dry_run else "redriven"
        out = [
            f"{verb} {letter.id} ({letter.service}, {letter.reason}) to {to['topic']}"
            + (f"[{to['partition']}]@{to['offset']}" if "offset" in to else "")
            for letter, to in self.redriven
        ]
        out += [f"skipped {letter.id}: {why}" for letter, why in self.skipped]
        out += [f"FAILED {letter.id}: {why}" for letter, why in self.failed]
        out += [f"NOT RECORDED {letter.id}: {why}" for letter, why in self.unrecorded]
        reasons: dict[str, int] = {}
        for letter, _ in self.redriven:
            reasons[letter.reason] = reasons.get(letter.reason, 0) + 1
        by_reason = "by reason: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
        out.append(
            f"{'dry run: ' if self.dry_run else ''}{len(self.redriven)} {verb}"
            + (f" ({by_reason})" if reasons else "")
            + f", {len(self.skipped)} skipped, {len(self.failed)} failed"
            + (f", {len(self.unrecorded)} redriven but not recorded" if self.unrecorded else "")
        )
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "redriven": [{"id": letter.id, "to": to} for letter, to in self.redriven],
            "skipped": [{"id": letter.id, "why": why} for letter, why in self.skipped],
            "failed": [{"id": letter.id, "error": why} for letter, why in self.failed],
            "unrecorded": [{"id": letter.id, "error": why} for letter, why in self.unrecorded],
        }


def redrive(
    steps: list[Step],
    settings: Settings,
    sender: RecordSender | None = None,
    dry_run: bool = False,
    by: str = "",
    timeout: float = 60,
) -> Report:
    """Perform `steps`: send each record, then record each one the brokers acknowledged."""
    report = Report(dry_run=dry_run)
    report.skipped = [(step.letter, step.skip) for step in steps if step.skip]
    todo = [step.letter for step in steps if not step.skip]
    if dry_run or not todo:
        report.redriven = [(letter, {"topic": letter.target_topic}) for letter in todo] if dry_run else []
        return report
    if sender is None:
        raise ValueError("a redrive that sends records needs a sender")
    sent = [
        (letter, sender.send(letter.target_topic, letter.key, letter.value, redrive_headers(letter))) for letter in todo
    ]
    sender.flush()
    marks: list[tuple[Letter, Any]] = []
    redrives_topic = settings.physical_topic(topics.REDRIVES)
    for letter, future in sent:
        try:
            meta = future.get(timeout=timeout)
        except Exception as exc:  # each record's own outcome; the others go on
            report.failed.append((letter, f"{exc.__class__.__name__}: {exc}"))
            continue
        to = {"topic": meta.topic, "partition": meta.partition, "offset": meta.offset}
        report.redriven.append((letter, to))
        record = Redrive(
            letter.id,
            letter.source,
            to,
            letter.service,
            letter.reason,
            datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            by,
        )
        marks.append(
            (
                letter,
                sender.send(
                    redrives_topic, letter.id.encode(), record.to_bytes(), [("content-type", b"application/json")]
                ),
            )
        )
    sender.flush()
    for letter, future in marks:
        try:
            future.get(timeout=timeout)
        except Exception as exc:
            report.unrecorded.append(
                (
                    letter,
                    f"{exc.__class__.__name__}: {exc}; a later redrive sends it again "
                    "(the consumers' inboxes drop the copy of an event applied)",
                )
            )
    return report


def ensure_redrives_topic(settings: Settings) -> None:
    from kokeilu.kafka.topics import ensure_topics, topic_specs

    name = settings.physical_topic(topics.REDRIVES)
    ensure_topics(settings, {name: topic_specs(settings)[name]}, deadline_seconds=30)
