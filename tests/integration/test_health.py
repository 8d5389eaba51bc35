"""Readiness means the store answers; Kafka's state is reported beside it, from the monitor's probe."""

import socket

import pytest
import sqlalchemy as sa

from kokeilu.store import Database
from tests.support import wait_until


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


def test_an_unreachable_store_fails_the_ping():
    db = Database(f"postgresql+psycopg2://nobody@127.0.0.1:{closed_port()}/none")
    with pytest.raises(sa.exc.OperationalError, match="Connection refused"):
        db.ping()


def test_readiness_reports_each_check(platform):
    platform.start("evaluation")

    def probed():
        r = platform.get("evaluation", "/health/ready", headers={})
        checks = r.json()["checks"]
        return checks["kafka"] == "ok" and checks.get("consumer:kokeilu.evaluation", "").endswith(" partitions") and r

    ready = wait_until(probed, timeout=30, what="the first Kafka probe and the consumer's first assignment")
    assert ready.status_code == 200
    # its one consumer group, joined, with the topic's partitions (3 in tests)
    assert ready.json()["checks"] == {"store": "ok", "kafka": "ok", "consumer:kokeilu.evaluation": "3 partitions"}
    metrics = platform.get("evaluation", "/metrics", headers={}).text
    assert 'kokeilu_ready{service="evaluation"} 1.0' in metrics
    assert 'kokeilu_kafka_connected{service="evaluation"} 1.0' in metrics
    assert 'kokeilu_consumer_joined{group="kokeilu.evaluation",service="evaluation"} 1.0' in metrics
    assert 'kokeilu_consumer_assigned_partitions{group="kokeilu.evaluation",service="evaluation"} 3.0' in metrics
