"""The real Prometheus tools the ops tests run: Debian's `prometheus` (prometheus, promtool) and
`prometheus-alertmanager` (prometheus-alertmanager, amtool) packages, which .ci/run installs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERT_RULES = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"

PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


def tool(name: str) -> str:
    """The path of a Prometheus tool; the test fails (not skips) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: `apt-get install {PACKAGES[name]}` (Debian's package; .ci/run "
            f"installs it), so that the alert rules and dashboards are checked against the real thing"
        )
    return path


def rules() -> list[dict]:
    """Every alert rule of deploy/prometheus/alerts.yml."""
    return [rule for group in yaml.safe_load(ALERT_RULES.read_text())["groups"] for rule in group["rules"]]
