"""The catalogue service as a real process: builds results from proposal and screening events."""

import json
import uuid

import pytest

from kokeilu.contracts import topics
from kokeilu.contracts.sources import service_source
from tests.builders import cloudevent, submitted
from tests.support import wait_until

pytestmark = pytest.mark.kafka

PUBLISHED = "fi.espoo.kokeilu.result.published"


@pytest.fixture(scope="module")
def catalogue(module_platform):
    return module_platform.start("catalogue")


def screened(pid: str, passed: bool = True) -> dict:
    return cloudevent(
        "fi.espoo.kokeilu.screening.completed",
        {
            "proposal_id": pid,
            "passed": passed,
            "failed_rules": [] if passed else [{"rule": "budget_cap", "reason": "over"}],
            "screened_at": "2026-11-28T10:01:00Z",
        },
        subject=pid,
        source=service_source("evaluation"),
    )


@pytest.mark.parametrize("screening_first", [False, True])
def test_a_screened_proposal_is_published_whichever_event_comes_first(catalogue, probe, screening_first):
    pid = str(uuid.uuid4())
    events = [(topics.PROPOSALS, submitted(pid)), (topics.EVALUATIONS, screened(pid))]
    for topic, event in reversed(events) if screening_first else events:
        probe.send(catalogue.topic(topic), event, key=pid)
    [result] = probe.events(catalogue.topic(topics.RESULTS), PUBLISHED, where=lambda e: e["subject"] == pid)
    assert result["data"]["status"] == "in_evaluation" and result["data"]["licence"] == "CC-BY-4.0"
    shown = wait_until(
        lambda: catalogue.get("catalogue", f"/v1/results/{pid}").json().get("result_id"),
        what="result in the catalogue API",
    )
    assert shown == pid
    assert pid in [r["result_id"] for r in catalogue.get("catalogue", "/v1/results").json()["items"]]


def test_a_resident_is_not_named_on_the_public_topic(catalogue, probe):
    pid = str(uuid.uuid4())
    probe.send(
        catalogue.topic(topics.PROPOSALS),
        submitted(pid, proposer={"organisation": "Maija Meikäläinen", "kind": "resident"}),
        key=pid,
    )
    probe.send(catalogue.topic(topics.EVALUATIONS), screened(pid), key=pid)
    [result] = probe.events(catalogue.topic(topics.RESULTS), PUBLISHED, where=lambda e: e["subject"] == pid)
    assert "Meikäläinen" not in json.dumps(result, ensure_ascii=False)
    assert result["data"]["proposer_kind"] == "resident"


def test_a_proposal_that_failed_screening_is_not_published(catalogue, probe):
    pid, marker = str(uuid.uuid4()), str(uuid.uuid4())
    probe.send(catalogue.topic(topics.PROPOSALS), submitted(pid), key=pid)
    probe.send(catalogue.topic(topics.EVALUATIONS), screened(pid, passed=False), key=pid)
    # A later proposal on the same partitions: once it is published, the failed one has been processed.
    probe.send(catalogue.topic(topics.PROPOSALS), submitted(marker), key=pid)
    probe.send(catalogue.topic(topics.EVALUATIONS), screened(marker), key=pid)
    probe.events(catalogue.topic(topics.RESULTS), PUBLISHED, where=lambda e: e["subject"] == marker)
    assert catalogue.get("catalogue", f"/v1/results/{pid}").status_code == 404
