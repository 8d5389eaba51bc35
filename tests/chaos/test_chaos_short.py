"""The short form of the chaos run (docs/operations.md, "Chaos runs"), in `make test`.

A few hundred proposals under a steady load, while each service is killed with kill -9 once, the
broker once, and proposals once more by its own crash point right after a commit
(KOKEILU_CRASH_AT=uow.committed@K): nothing accepted may be lost and nothing may happen twice.
The harness runs as it does for an operator (`python -m chaos`, its own broker and services);
the test checks the figures of its audit.json, not only its exit status.
"""
import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

PROPOSALS = 250
SEED = int(os.environ.get("KOKEILU_CHAOS_SEED", "7"))  # the fault schedule; set it to explore others


def test_short_chaos_run_loses_nothing_and_does_nothing_twice(tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "chaos", "--proposals", str(PROPOSALS), "--rate", "4", "--seed", str(SEED),
         "--kills-per-service", "1", "--broker-kills", "1", "--broker-freezes", "0", "--aimed", "uow.committed",
         "--drain-timeout", "150", "--request-deadline", "200", "--run-dir", str(run_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=560)
    output = done.stdout[-6000:] + done.stderr[-3000:]
    assert (run_dir / "audit.json").exists(), f"the harness could not run (exit {done.returncode}):\n{output}"
    report = json.loads((run_dir / "audit.json").read_text())
    why = "audit failures:\n" + "\n".join(report["failures"]) + f"\n(run: {run_dir})"

    # Every fault happened: each service and the broker killed once, the aimed kill tripped.
    kinds = [(f["kind"], f.get("service")) for f in report["faults"]]
    assert sorted(k for k in kinds if k[0] == "kill") == sorted(
        ("kill", s) for s in ("proposals", "evaluation", "notifications", "catalogue")), kinds
    assert ("broker-kill", None) in kinds, kinds
    aimed = [f for f in report["faults"] if f["kind"] == "aimed"]
    assert len(aimed) == 1 and aimed[0]["crashed"], aimed
    assert all(f["ready_seconds"] is not None for f in report["faults"]), report["faults"]

    # Nothing lost: every proposal accepted, and every accepted one at every stage.
    assert report["load"]["accepted"] == PROPOSALS, why
    assert report["drained"], output
    assert report["stages"] == {name: PROPOSALS for name in report["stages"]}, why
    assert report["dead_letters"] == 0 and report["dead_lettered_deliveries"] == 0, why
    for d in report["deliveries"]:
        assert d["missing"] == 0 and d["duplicates"] == 0 and d["bad_signatures"] == 0, why

    # Nothing twice: no title stored twice, no fact with two event ids.
    assert report["store"]["stored"] == PROPOSALS, why
    assert set(report["double_effects"].values()) == {0}, why

    assert report["ok"] and report["failures"] == [], why
    assert done.returncode == 0, output
