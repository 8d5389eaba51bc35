"""Running the chaos harness from a test, and what every short run must show."""

import json
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def run_chaos(run_dir: Path, *options: str, timeout: float) -> tuple[dict, str, int]:
    """`python -m chaos` as an operator runs it: (its audit.json, the end of its output, its exit status)."""
    done = subprocess.run(
        [sys.executable, "-m", "chaos", *options, "--run-dir", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = done.stdout[-6000:] + done.stderr[-3000:]
    assert (run_dir / "audit.json").exists(), f"the harness could not run (exit {done.returncode}):\n{output}"
    return json.loads((run_dir / "audit.json").read_text()), output, done.returncode


def assert_nothing_lost_or_twice(report: dict, proposals: int, output: str, returncode: int) -> None:
    why = "audit failures:\n" + "\n".join(report["failures"]) + f"\n(run: {report['run']})"
    # Nothing lost: every proposal accepted, and every accepted one at every stage.
    assert report["load"]["accepted"] == proposals, why
    assert report["drained"], output
    assert report["stages"] == {name: proposals for name in report["stages"]}, why
    assert report["dead_letters"] == 0 and report["dead_lettered_deliveries"] == 0, why
    for d in report["deliveries"]:
        assert d["missing"] == 0 and d["duplicates"] == 0 and d["bad_signatures"] == 0, why
    # Nothing twice: no title stored twice, no fact with two event ids.
    assert report["store"]["stored"] == proposals, why
    assert set(report["double_effects"].values()) == {0}, why
    assert report["ok"] and report["failures"] == [], why
    assert returncode == 0, output
