"""A real Prometheus and a real Alertmanager (Debian's binaries) for the live ops tests, on free
ports and temporary storage, configured from the repository's own files:

- Prometheus scrapes each running service's /metrics every second and evaluates
  deploy/prometheus/alerts.yml every second, with every `for:` scaled from minutes to seconds
  (2m -> 2s), and re-sends firing alerts every second (not every minute): the same
  expressions, labels and annotations, in a test that cannot wait minutes. The real durations
  are what promtool's unit tests (alerts.test.yml) check.
- Alertmanager runs deploy/alertmanager/alertmanager.yml: its routes, receivers and e-mail, with
  the SMTP server pointed at the test's, a webhook added to each receiver (the test's collector,
  at /<receiver name>, so it can read the alerts' labels), and the waits before the first
  notification (`group_wait`) cut to a second.
"""

from __future__ import annotations

import re
import signal
import subprocess
import urllib.parse
from pathlib import Path

import requests
import yaml

from tests.ops.tools import ALERT_RULES, ALERTMANAGER_CONFIG, tool
from tests.support import Receiver, free_port, wait_until


def seconds_for_minutes(duration: str) -> str:
    """`for: 2m` -> `2s`, `1h` -> `60s`: the live test's clock runs sixty times faster."""
    value, unit = re.fullmatch(r"(\d+)([smhd])", duration).groups()
    return f"{max(1, int(value) * {'s': 1, 'm': 60, 'h': 3600, 'd': 86400}[unit] // 60)}s"


def fast_rules(target: Path) -> Path:
    rules = yaml.safe_load(ALERT_RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = seconds_for_minutes(rule["for"])
    target.write_text(yaml.safe_dump(rules, sort_keys=False))
    return target


class Process:
    def __init__(self, name: str, args: list[str], log: Path, port: int):
        self.name, self.port, self.log = name, port, log
        self.proc = subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log.read_text(errors='replace')[-3000:]}")
            return requests.get(self.url + "/-/ready", timeout=2).status_code == 200

        wait_until(ready, timeout=timeout, what=f"{self.name} to be ready ({self.log})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Prometheus(Process):
    """Starts without the rules: Prometheus begins scraping only some seconds after it starts
    (its target discovery settles first), and until then `absent(up{...})` is true. With `for:`
    in seconds KokeiluServiceDown would fire for every service at start-up, an artifact of the
    shortened clock (`for: 2m` covers that gap in production). `load_rules()` adds them once
    every service has been scraped."""

    def __init__(self, tmp: Path, targets: dict[str, int], alertmanager_port: int):
        port = free_port()
        self.config_file = tmp / "prometheus.yml"
        self.rules_file = fast_rules(tmp / "alerts.yml")
        self.config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
            # One job per service, named as in deploy/prometheus/prometheus.yml.
            "scrape_configs": [
                {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{p}"]}]} for name, p in targets.items()
            ],
        }
        self.config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        super().__init__(
            "prometheus",
            [
                tool("prometheus"),
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
                # A firing alert is sent again every second, not every minute: one sent while the
                # notifier has no Alertmanager (before discovery settles) is dropped, not queued.
                "--rules.alert.resend-delay=1s",
            ],
            tmp / "prometheus.log",
            port,
        )

    def load_rules(self) -> int:
        """Add the alert rules (SIGHUP: Prometheus reloads its config); the number of rules loaded."""
        self.config["rule_files"] = [str(self.rules_file)]
        self.config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.proc.send_signal(signal.SIGHUP)

        def loaded():
            groups = requests.get(self.url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
            return sum(len(group["rules"]) for group in groups)

        count = wait_until(loaded, timeout=30, what="Prometheus to load the alert rules")
        # A reload discovers the Alertmanagers anew (after a few seconds): until then alerts are dropped.
        wait_until(
            lambda: requests.get(self.url + "/api/v1/alertmanagers", timeout=5).json()["data"]["activeAlertmanagers"],
            timeout=30,
            what="Prometheus to find the Alertmanager",
        )
        return count

    def query(self, expr: str) -> dict:
        """The answer of /api/v1/query: raises with Prometheus' error for an expression it refuses."""
        response = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def notifier(self) -> list[str]:
        """Prometheus' own figures of what it sent to Alertmanager (for a failure's message)."""
        return [
            line
            for line in requests.get(self.url + "/metrics", timeout=5).text.splitlines()
            if line.startswith("prometheus_notifications_")
        ]


class Alertmanager(Process):
    def __init__(self, tmp: Path, webhook_url: str, smtp_port: int):
        port = free_port()
        config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
        config["global"]["smtp_smarthost"] = f"127.0.0.1:{smtp_port}"
        routes = [config["route"], *config["route"].get("routes", [])]
        for route in routes:
            route["group_wait"] = "1s"
        for receiver in config["receivers"]:
            receiver.setdefault("webhook_configs", []).append(
                {"url": f"{webhook_url}/{receiver['name']}", "send_resolved": True}
            )
        (tmp / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        super().__init__(
            "alertmanager",
            [
                tool("prometheus-alertmanager"),
                f"--config.file={tmp / 'alertmanager.yml'}",
                f"--storage.path={tmp / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            tmp / "alertmanager.log",
            port,
        )

    def alerts(self) -> list[dict]:
        return requests.get(self.url + "/api/v2/alerts", timeout=5).json()


class Webhook(Receiver):
    """Alertmanager's webhook receiver: keeps (path, body) of every POST."""

    def __init__(self):
        super().__init__(statuses=(200,))

    def record(self, path: str, headers: dict, body) -> None:
        self.received.append((urllib.parse.urlparse(path).path, body))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self, path: str | None = None) -> list[tuple[str, str, dict]]:
        """(receiver path, notification status, alert) of every alert in every notification."""
        return [
            (p, body["status"], alert)
            for p, body in list(self.received)
            if path in (None, p)
            for alert in body["alerts"]
        ]
