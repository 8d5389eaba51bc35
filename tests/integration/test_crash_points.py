"""A process killed at a commit boundary (a crash point, as `kill -9` would) loses nothing and
does nothing twice when the client retries."""

import signal
import uuid

import pytest
import requests

from tests.builders import submission
from tests.support import AUTH, wait_until

pytestmark = pytest.mark.kafka


def test_a_crash_right_after_the_commit_of_a_keyed_submission_replays_the_first_answer(platform):
    platform.extra_env["KOKEILU_CRASH_AT"] = "uow.committed@1"
    platform.start("proposals")
    title = f"Crash-tested bike counters {uuid.uuid4().hex[:8]}"
    key = {"Idempotency-Key": uuid.uuid4().hex, **AUTH}
    with pytest.raises(requests.ConnectionError):  # the process dies before it answers
        platform.post("proposals", "/v1/proposals", submission(title=title), headers=key)
    proc = platform.procs.pop("proposals")
    assert proc.wait(timeout=30) == -signal.SIGKILL

    del platform.extra_env["KOKEILU_CRASH_AT"]
    platform.start("proposals")
    retry = platform.post("proposals", "/v1/proposals", submission(title=title), headers=key)
    assert retry.status_code == 201, retry.text  # at once: not 409 "in progress"
    assert retry.headers.get("Idempotent-Replayed") == "true"
    stored = [p for p in platform.get("proposals", "/v1/proposals?limit=200").json()["items"] if p["title"] == title]
    assert [p["id"] for p in stored] == [retry.json()["id"]]


def test_a_crash_between_the_broker_ack_and_marking_rows_sent_loses_and_doubles_nothing(platform):
    # The first unit of work to commit is the submission itself, so a crash armed for the
    # second commit never fires; arm relay.published instead: the work committed, the events
    # reached the broker, the rows are not marked sent. The retry replays; the events are
    # published again after restart (at least once) and the consumers' inbox makes that harmless.
    platform.extra_env["KOKEILU_CRASH_AT"] = "relay.published@1"
    platform.start("proposals")
    title = f"Crash-tested noise sensors {uuid.uuid4().hex[:8]}"
    key = {"Idempotency-Key": uuid.uuid4().hex, **AUTH}
    try:
        first = platform.post("proposals", "/v1/proposals", submission(title=title), headers=key)
        first_id = first.json()["id"] if first.status_code == 201 else None
    except requests.ConnectionError:
        first_id = None
    proc = platform.procs.pop("proposals")
    assert proc.wait(timeout=30) == -signal.SIGKILL

    del platform.extra_env["KOKEILU_CRASH_AT"]
    platform.start("proposals")
    retry = platform.post("proposals", "/v1/proposals", submission(title=title), headers=key)
    assert retry.status_code == 201
    assert first_id in (None, retry.json()["id"])
    stored = [p for p in platform.get("proposals", "/v1/proposals?limit=200").json()["items"] if p["title"] == title]
    assert len(stored) == 1
    wait_until(
        lambda: (
            platform.get("proposals", "/metrics", headers={}).text.count(
                'kokeilu_outbox_backlog{service="proposals"} 0.0'
            )
            == 1
        ),
        timeout=60,
        what="the outbox to drain after restart",
    )
