"""schemas/asyncapi.json: the official parser (@asyncapi/parser, tools/asyncapi/) accepts it, and it
says what the platform does: servers, who sends and who receives each topic, each message's key,
the dead letter's headers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings

import pytest
from jsonschema import Draft7Validator

from kokeilu.contracts import catalog as types
from kokeilu.contracts import deadletter as contract
from kokeilu.contracts import flows, topics
from kokeilu.contracts.asyncapi import channel_name, message_name
from kokeilu.contracts.schemas import SCHEMA_DIR
from kokeilu.kafka.deadletter import dead_letter
from tests.support import ROOT

TOOL = ROOT / "tools" / "asyncapi"
DOCUMENT = SCHEMA_DIR / "asyncapi.json"


def parse(path) -> dict:
    """The parser's diagnostics of the document at `path`, as validate.js prints them."""
    if not (TOOL / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail("the AsyncAPI parser is not installed: run `make install` (npm ci in tools/asyncapi)")
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "Node.js is needed to run the AsyncAPI parser (.ci/run installs it)"
    out = subprocess.run(
        [node, str(TOOL / "validate.js"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_UPDATE_NOTIFIER": "1"},
    )
    assert out.returncode in (0, 1), out.stderr or out.stdout
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(DOCUMENT.read_text())


def test_the_official_parser_accepts_the_checked_in_document():
    result = parse(DOCUMENT)
    for level in ("warnings", "infos"):
        for d in result[level]:
            warnings.warn(
                f"AsyncAPI parser {level[:-1]} {d['code']} at {d['path']}: {d['message']}", UserWarning, stacklevel=1
            )
    assert result["parsed"], result["errors"]
    assert result["errors"] == [], json.dumps(result["errors"], indent=2)
    assert result["asyncapi"] == "3.0.0"


def test_the_parser_reports_a_broken_document(tmp_path, document):
    """The check can fail: an operation on a channel that does not exist is an error."""
    broken = json.loads(json.dumps(document))
    broken["operations"]["send_kokeilu_results_v1"]["channel"] = {"$ref": "#/channels/nowhere"}
    (tmp_path / "asyncapi.json").write_text(json.dumps(broken))
    (tmp_path / "events").symlink_to(SCHEMA_DIR / "events")
    result = parse(tmp_path / "asyncapi.json")
    assert result["errors"], result


def test_the_servers_are_the_local_broker_and_the_secured_cluster(document):
    local, production = document["servers"]["local"], document["servers"]["production"]
    assert (local["host"], local["protocol"]) == ("127.0.0.1:9092", "kafka")
    assert "security" not in local
    assert production["protocol"] == "kafka-secure"
    [scheme_ref] = production["security"]
    scheme = document["components"]["securitySchemes"][scheme_ref["$ref"].rsplit("/", 1)[-1]]
    assert scheme["type"] == "scramSha512"


@pytest.mark.parametrize("topic", topics.ALL)
def test_each_topic_is_sent_by_the_platform_if_a_service_publishes_it_and_received_if_one_consumes_it(document, topic):
    name = channel_name(topic)
    assert document["channels"][name]["address"] == topic
    ops = {op["action"] for op in document["operations"].values() if op["channel"]["$ref"] == f"#/channels/{name}"}
    assert ops == ({"send"} if flows.publishers(topic) else set()) | ({"receive"} if flows.consumers(topic) else set())
    assert ops, f"the platform neither sends nor receives {topic}?"


def test_intake_is_only_received_and_notifications_and_dead_letters_only_sent(document):
    actions = {(op["channel"]["$ref"].rsplit("/", 1)[-1], op["action"]) for op in document["operations"].values()}
    assert (channel_name(topics.INTAKE), "send") not in actions
    assert (channel_name(topics.NOTIFICATIONS), "receive") not in actions
    assert (channel_name(topics.DEADLETTER), "send") in actions
    assert (channel_name(topics.DEADLETTER), "receive") not in actions


def test_every_channel_describes_its_messages_and_every_operation_lists_them(document):
    for topic in topics.ALL:
        messages = document["channels"][channel_name(topic)]["messages"]
        expected = {message_name(t) for t in types.ALL if t.topic == topic} or {"dead_letter"}
        assert set(messages) == expected
    for op in document["operations"].values():
        channel = op["channel"]["$ref"]
        assert {m["$ref"] for m in op["messages"]} == {
            f"{channel}/messages/{m}" for m in document["channels"][channel.rsplit("/", 1)[-1]]["messages"]
        }


def key_of(document, event_type) -> str:
    return document["components"]["messages"][message_name(event_type)]["bindings"]["kafka"]["key"]["description"]


def test_each_message_key_says_what_the_code_keys_it_by(document):
    for t in (types.DELIVERY_SUCCEEDED, types.DELIVERY_FAILED):
        assert "subscription id" in key_of(document, t) and "proposer:<proposal id>" in key_of(document, t)
        assert "the proposal id" not in key_of(document, t)
    assert "refused intake event" in key_of(document, types.PROPOSAL_INTAKE_REJECTED)
    for t in (types.RESULT_PUBLISHED, types.RESULT_UPDATED, types.RESULT_WITHDRAWN):
        assert "the result id" in key_of(document, t)
    for t in types.ALL:
        if t.topic in (topics.PROPOSALS, topics.EVALUATIONS) and t is not types.PROPOSAL_INTAKE_REJECTED:
            assert key_of(document, t).startswith("The event's `subject`, i.e. the proposal id."), t.name


def test_platform_events_say_their_cloudevents_content_type_header(document):
    for t in types.ALL:
        message = document["components"]["messages"][message_name(t)]
        assert message["headers"]["properties"]["content-type"]["const"] == "application/cloudevents+json"
        assert ("content-type" in message["headers"].get("required", ())) == (t.topic != topics.INTAKE)


@pytest.fixture(scope="module")
def dead_letter_headers(document):
    return Draft7Validator(document["components"]["messages"]["dead_letter"]["headers"])


@pytest.mark.parametrize(
    "letter",
    [
        dead_letter(
            b'{"not": "an event"}',
            b"k-1",
            "invalid",
            "not a valid CloudEvent",
            "proposals",
            topic=topics.INTAKE,
            partition=3,
            offset=1187,
            consumer_group="kokeilu.proposals",
        ),
        dead_letter(
            b"x" * 600_000,
            None,
            "unparseable",
            "too large",
            "catalogue",
            topic=topics.PROPOSALS,
            partition=0,
            offset=9,
            consumer_group="p.kokeilu.catalogue",
        ),
        dead_letter(
            b"{}",
            "pid",
            "unpublishable",
            "MessageSizeTooLargeError",
            "evaluation",
            original={"content-type": "application/cloudevents+json"},
            topic=topics.EVALUATIONS,
            outbox_id=42,
        ),
        dead_letter(
            b"{}",
            "k",
            "failed",
            "IllegalTransition",
            "proposals",
            original=[
                ("content-type", b"application/cloudevents+json"),
                ("traceparent", b"00-ab-cd-01"),
                ("kokeilu.service", b"spoofed"),
                ("binary", b"\xff\x00"),
            ],
            topic=topics.EVALUATIONS,
            partition=1,
            offset=2,
            consumer_group="kokeilu.proposals.workflow",
        ),
    ],
    ids=["consumer", "truncated", "relay", "original-headers"],
)
def test_the_dead_letters_the_code_builds_fit_the_documented_headers(dead_letter_headers, letter):
    assert letter.topic == topics.DEADLETTER
    assert list(dead_letter_headers.iter_errors(letter.headers)) == []
    assert {name for name in letter.headers if name.startswith(contract.NAMESPACE)} <= set(contract.HEADERS)


def test_the_documented_dead_letter_headers_refuse_a_kokeilu_header_of_no_contract(dead_letter_headers):
    letter = dead_letter(b"{}", "k", "failed", "x", "proposals", topic=topics.EVALUATIONS, partition=0, offset=1)
    assert list(dead_letter_headers.iter_errors({**letter.headers, "traceparent": "00-ab-cd-01"})) == []
    assert list(dead_letter_headers.iter_errors({**letter.headers, "kokeilu.made.up": "1"})) != []


def test_platform_events_document_the_redrive_header(document):
    for t in types.ALL:
        header = document["components"]["messages"][message_name(t)]["headers"]["properties"][contract.REDRIVE_OF]
        assert header["pattern"] == contract.REDRIVE_OF_PATTERN and "redrove" in header["description"]


def test_the_documented_dead_letter_example_fits_its_headers(document, dead_letter_headers):
    for example in document["components"]["messages"]["dead_letter"]["examples"]:
        assert list(dead_letter_headers.iter_errors(example["headers"])) == []
