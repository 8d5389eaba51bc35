"""Readiness needs both the store and Kafka."""
import socket

import pytest

from kokeilu.platform import kafka_reachable
from kokeilu.store import Database
from tests.support import BOOTSTRAP


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


@pytest.mark.kafka
def test_kafka_is_reachable_on_the_test_broker_and_not_on_a_closed_port():
    assert kafka_reachable(BOOTSTRAP.split(","))
    assert not kafka_reachable([f"127.0.0.1:{closed_port()}"], timeout=0.5)


def test_an_unreachable_store_fails_the_ping():
    db = Database(f"postgresql+psycopg2://nobody@127.0.0.1:{closed_port()}/none")
    with pytest.raises(Exception):
        db.ping()


def test_readiness_reports_each_check(platform):
    platform.start("evaluation")
    ready = platform.get("evaluation", "/health/ready", headers={})
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"store": "ok", "kafka": "ok"}
    assert 'kokeilu_ready{service="evaluation"} 1.0' in platform.get("evaluation", "/metrics", headers={}).text
