"""The alert rules and the Alertmanager routing, checked by the real tools: promtool's rule unit
tests (deploy/prometheus/alerts.test.yml), promtool's and amtool's config checks, and amtool's
route tester. No services or network needed."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.ops.tools import ALERT_RULES, ALERT_TESTS, ALERTMANAGER_CONFIG, PROMETHEUS_DIR, rules, tool


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rules_and_the_prometheus_config():
    checked = run(tool("promtool"), "check", "rules", str(ALERT_RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = run(tool("promtool"), "check", "config", "--syntax-only", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def test_the_alert_rule_unit_tests_pass():
    result = run(tool("promtool"), "test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_has_a_case_where_it_fires_and_one_where_it_does_not():
    cases = [case for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    names = {rule["alert"] for rule in rules()}
    assert {case["alertname"] for case in cases} <= names, "a unit test names an alert that does not exist"
    for name in sorted(names):
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case.get("exp_alerts") for case in mine), f"no unit test sees {name} fire"
        assert any(not case.get("exp_alerts") for case in mine), f"no unit test sees {name} stay quiet"
        for case in mine:  # the labels Alertmanager routes on are part of what is expected
            for alert in case.get("exp_alerts") or []:
                assert alert["exp_labels"]["severity"] in ("critical", "warning"), name
                assert alert["exp_annotations"]["runbook"], name


# Each a plausible slip in alerts.yml: the unit tests must notice every one.
BROKEN = {
    "a stopped service's absent() dropped": ('or absent(up{job="catalogue"})', ""),
    "not ready alerting later": (
        "expr: kokeilu_ready == 0\n        for: 2m",
        "expr: kokeilu_ready == 0\n        for: 10m",
    ),
    "the 5xx threshold raised": ("> 0.05", "> 0.10"),
    "lag summed over instances": (
        "max by (service, group, topic) (kokeilu_consumer_lag)",
        "sum by (service, group, topic) (kokeilu_consumer_lag)",
    ),
    "intake minimum volume dropped": (">= 10", ">= 1"),
    "dead letters remembered longer": (
        "increase(kokeilu_dead_lettered_total[10m])",
        "increase(kokeilu_dead_lettered_total[30m])",
    ),
    "overdue summary text changed": ("went past their SLA in the last hour", "are overdue"),
}


@pytest.mark.parametrize("slip", sorted(BROKEN))
def test_the_unit_tests_catch_a_broken_rule(slip, tmp_path):
    old, new = BROKEN[slip]
    text = ALERT_RULES.read_text()
    assert old in text, f"the rule this case breaks has changed: {old!r}"
    (tmp_path / "alerts.yml").write_text(text.replace(old, new, 1))
    shutil.copy(ALERT_TESTS, tmp_path / "alerts.test.yml")
    result = run(tool("promtool"), "test", "rules", str(tmp_path / "alerts.test.yml"))
    assert result.returncode != 0, f"promtool test rules passed with {slip}"
    assert "FAILED" in result.stdout + result.stderr


def test_alertmanager_accepts_its_config():
    result = run(tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


RECEIVERS = {"critical": "on-call", "warning": "operations-team"}


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_each_alert_reaches_the_receiver_of_its_severity(rule):
    severity = rule["labels"]["severity"]
    result = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={RECEIVERS[severity]}",
        f"alertname={rule['alert']}",
        f"severity={severity}",
    )
    assert result.returncode == 0, f"{rule['alert']} ({severity}): {result.stdout}{result.stderr}"


def duration(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(text[:-1]) * units[text[-1]]


def test_critical_alerts_are_told_sooner_and_repeated_more_often_than_warnings_and_when_they_end():
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    root = config["route"]
    routes = {route["receiver"]: {**root, **route} for route in root["routes"]}
    critical, warning = routes["on-call"], routes["operations-team"]
    assert duration(critical["group_wait"]) < duration(warning["group_wait"])
    assert duration(critical["repeat_interval"]) < duration(warning["repeat_interval"])
    assert duration(critical["repeat_interval"]) <= 3600, "an unresolved critical alert is told again within the hour"
    for receiver in config["receivers"]:
        configs = [c for kind, items in receiver.items() if kind.endswith("_configs") for c in items]
        assert configs and all(c.get("send_resolved") for c in configs), receiver["name"]
