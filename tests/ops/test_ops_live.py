"""Alerts and dashboards against the running platform: the four services as real processes on
the real broker, scraped by a real Prometheus that sends its alerts to a real Alertmanager
(tests/ops/live.py says what differs from production and why).

- Every panel expression of every dashboard is evaluated by Prometheus after the platform has
  done the work the panels show (proposals through screening, panels, decisions and a pilot;
  intake from a city system, a broken record and an invalid one; webhooks, e-mails, a digest, a
  failing subscriber): none may fail, none may be empty.
- Then one service is stopped, and KokeiluServiceDown must reach the on-call receiver, by webhook
  and by e-mail, naming that service.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime

import pytest

from kokeilu.contracts import topics
from tests.builders import cloudevent, submission
from tests.integration.workflow_support import TOKENS, auth
from tests.ops.live import Alertmanager, Prometheus, Webhook
from tests.ops.tools import DASHBOARDS, rules
from tests.support import Mailbox, Platform, Receiver, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

SERVICES = ("proposals", "evaluation", "notifications", "catalogue")
T = "fi.espoo.kokeilu."
MANAGER = auth("manager")
# What Grafana puts in for its variables when the test asks Prometheus directly.
VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h", "${service}": ".*", "$service": ".*"}


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ops")
    mailbox, webhook = Mailbox(), Webhook()
    platform = Platform(
        tmp,
        extra_env={
            "KOKEILU_TOKENS": TOKENS,
            "KOKEILU_SMTP_HOST": "127.0.0.1",
            "KOKEILU_SMTP_PORT": str(mailbox.port),
            # a failing subscriber gives up after two attempts; digests every 3 seconds
            "KOKEILU_DELIVERY_MAX_ATTEMPTS": "2",
            "KOKEILU_DELIVERY_RETRY_BASE_SECONDS": "0.2",
            "KOKEILU_DELIVERY_RETRY_CAP_SECONDS": "0.5",
            "KOKEILU_DIGEST_WINDOW_SECONDS": "3",
        },
    )
    prometheus = alertmanager = None
    try:
        platform.start(*SERVICES)
        alertmanager = Alertmanager(tmp, webhook.url, mailbox.port)
        prometheus = Prometheus(tmp, {name: platform.ports[name] for name in SERVICES}, alertmanager.port)
        alertmanager.wait_ready()
        prometheus.wait_ready()
        wait_until(
            lambda: sorted(s["metric"]["job"] for s in prometheus.query("up == 1")["result"]) == sorted(SERVICES),
            timeout=30,
            what="Prometheus to scrape all four services",
        )
        assert prometheus.load_rules() == len(rules())
        yield platform, prometheus, alertmanager, webhook, mailbox
    finally:
        for process in (prometheus, alertmanager):
            if process is not None:
                process.stop()
        platform.stop()
        webhook.close()
        mailbox.close()


# --- the work the panels show ---------------------------------------------------------------


def score(platform, pid, value):
    view = platform.get("evaluation", f"/v1/evaluations/{pid}", headers=MANAGER).json()
    for name in [a["evaluator"] for a in view["evaluation"]["assignments"] if not a["recused"]]:
        assert (
            platform.post(
                "evaluation", f"/v1/evaluations/{pid}/conflict", {"conflict": False}, headers=auth(name)
            ).status_code
            == 200
        )
        sheet = {c: value for c in ("strategy_fit", "feasibility", "impact", "sustainability", "reuse_scalability")}
        scored = platform.post("evaluation", f"/v1/evaluations/{pid}/scores", {"scores": sheet}, headers=auth(name))
        assert scored.status_code == 200, scored.text


def wait_status(platform, pid, status):
    seen = []

    def reached():
        seen.append(platform.get("proposals", f"/v1/proposals/{pid}", headers=MANAGER).json()["status"])
        return seen[-1] == status

    wait_until(reached, timeout=60, what=f"{pid} to be {status} (is {seen[-1:]})")


def run_the_programme(platform, mailbox, probe) -> None:
    """What a working day puts through every panel of the dashboard."""
    tag = uuid.uuid4().hex[:8]
    good, failing = Receiver(), Receiver(statuses=(500,))
    try:
        for body in (
            {"subscriber": "Mobility department", "channel": "webhook", "url": good.url},
            {
                "subscriber": "A department whose endpoint fails",
                "channel": "webhook",
                "url": failing.url,
                "filter": {"types": [T + "result.published"]},
            },
            {
                "subscriber": "Education department",
                "channel": "email",
                "email": f"digest-{tag}@espoo.example",
                "mode": "daily_digest",
                "language": "en",
            },
        ):
            created = platform.post("notifications", "/v1/subscriptions", body)
            assert created.status_code == 201, created.text

        # Two proposals by HTTP, one from a city system; a broken record and an invalid event too.
        pids = []
        for _n in range(2):
            # titles apart, or screening fails the second as a near-duplicate of the first
            created = platform.post(
                "proposals", "/v1/proposals", submission(title=f"Ops pilot {uuid.uuid4().hex}"), headers=MANAGER
            )
            assert created.status_code == 201, created.text
            pids.append(created.json()["id"])
        intake = platform.topic(topics.INTAKE)
        probe.send(
            intake,
            cloudevent(
                T + "intake.proposal", submission(title=f"Ops intake {uuid.uuid4().hex}"), source="e-services-portal"
            ),
            key=tag,
        )
        probe.send(intake, b"{not json", key=tag)
        probe.send(
            intake,
            cloudevent(T + "intake.proposal", {"title": "no more than a title"}, source="e-services-portal"),
            key=tag,
        )

        for pid in pids:
            wait_status(platform, pid, "in_evaluation")
        score(platform, pids[0], 4)  # approved
        score(platform, pids[1], 3)  # revision requested
        wait_status(platform, pids[0], "approved")
        wait_status(platform, pids[1], "revision_requested")
        assert (
            platform.post("proposals", f"/v1/proposals/{pids[0]}/pilot/start", {}, headers=MANAGER).status_code == 200
        )
        completed = platform.post(
            "proposals",
            f"/v1/proposals/{pids[0]}/pilot/complete",
            {"outcome": "scale_up", "actual_kpis": [], "lessons_learned": "Worth it."},
            headers=MANAGER,
        )
        assert completed.status_code == 200, completed.text

        wait_until(lambda: len(good.received) >= 10, timeout=60, what="webhooks to the working subscriber")
        wait_until(
            lambda: platform.get("notifications", "/v1/deliveries?status=dead_lettered").json()["items"],
            timeout=60,
            what="the failing subscriber's delivery to be given up",
        )
        wait_until(lambda: mailbox.to(f"digest-{tag}@espoo.example"), timeout=60, what="a digest")
        wait_until(
            lambda: mailbox.to(submission()["proposer"]["contact_email"]), timeout=60, what="an e-mail to a proposer"
        )
    finally:
        good.close()
        failing.close()


# --- the dashboards -------------------------------------------------------------------------


def panel_queries() -> list[tuple[str, str, str, str]]:
    """(dashboard file, panel title, refId, expression as Prometheus gets it) of every panel target."""
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        panels = [p for p in dashboard["panels"]] + [p for row in dashboard["panels"] for p in row.get("panels", [])]
        for panel in panels:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in VARIABLES.items():
                    expr = expr.replace(variable, value)
                assert "$" not in expr, f"{path.name} / {panel['title']}: a variable the test does not know: {expr}"
                queries.append((path.name, panel["title"], target["refId"], expr))
    return queries


def shows_something(data: dict) -> bool:
    """A panel shows something when some series has a number (a NaN quantile draws nothing)."""
    if data["resultType"] == "scalar":
        return not math.isnan(float(data["result"][1]))
    return any(not math.isnan(float(s["value"][1])) for s in data["result"])


def test_every_dashboard_panel_shows_the_work_the_platform_has_done(ops, probe):
    platform, prometheus, _, _, mailbox = ops
    queries = panel_queries()
    assert len(queries) >= 35  # a dashboard that failed to load would give none

    # Each expression is valid before any work is done: a refused query fails now.
    for _dashboard, _title, _ref, expr in queries:
        prometheus.query(expr)

    run_the_programme(platform, mailbox, probe)

    def empty():
        return [
            f"{dashboard} / {title} [{ref}]: {expr}"
            for dashboard, title, ref, expr in queries
            if not shows_something(prometheus.query(expr))
        ]

    # Counters and histograms need two scrapes after the work to show a rate: wait for those.
    missing = empty()
    try:
        wait_until(lambda: not empty(), timeout=45, interval=1, what="every panel to show data")
    except AssertionError:
        missing = empty()
        raise AssertionError("panels with no data after the work they show:\n  " + "\n  ".join(missing)) from None


# --- the alerts -----------------------------------------------------------------------------


def test_a_stopped_service_reaches_the_on_call_receiver_by_webhook_and_email(ops):
    platform, prometheus, alertmanager, webhook, mailbox = ops
    assert prometheus.query('ALERTS{alertname="KokeiluServiceDown"}')["result"] == [], (
        "KokeiluServiceDown while every service runs"
    )
    assert not [a for _, _, a in webhook.alerts() if a["labels"]["alertname"] == "KokeiluServiceDown"]

    stopped_at = datetime.now(UTC)
    assert platform.stop("catalogue") == {"catalogue": 0}

    def notified():  # a firing KokeiluServiceDown that began after the stop
        return [
            (path, status, alert)
            for path, status, alert in webhook.alerts()
            if alert["labels"]["alertname"] == "KokeiluServiceDown"
            and alert["status"] == "firing"
            and datetime.fromisoformat(alert["startsAt"][:26].rstrip("Z") + "+00:00") > stopped_at
        ]

    try:
        [(path, status, alert), *_] = wait_until(
            notified, timeout=60, interval=0.5, what="Alertmanager to notify KokeiluServiceDown"
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; stopped at {stopped_at.isoformat()}; Prometheus' alerts: "
            f"{prometheus.query('ALERTS')['result']}; Prometheus' notifier: {prometheus.notifier()}; "
            f"Alertmanager's alerts: {alertmanager.alerts()}; the webhook got: {webhook.received}"
        ) from None
    assert path == "/on-call", "a critical alert goes to the on-call receiver"
    assert alert["labels"]["job"] == "catalogue" and alert["labels"]["severity"] == "critical"
    assert alert["labels"]["instance"] == f"127.0.0.1:{platform.ports['catalogue']}"
    assert alert["annotations"]["summary"] == "The catalogue service is not answering"
    assert alert["annotations"]["runbook"] == "docs/operations.md#kokeiluservicedown"
    assert {p for p, _, a in notified()} == {"/on-call"}, "not to the operations team's receiver"

    [mail, *_] = wait_until(lambda: mailbox.to("kokeilu-on-call@espoo.example"), timeout=30, what="the on-call e-mail")
    assert "KokeiluServiceDown" in mail["Subject"] and "catalogue" in mail["Subject"]
    assert not [m for m in mailbox.to("kokeilu-operations@espoo.example") if "KokeiluServiceDown" in m["Subject"]]
