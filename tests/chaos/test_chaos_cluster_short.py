"""The short form of the chaos run on a cluster (docs/operations.md, "Chaos runs"), in `make test`.

Three Kafka nodes, two instances of every service on PostgreSQL, a steady load spread over both
proposals instances; one instance of each service is killed with -9 and one Kafka node is killed
and kept down for a while under the load. Nothing accepted may be lost, nothing may happen
twice, and the cluster must take writes while the node is down.
"""
import json
import os
import subprocess
import sys

import pytest

from chaos.platform import SERVICES
from tests.support import ROOT

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.postgres]

PROPOSALS = 150
SEED = int(os.environ.get("KOKEILU_CHAOS_SEED", "11"))


def test_a_cluster_losing_an_instance_of_each_service_and_a_kafka_node_loses_nothing(tmp_path, postgres_url):
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "chaos", "--cluster", "--postgres", postgres_url, "--proposals", str(PROPOSALS),
         "--rate", "3", "--seed", str(SEED), "--kills-per-service", "1", "--broker-kills", "1",
         "--broker-freezes", "0", "--aimed", "", "--outage-seconds", "8", "--drain-timeout", "200",
         "--request-deadline", "200", "--run-dir", str(run_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    output = done.stdout[-6000:] + done.stderr[-3000:]
    assert (run_dir / "audit.json").exists(), f"the harness could not run (exit {done.returncode}):\n{output}"
    report = json.loads((run_dir / "audit.json").read_text())
    why = "audit failures:\n" + "\n".join(report["failures"]) + f"\n(run: {run_dir})"

    # One instance of every service killed, and one Kafka node, while the load ran.
    kills = [f for f in report["faults"] if f["kind"] == "kill"]
    assert sorted(f["service"] for f in kills) == sorted(SERVICES), kills
    assert all(f["instance"].split("@")[0] == f["service"] for f in kills)
    [node] = [f for f in report["faults"] if f["kind"] == "broker-kill"]
    assert node["during_load"] and node["node"] in (1, 2, 3), node
    # Writes go on with one of three nodes down (replication 3, min.insync.replicas 2).
    assert node["accepted_while_down"] > 0, node
    assert all(f["ready_seconds"] is not None for f in report["faults"]), report["faults"]

    # Nothing lost, nothing twice.
    assert report["load"]["accepted"] == PROPOSALS, why
    assert report["drained"], output
    assert report["stages"] == {name: PROPOSALS for name in report["stages"]}, why
    assert report["dead_letters"] == 0 and report["dead_lettered_deliveries"] == 0, why
    for d in report["deliveries"]:
        assert d["missing"] == 0 and d["duplicates"] == 0 and d["bad_signatures"] == 0, why
    assert report["store"]["stored"] == PROPOSALS, why
    assert set(report["double_effects"].values()) == {0}, why
    assert report["ok"] and report["failures"] == [], why
    assert done.returncode == 0, output
