"""The short form of the chaos run on a cluster (docs/operations.md, "Chaos runs"), in `make test`.

Three Kafka nodes, two instances of every service on PostgreSQL, a steady load spread over both
proposals instances; one instance of each service is killed with -9 and one Kafka node is killed
and kept down for a while under the load. Nothing accepted may be lost, nothing may happen
twice, and the cluster must take writes while the node is down.
"""

import os

import pytest

from chaos.platform import SERVICES
from tests.chaos.run_chaos import assert_nothing_lost_or_twice, run_chaos

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.postgres]

PROPOSALS = 150
SEED = int(os.environ.get("KOKEILU_CHAOS_SEED", "11"))


def test_a_cluster_losing_an_instance_of_each_service_and_a_kafka_node_loses_nothing(tmp_path, postgres_url):
    report, output, returncode = run_chaos(
        tmp_path / "run",
        "--cluster",
        "--postgres",
        postgres_url,
        "--proposals",
        str(PROPOSALS),
        "--rate",
        "3",
        "--seed",
        str(SEED),
        "--kills-per-service",
        "1",
        "--broker-kills",
        "1",
        "--broker-freezes",
        "0",
        "--aimed",
        "",
        "--outage-seconds",
        "8",
        "--drain-timeout",
        "200",
        "--request-deadline",
        "200",
        timeout=600,
    )

    # One instance of every service killed, and one Kafka node, while the load ran.
    kills = [f for f in report["faults"] if f["kind"] == "kill"]
    assert sorted(f["service"] for f in kills) == sorted(SERVICES), kills
    assert all(f["instance"].split("@")[0] == f["service"] for f in kills)
    [node] = [f for f in report["faults"] if f["kind"] == "broker-kill"]
    assert node["during_load"] and node["node"] in (1, 2, 3), node
    # Writes go on with one of three nodes down (replication 3, min.insync.replicas 2).
    assert node["accepted_while_down"] > 0, node
    assert all(f["ready_seconds"] is not None for f in report["faults"]), report["faults"]

    assert_nothing_lost_or_twice(report, PROPOSALS, output, returncode)
