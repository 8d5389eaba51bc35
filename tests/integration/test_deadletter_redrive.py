"""A dead letter can be listed and redriven, and is then applied once (issue 12, item 3).

The proposals service alone, on the real broker: a panel decision arrives for a proposal still
in screening (the evaluation service's screening result is late), which no retry can apply, so
it is dead-lettered, with its original headers. The cause is then fixed (the screening result
arrives) and `python -m kokeilu.deadletters` lists the dead letter, a dry run sends nothing,
the redrive sends it, the proposals service applies it once, and a second redrive sends
nothing. The same decision was sent twice (a sender's retry): both copies were dead-lettered,
both are redriven, and the second is dropped by the inbox as a duplicate.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition

from kokeilu.contracts import deadletter as contract
from kokeilu.contracts import service_source, topics
from tests.builders import cloudevent, submission
from tests.integration.workflow_support import drain
from tests.support import BOOTSTRAP, deadletters, headers_of, wait_until

pytestmark = pytest.mark.kafka

T = "fi.espoo.kokeilu."
CE = b"application/cloudevents+json"


def end_offsets(topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def redriven_metric(platform, outcome: str) -> float:
    text = platform.get("proposals", "/metrics", headers={}).text
    found = re.findall(r"^kokeilu_redriven_records_total\{([^}]*)\} (\S+)$", text, re.M)
    return sum(
        float(value)
        for labels, value in found
        if f'outcome="{outcome}"' in labels and f'topic="{topics.EVALUATIONS}"' in labels
    )


def decided(pid: str) -> dict:
    return cloudevent(
        T + "evaluation.decided",
        {
            "proposal_id": pid,
            "decision": "approved",
            "weighted_score": 4.2,
            "threshold": 3.5,
            "criterion_averages": {"strategy_fit": 4.0, "feasibility": 4.5},
            "rationale": "Strong fit with the strategy.",
            "decided_at": "2026-11-28T12:00:00Z",
        },
        subject=pid,
        source=service_source("evaluation"),
    )


def screened(pid: str) -> dict:
    return cloudevent(
        T + "screening.completed",
        {"proposal_id": pid, "passed": True, "failed_rules": [], "screened_at": "2026-11-28T10:01:00Z"},
        subject=pid,
        source=service_source("evaluation"),
    )


def test_a_dead_letter_is_listed_redriven_and_then_applied_once(platform, probe):
    platform.start("proposals")
    pid = platform.post("proposals", "/v1/proposals", submission(title=f"Redrive {uuid.uuid4().hex[:8]}")).json()["id"]
    assert platform.get("proposals", f"/v1/proposals/{pid}").json()["status"] == "screening"

    # The decision, before the screening result: an illegal transition, set aside. Sent twice,
    # as a sender retrying would; with headers of its own and one that pretends to be ours.
    decision = decided(pid)
    headers = [("content-type", CE), ("x-request-id", b"req-42"), ("kokeilu.service", b"spoofed")]
    for _ in range(2):
        probe.send(platform.topic(topics.EVALUATIONS), decision, key=pid, headers=headers)
    letters = probe.records(platform.topic(topics.DEADLETTER), lambda r: r.key == pid.encode(), count=2, timeout=60)
    for letter in letters:
        h = headers_of(letter)
        assert (h["kokeilu.reason"], h["kokeilu.service"]) == ("failed", "proposals"), h
        assert "IllegalTransition" in h["kokeilu.error"], h
        assert h["content-type"] == CE.decode() and h["x-request-id"] == "req-42"
        assert h[contract.OMITTED] == "kokeilu.service"
        assert json.loads(letter.value)["id"] == decision["id"]
    ids = sorted(f"{r.partition}:{r.offset}" for r in letters)

    # list finds both; filters that do not match find neither.
    listed = json.loads(
        deadletters(
            platform, "list", "--json", "--service", "proposals", "--reason", "failed", "--topic", topics.EVALUATIONS
        ).stdout
    )
    assert sorted(x["id"] for x in listed if x["key"] == pid) == ids
    assert all(x["redriven"] is None and x["original_headers"]["x-request-id"] == "req-42" for x in listed)
    assert [
        x for x in json.loads(deadletters(platform, "list", "--json", "--reason", "invalid").stdout) if x["key"] == pid
    ] == []
    assert [
        x
        for x in json.loads(
            deadletters(
                platform, "list", "--json", "--since", "2000-01-01T00:00:00Z", "--until", "2000-01-02T00:00:00Z"
            ).stdout
        )
    ] == []
    shown = deadletters(platform, "show", ids[0]).stdout
    assert f"dead letter {ids[0]}" in shown and "x-request-id: req-42" in shown and decision["id"] in shown

    # Fix the cause: the screening result arrives.
    probe.send(platform.topic(topics.EVALUATIONS), screened(pid), key=pid)
    wait_until(
        lambda: platform.get("proposals", f"/v1/proposals/{pid}").json()["status"] == "in_evaluation",
        timeout=60,
        what="the proposal to pass screening",
    )

    # A dry run says what it would do and sends nothing.
    evaluations = platform.topic(topics.EVALUATIONS)
    before = end_offsets(evaluations)
    dry = deadletters(platform, "redrive", *ids, "--dry-run").stdout
    assert "dry run: 2 would redrive" in dry, dry
    assert end_offsets(evaluations) == before
    assert sum(end_offsets(platform.topic(topics.REDRIVES)).values()) == 0  # nothing recorded

    # The redrive sends both copies; the first is applied, the second dropped by the inbox.
    report = json.loads(
        deadletters(platform, "redrive", "--topic", topics.EVALUATIONS, "--reason", "failed", "--json").stdout
    )
    assert sorted(x["id"] for x in report["redriven"]) == ids and not report["failed"], report
    assert sum(end_offsets(evaluations).values()) == sum(before.values()) + 2
    redriven = probe.records(
        evaluations,
        lambda r: dict(r.headers).get(contract.REDRIVE_OF) is not None and r.key == pid.encode(),
        count=2,
        timeout=30,
    )
    for record in redriven:
        h = headers_of(record)
        assert h[contract.REDRIVE_OF] in ids and h["content-type"] == CE.decode() and h["x-request-id"] == "req-42"
        assert [name for name in h if name.startswith("kokeilu.")] == [contract.REDRIVE_OF]
        assert json.loads(record.value) == decision

    wait_until(
        lambda: platform.get("proposals", f"/v1/proposals/{pid}").json()["status"] == "approved",
        timeout=60,
        what="the redriven decision to be applied",
    )
    wait_until(
        lambda: redriven_metric(platform, "applied") == 1 and redriven_metric(platform, "duplicate") == 1,
        timeout=60,
        what="the proposals service to count one redriven record applied and one duplicate",
    )
    proposal = platform.get("proposals", f"/v1/proposals/{pid}").json()
    assert proposal["decision"]["decision"] == "approved"
    # Applied once: one approval on the proposal's topic, and no new dead letter for it.
    wait_until(
        lambda: (
            len(
                drain(
                    platform.topic(topics.PROPOSALS),
                    lambda e: e.get("subject") == pid and e["type"] == T + "proposal.status-changed",
                )
            )
            == 3
        ),
        timeout=30,
        what="submitted->screening, screening->in_evaluation, in_evaluation->approved",
    )
    moves = [
        e["data"]["action"]
        for e in drain(
            platform.topic(topics.PROPOSALS),
            lambda e: e.get("subject") == pid and e["type"] == T + "proposal.status-changed",
        )
    ]
    assert moves == ["start_screening", "pass_screening", "approve"]
    assert len(drain(platform.topic(topics.DEADLETTER), lambda e: e.get("id") == decision["id"])) == 2

    # Recorded: list says so, and a second redrive sends nothing.
    listed = json.loads(deadletters(platform, "list", "--json", "--topic", topics.EVALUATIONS).stdout)
    recorded = [x for x in listed if x["id"] in ids]
    assert sorted(x["id"] for x in recorded) == ids
    assert all(x["redriven"] and x["redriven"]["to"]["topic"] == evaluations for x in recorded)
    after = end_offsets(evaluations)
    again = json.loads(deadletters(platform, "redrive", *ids, "--json").stdout)
    assert again["redriven"] == [] and sorted(x["id"] for x in again["skipped"]) == ids
    assert all(x["why"].startswith("already redriven") for x in again["skipped"])
    assert end_offsets(evaluations) == after
