"""Dead letters keep the original headers; the dead-letter tool (kokeilu.deadletters) reads,
filters, plans and performs redrives as its contract says. With fakes for records and the
producer: the real broker is tests/integration/test_deadletter_redrive.py."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from kokeilu.config import Settings
from kokeilu.contracts import deadletter as contract
from kokeilu.contracts import topics
from kokeilu.deadletters import library
from kokeilu.deadletters.__main__ import build_parser, main, run
from kokeilu.deadletters.library import Filter, Letter, Redrive, ToolError
from kokeilu.kafka.deadletter import dead_letter, original_headers, redrive_of

CE = b"application/cloudevents+json"
PREFIX = "t1."
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


# -- the original headers a dead letter keeps ------------------------------------------------------
def test_a_dead_letter_keeps_the_original_headers_unchanged_beside_ours():
    letter = dead_letter(
        b"{}",
        b"pid",
        "failed",
        "boom",
        "proposals",
        original=[("content-type", CE), ("traceparent", b"00-4bf9-00f0-01")],
        topic="t1.kokeilu.evaluations.v1",
        partition=2,
        offset=7,
        consumer_group="g",
    )
    assert letter.headers["content-type"] == CE.decode()
    assert letter.headers["traceparent"] == "00-4bf9-00f0-01"
    assert letter.headers["kokeilu.service"] == "proposals" and contract.OMITTED not in letter.headers


def test_an_original_kokeilu_header_never_overwrites_ours_and_is_named_as_omitted():
    letter = dead_letter(
        b"{}",
        None,
        "failed",
        "boom",
        "proposals",
        original=[("kokeilu.service", b"spoofed"), ("kokeilu.reason", b"none"), ("kokeilu.redrive.of", b"0:1")],
        topic="kokeilu.intake.v1",
        partition=0,
        offset=1,
        consumer_group="g",
    )
    assert (letter.headers["kokeilu.service"], letter.headers["kokeilu.reason"]) == ("proposals", "failed")
    assert "kokeilu.redrive.of" not in letter.headers
    assert letter.headers[contract.OMITTED] == "kokeilu.service,kokeilu.reason,kokeilu.redrive.of"


@pytest.mark.parametrize(
    "name, value",
    [("binary", b"\xff\xfe"), ("nul", b"a\x00b"), ("long", b"x" * (contract.MAX_HEADER + 1)), ("null", None)],
)
def test_an_original_header_that_cannot_be_kept_exactly_is_left_out_and_named(name, value):
    kept, omitted = original_headers([("content-type", CE), (name, value)])
    assert kept == {"content-type": CE.decode()} and omitted == [name]


def test_a_repeated_name_keeps_its_first_value_and_the_headers_stay_bounded():
    kept, omitted = original_headers([("a", b"1"), ("a", b"2")])
    assert kept == {"a": "1"} and omitted == ["a"]
    many = [(f"h{i}", b"v") for i in range(contract.MAX_ORIGINAL_HEADERS + 5)]
    kept, omitted = original_headers(many)
    assert len(kept) == contract.MAX_ORIGINAL_HEADERS and len(omitted) == 5
    big = [(f"h{i}", b"v" * contract.MAX_HEADER) for i in range(40)]
    kept, _ = original_headers(big)
    assert sum(len(k) + len(v) for k, v in kept.items()) <= contract.MAX_ORIGINAL_HEADER_BYTES


def test_the_relay_gives_its_outbox_headers_as_a_mapping():
    letter = dead_letter(
        b"{}",
        "pid",
        "unpublishable",
        "too large",
        "evaluation",
        original={"content-type": CE.decode()},
        topic=topics.EVALUATIONS,
        outbox_id=3,
    )
    assert letter.headers["content-type"] == CE.decode()


def test_a_redriven_record_is_recognised_by_its_header():
    assert redrive_of([("content-type", CE), (contract.REDRIVE_OF, b"2:118")]) == "2:118"
    assert redrive_of([("content-type", CE)]) is None and redrive_of(None) is None


# -- reading dead letters --------------------------------------------------------------------------
@dataclass
class Record:
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list
    topic: str = PREFIX + topics.DEADLETTER


def consumer_letter(
    partition=0,
    offset=0,
    *,
    service="proposals",
    reason="failed",
    topic=topics.EVALUATIONS,
    source_partition=1,
    source_offset=10,
    value=b'{"id": "e1"}',
    key=b"pid",
    at=T0,
    original=(("content-type", CE), ("traceparent", b"00-aa-bb-01")),
) -> Letter:
    built = dead_letter(
        value,
        key,
        reason,
        "IllegalTransition: screening -> approved",
        service,
        original=list(original),
        topic=PREFIX + topic,
        partition=source_partition,
        offset=source_offset,
        consumer_group=f"{PREFIX}kokeilu.{service}",
    )
    return letter_of(built, partition, offset, at)


def relay_letter(partition=0, offset=0, *, value=b'{"id": "r1"}', topic=topics.RESULTS, outbox_id=5, at=T0) -> Letter:
    built = dead_letter(
        value,
        "rid",
        "unpublishable",
        "InvalidRecordError",
        "catalogue",
        original={"content-type": CE.decode()},
        topic=topic,
        outbox_id=outbox_id,
    )
    return letter_of(built, partition, offset, at)


def letter_of(built, partition, offset, at) -> Letter:
    record = Record(
        partition,
        offset,
        int(at.timestamp() * 1000),
        None if built.key is None else built.key.encode(),
        built.value,
        [(k, v.encode()) for k, v in built.headers.items()],
    )
    return Letter.from_record(record, PREFIX)


def test_a_consumers_dead_letter_names_its_source_by_logical_topic_and_goes_back_to_the_physical_one():
    letter = consumer_letter(3, 17)
    assert letter.id == "3:17" and letter.time == T0
    assert (letter.service, letter.reason) == ("proposals", "failed")
    assert letter.source == {"topic": topics.EVALUATIONS, "partition": 1, "offset": 10}
    assert letter.target_topic == PREFIX + topics.EVALUATIONS
    assert letter.original_headers == [("content-type", CE), ("traceparent", b"00-aa-bb-01")]


def test_an_unpublishable_dead_letter_names_its_topic_without_the_prefix_and_goes_back_under_it():
    letter = relay_letter()
    assert letter.source == {"topic": topics.RESULTS, "service": "catalogue", "outbox_id": 5}
    assert letter.target_topic == PREFIX + topics.RESULTS


def test_filters_take_service_reason_topic_time_and_ids():
    a = consumer_letter(0, 1, at=T0)
    b = consumer_letter(0, 2, service="catalogue", reason="invalid", topic=topics.PROPOSALS, at=T0 + timedelta(hours=2))
    c = relay_letter(1, 0, at=T0 + timedelta(hours=4))
    everything = [a, b, c]

    def ids(f: Filter):
        return [x.id for x in everything if f.matches(x)]

    assert ids(Filter()) == ["0:1", "0:2", "1:0"] and Filter().empty
    assert ids(Filter(services=frozenset({"catalogue"}))) == ["0:2", "1:0"]
    assert ids(Filter(reasons=frozenset({"unpublishable", "invalid"}))) == ["0:2", "1:0"]
    assert ids(Filter(topics=frozenset({topics.RESULTS}))) == ["1:0"]
    assert ids(Filter(topics=frozenset({PREFIX + topics.PROPOSALS}))) == ["0:2"]  # a physical name works too
    assert ids(Filter(since=T0 + timedelta(hours=1))) == ["0:2", "1:0"]
    assert ids(Filter(until=T0 + timedelta(hours=2))) == ["0:1"]
    assert ids(Filter(ids=frozenset({"1:0", "0:1"}), reasons=frozenset({"failed"}))) == ["0:1"]


def test_times_are_iso_or_a_time_ago_and_ids_partition_and_offset():
    assert library.parse_time("2026-11-28T10:00:00Z") == T0
    assert library.parse_time("2026-11-28T10:00:00") == T0  # no zone: UTC
    assert library.parse_time("2h", now=T0) == T0 - timedelta(hours=2)
    assert library.parse_time("7d", now=T0) == T0 - timedelta(days=7)
    assert library.parse_id("2:118") == (2, 118)
    for bad in ("yesterday", "2 h"):
        with pytest.raises(ToolError):
            library.parse_time(bad)
    for bad in ("2", "a:1", "1:-2"):
        with pytest.raises(ToolError):
            library.parse_id(bad)


# -- planning a redrive ----------------------------------------------------------------------------
def marker(letter: Letter, to_offset: int = 99) -> Redrive:
    return Redrive(
        letter.id,
        letter.source,
        {"topic": letter.target_topic, "partition": 1, "offset": to_offset},
        letter.service,
        letter.reason,
        "2026-11-28T11:00:00Z",
        "ops@host",
    )


def test_a_redrive_skips_what_cannot_or_need_not_be_sent_and_says_why():
    fine = consumer_letter(0, 1, source_offset=12)
    earlier = consumer_letter(0, 2, source_offset=11)
    truncated = letter_of(
        dead_letter(
            b"x" * 600_000,
            b"k",
            "unparseable",
            "too large",
            "proposals",
            topic=PREFIX + topics.INTAKE,
            partition=0,
            offset=4,
            consumer_group="g",
        ),
        0,
        3,
        T0,
    )
    empty = consumer_letter(0, 4, value=None, source_offset=20)
    done = consumer_letter(0, 5, source_offset=30)
    # The same source record, set aside by two consumer groups: sent once.
    twin_a = consumer_letter(1, 1, service="catalogue", topic=topics.PROPOSALS, source_offset=40)
    twin_b = consumer_letter(1, 2, service="evaluation", topic=topics.PROPOSALS, source_offset=40)
    # The source record of an earlier redrive, set aside by another group: not sent again.
    twin_done = consumer_letter(1, 3, service="notifications", topic=topics.EVALUATIONS, source_offset=30)
    stranger = consumer_letter(1, 4, topic=topics.DEADLETTER)

    steps = library.plan(
        [fine, earlier, truncated, empty, done, twin_a, twin_b, twin_done, stranger], {done.id: marker(done)}
    )
    why = {step.letter.id: step.skip for step in steps}
    sent = [step.letter.id for step in steps if not step.skip]
    assert sent == ["0:2", "0:1", "1:1"]  # in source order: offset 11 before 12
    assert "cut to its first 65536 bytes of 600000" in why["0:3"] and "partition 0 offset 4" in why["0:3"]
    assert why["0:4"].startswith("no value") and "offset 20" in why["0:4"]
    assert why["0:5"].startswith("already redriven at 2026-11-28T11:00:00Z")
    assert why["1:2"] == "its source record was already redriven, with dead letter 1:1"
    assert why["1:3"] == "its source record was already redriven, with dead letter 0:5"
    assert "not a topic a redrive may write" in why["1:4"]


def test_a_redriven_record_has_the_original_headers_and_names_its_dead_letter_and_no_other_of_ours():
    letter = letter_of(
        dead_letter(
            b"{}",
            b"pid",
            "failed",
            "x",
            "proposals",
            original=[("content-type", CE), ("kokeilu.error", b"spoofed")],
            topic=PREFIX + topics.EVALUATIONS,
            partition=0,
            offset=1,
            consumer_group="g",
        ),
        2,
        8,
        T0,
    )
    assert library.redrive_headers(letter) == [("content-type", CE), (contract.REDRIVE_OF, b"2:8")]


def test_the_latest_record_of_a_redrive_counts_and_a_tombstone_forgets_it():
    a, b = consumer_letter(0, 1), consumer_letter(0, 2)
    records = [
        Record(0, 0, 0, b"0:1", marker(a).to_bytes(), []),
        Record(0, 1, 0, b"0:2", marker(b).to_bytes(), []),
        Record(0, 2, 0, b"0:2", None, []),
    ]
    found = library.redrives_of(records)
    assert list(found) == ["0:1"] and found["0:1"].redriven_to["offset"] == 99


# -- performing a redrive --------------------------------------------------------------------------
class Future:
    def __init__(self, topic, partition, offset, error=None):
        self.topic, self.partition, self.offset, self.error = topic, partition, offset, error

    def get(self, timeout=None):
        if self.error:
            raise self.error
        return self


class FakeSender:
    def __init__(self, fail_topics=()):
        self.sent: list[tuple] = []
        self.fail_topics = fail_topics
        self.flushed = 0

    def send(self, topic, key, value, headers):
        self.sent.append((topic, key, value, headers))
        error = TimeoutError("no ack") if topic in self.fail_topics else None
        return Future(topic, 0, len(self.sent) - 1, error)

    def flush(self):
        self.flushed += 1


SETTINGS = Settings(kokeilu_topic_prefix=PREFIX)


def test_a_dry_run_sends_and_records_nothing():
    sender = FakeSender()
    report = library.redrive(library.plan([consumer_letter()], {}), SETTINGS, sender, dry_run=True)
    assert sender.sent == [] and [x.id for x, _ in report.redriven] == ["0:0"]
    assert report.lines()[-1] == "dry run: 1 would redrive (by reason: failed 1), 0 skipped, 0 failed"


def test_a_redrive_sends_the_original_then_records_it_under_the_dead_letters_id():
    letter = consumer_letter(2, 5)
    sender = FakeSender()
    report = library.redrive(library.plan([letter], {}), SETTINGS, sender, by="ops@host")
    (topic, key, value, headers), (mark_topic, mark_key, mark_value, _) = sender.sent
    assert (topic, key, value) == (PREFIX + topics.EVALUATIONS, b"pid", b'{"id": "e1"}')
    assert headers == [("content-type", CE), ("traceparent", b"00-aa-bb-01"), (contract.REDRIVE_OF, b"2:5")]
    assert (mark_topic, mark_key) == (PREFIX + topics.REDRIVES, b"2:5")
    recorded = json.loads(mark_value)
    assert set(recorded) == set(contract.REDRIVE_RECORD)
    assert recorded["redriven_to"] == {"topic": PREFIX + topics.EVALUATIONS, "partition": 0, "offset": 0}
    assert recorded["source"] == {"topic": topics.EVALUATIONS, "partition": 1, "offset": 10}
    assert recorded["by"] == "ops@host" and not report.failed and not report.unrecorded
    # Read back, it stops the same dead letter from going again.
    again = library.plan([letter], library.redrives_of([Record(0, 0, 0, mark_key, mark_value, [])]))
    assert again[0].skip.startswith("already redriven")


def test_a_record_the_brokers_do_not_acknowledge_is_reported_and_not_recorded_as_redriven():
    sender = FakeSender(fail_topics={PREFIX + topics.EVALUATIONS})
    report = library.redrive(library.plan([consumer_letter(), relay_letter(1, 0)], {}), SETTINGS, sender)
    assert [x.id for x, _ in report.failed] == ["0:0"] and [x.id for x, _ in report.redriven] == ["1:0"]
    assert [s[1] for s in sender.sent if s[0] == PREFIX + topics.REDRIVES] == [b"1:0"]

    unrecorded = library.redrive(
        library.plan([consumer_letter()], {}), SETTINGS, FakeSender(fail_topics={PREFIX + topics.REDRIVES})
    )
    assert [x.id for x, _ in unrecorded.redriven] == ["0:0"] and [x.id for x, _ in unrecorded.unrecorded] == ["0:0"]
    assert "redriven but not recorded" in unrecorded.lines()[-1]


# -- the command line -------------------------------------------------------------------------------
def test_redrive_without_ids_filters_or_all_is_refused_before_touching_the_brokers(capsys):
    assert main(["redrive"]) == 2
    assert "redrive what?" in capsys.readouterr().err
    assert main(["show", "nonsense"]) == 2
    assert "expected <partition>:<offset>" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["list", "--reason", "made-up"])


def test_list_prints_a_table_or_json_of_what_matches(monkeypatch):
    a, b = consumer_letter(0, 1, at=T0), relay_letter(1, 0, at=T0 + timedelta(minutes=5))
    monkeypatch.setattr(library, "letters", lambda settings: [b, a])
    monkeypatch.setattr(library, "redrives", lambda settings: {a.id: marker(a)})
    out = io.StringIO()
    assert run(build_parser().parse_args(["list"]), SETTINGS, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:4] == ["ID", "TIME", "(UTC)", "SERVICE"]
    assert lines[1].startswith("0:1 ") and " yes " in lines[1] and "kokeilu.evaluations.v1[1]@10" in lines[1]
    assert lines[2].startswith("1:0 ") and "kokeilu.results.v1 outbox#5" in lines[2]
    assert lines[-1] == "2 dead letters"

    out = io.StringIO()
    assert run(build_parser().parse_args(["list", "--json", "--reason", "unpublishable"]), SETTINGS, out) == 0
    [only] = json.loads(out.getvalue())
    assert (only["id"], only["source_topic"], only["redriven"]) == ("1:0", topics.RESULTS, None)
    assert only["original_headers"] == {"content-type": CE.decode()}

    out = io.StringIO()
    assert run(build_parser().parse_args(["list", "--limit", "1"]), SETTINGS, out) == 0
    assert out.getvalue().splitlines()[1].startswith("1:0 ")  # the newest


def test_naming_a_dead_letter_that_is_not_there_is_an_error(monkeypatch):
    monkeypatch.setattr(library, "letters", lambda settings: [consumer_letter(0, 1)])
    monkeypatch.setattr(library, "redrives", lambda settings: {})
    with pytest.raises(ToolError, match="no dead letter 0:7"):
        run(build_parser().parse_args(["redrive", "0:7", "--dry-run"]), SETTINGS, io.StringIO())
