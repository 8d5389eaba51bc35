"""The short form of the chaos run (docs/operations.md, "Chaos runs"), in `make test`.

A few hundred proposals under a steady load, while each service is killed with kill -9 once, the
broker once, and proposals once more by its own crash point right after a commit
(KOKEILU_CRASH_AT=uow.committed@K): nothing accepted may be lost and nothing may happen twice.
The harness runs as it does for an operator (`python -m chaos`, its own broker and services);
the test checks the figures of its audit.json, not only its exit status.
"""

import os

import pytest

from tests.chaos.run_chaos import assert_nothing_lost_or_twice, run_chaos

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

PROPOSALS = 250
SEED = int(os.environ.get("KOKEILU_CHAOS_SEED", "7"))  # the fault schedule; set it to explore others


def test_short_chaos_run_loses_nothing_and_does_nothing_twice(tmp_path):
    report, output, returncode = run_chaos(
        tmp_path / "run",
        "--proposals",
        str(PROPOSALS),
        "--rate",
        "4",
        "--seed",
        str(SEED),
        "--kills-per-service",
        "1",
        "--broker-kills",
        "1",
        "--broker-freezes",
        "0",
        "--aimed",
        "uow.committed",
        "--drain-timeout",
        "150",
        "--request-deadline",
        "200",
        timeout=560,
    )

    # Every fault happened: each service and the broker killed once, the aimed kill tripped.
    kinds = [(f["kind"], f.get("service")) for f in report["faults"]]
    assert sorted(k for k in kinds if k[0] == "kill") == sorted(
        ("kill", s) for s in ("proposals", "evaluation", "notifications", "catalogue")
    ), kinds
    assert ("broker-kill", None) in kinds, kinds
    aimed = [f for f in report["faults"] if f["kind"] == "aimed"]
    assert len(aimed) == 1 and aimed[0]["crashed"], aimed
    assert all(f["ready_seconds"] is not None for f in report["faults"]), report["faults"]

    assert_nothing_lost_or_twice(report, PROPOSALS, output, returncode)
