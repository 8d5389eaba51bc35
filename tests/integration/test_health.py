"""Readiness means the store answers; Kafka's state is reported beside it, from the monitor's probe."""
import socket

import pytest

from kokeilu.store import Database
from tests.support import wait_until


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


def test_an_unreachable_store_fails_the_ping():
    db = Database(f"postgresql+psycopg2://nobody@127.0.0.1:{closed_port()}/none")
    with pytest.raises(Exception):
        db.ping()


def test_readiness_reports_each_check(platform):
    platform.start("evaluation")
    ready = wait_until(lambda: (r := platform.get("evaluation", "/health/ready", headers={})).json()["checks"]["kafka"]
                       == "ok" and r, timeout=30, what="the first Kafka probe")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"store": "ok", "kafka": "ok"}
    metrics = platform.get("evaluation", "/metrics", headers={}).text
    assert 'kokeilu_ready{service="evaluation"} 1.0' in metrics
    assert 'kokeilu_kafka_connected{service="evaluation"} 1.0' in metrics
