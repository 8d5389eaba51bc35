"""A service that loses its broker keeps accepting work (it stays ready: its store answers),
reports the broker unreachable and its growing outbox, and recovers by itself when the broker
returns, losing nothing. Runs a private broker so it can be stopped and frozen."""

import os
import re
import signal
import subprocess

import pytest

from kokeilu.contracts import topics
from kokeilu.contracts.sources import service_source
from tests.builders import cloudevent, submission
from tests.support import ROOT, Platform, Probe, free_port, wait_until

pytestmark = pytest.mark.kafka


def kafka(action: str, port: int, controller: int, data_dir) -> None:
    env = dict(os.environ, KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(controller), KAFKA_DATA_DIR=str(data_dir))
    subprocess.run([str(ROOT / "deploy" / "kafka.sh"), action], env=env, check=True, capture_output=True, timeout=180)


@pytest.fixture
def private_broker(tmp_path):
    port, controller = free_port(), free_port()
    data_dir = tmp_path / "kafka"
    kafka("start", port, controller, data_dir)
    yield {
        "bootstrap": f"127.0.0.1:{port}",
        "control": lambda action: kafka(action, port, controller, data_dir),
        "pid": lambda: int((data_dir / "broker.pid").read_text()),
    }
    kafka("stop", port, controller, data_dir)


def test_proposals_accepted_while_the_broker_is_down_are_published_when_it_returns(tmp_path, private_broker):
    platform = Platform(tmp_path, extra_env={"KAFKA_BOOTSTRAP_SERVERS": private_broker["bootstrap"]})
    try:
        platform.start("proposals")
        wait_until(lambda: gauge(platform, "kokeilu_kafka_connected") == 1, timeout=30, what="the first probe")
        private_broker["control"]("stop")
        wait_until(
            lambda: gauge(platform, "kokeilu_kafka_connected") == 0,
            timeout=30,
            what="the monitor to report the broker unreachable",
        )
        ready = platform.get("proposals", "/health/ready", headers={})
        assert ready.status_code == 200 and ready.json()["checks"]["kafka"] == "unreachable"

        ids = []
        for i in range(3):
            response = platform.post("proposals", "/v1/proposals", submission(title=f"While the broker is down {i}"))
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        # Three events per submission wait in the outbox, and the gauge says so while Kafka is down.
        assert gauge(platform, "kokeilu_outbox_backlog") >= 9

        private_broker["control"]("start")
        wait_until(
            lambda: gauge(platform, "kokeilu_kafka_connected") == 1,
            timeout=60,
            what="the monitor to see the broker again",
        )
        probe = Probe(private_broker["bootstrap"])
        try:
            events = probe.events(
                platform.topic(topics.PROPOSALS),
                "fi.espoo.kokeilu.proposal.submitted",
                count=3,
                timeout=90,
                where=lambda e: e["subject"] in ids,
            )
            assert sorted(e["subject"] for e in events) == sorted(ids)

            # The consumer came back too: an outcome published now is applied.
            probe.send(
                platform.topic(topics.EVALUATIONS),
                cloudevent(
                    "fi.espoo.kokeilu.screening.completed",
                    {"proposal_id": ids[0], "passed": True, "screened_at": "2026-11-28T10:00:00Z"},
                    subject=ids[0],
                    source=service_source("evaluation"),
                ),
                key=ids[0],
            )
            wait_until(
                lambda: platform.get("proposals", f"/v1/proposals/{ids[0]}").json()["status"] == "in_evaluation",
                timeout=90,
                what="the consumer to apply an event after the broker returned",
            )
            wait_until(lambda: gauge(platform, "kokeilu_outbox_backlog") == 0, timeout=60, what="the outbox to drain")
        finally:
            probe.close()
    finally:
        platform.stop()


def gauge(platform, name: str, service: str = "proposals", **labels) -> float:
    text = platform.get(service, "/metrics", headers={}).text
    wanted = {"service": service, **labels}
    for line in text.splitlines():
        match = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match.group(1))) == wanted:
            return float(match.group(2))
    raise AssertionError(f"no {name}{wanted} in the metrics")


def test_a_frozen_broker_is_reported_unreachable_while_the_service_stays_ready(tmp_path, private_broker):
    platform = Platform(tmp_path, extra_env={"KAFKA_BOOTSTRAP_SERVERS": private_broker["bootstrap"]})
    try:
        platform.start("proposals")
        wait_until(lambda: gauge(platform, "kokeilu_kafka_connected") == 1, timeout=30, what="the first probe")
        # A frozen broker still accepts TCP connections; only a real request shows it is gone.
        os.kill(private_broker["pid"](), signal.SIGSTOP)
        try:
            wait_until(
                lambda: gauge(platform, "kokeilu_kafka_connected") == 0,
                timeout=30,
                what="the monitor to report the frozen broker",
            )
            assert platform.get("proposals", "/health/ready", headers={}).status_code == 200
        finally:
            os.kill(private_broker["pid"](), signal.SIGCONT)
        wait_until(lambda: gauge(platform, "kokeilu_kafka_connected") == 1, timeout=60, what="the broker to thaw")
    finally:
        platform.stop()
