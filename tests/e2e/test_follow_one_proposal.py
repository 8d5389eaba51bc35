"""One proposal followed through all four services by one correlation id and one trace.

The services run as real processes on the real broker, export their spans with OTLP to a
collector the test runs (the protobuf requests OpenTelemetry's exporter sends), and write JSON
logs. The proposal is submitted over HTTP by a city system that sends its own `traceparent`
and `X-Correlation-Id`, scored by its panel over HTTP, goes overdue on the evaluation
service's timer, is piloted with a measurement from a sensor platform (an event with a trace
and correlation of its own) and completed; every event about it, on every topic, must carry
the submitter's correlation id and trace.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from kokeilu import tracing
from kokeilu.contracts import topics
from tests.builders import cloudevent, submission
from tests.integration.workflow_support import TOKENS, auth, drain
from tests.support import Platform, Receiver, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

T = "fi.espoo.kokeilu."
MANAGER = auth("manager")
SERVICES = ("proposals", "evaluation", "notifications", "catalogue")


class Collector:
    """An OTLP/HTTP trace receiver on 127.0.0.1: keeps (service name, span) of every span sent."""

    def __init__(self):
        self.spans: list[tuple[str, object]] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                with collector.lock:
                    for resource_spans in request.resource_spans:
                        name = next(
                            a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"
                        )
                        for scope in resource_spans.scope_spans:
                            collector.spans.extend((name, span) for span in scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def services_in(self, trace_id: str) -> set[str]:
        with self.lock:
            return {name for name, span in self.spans if span.trace_id.hex() == trace_id}

    def spans_in(self, trace_id: str) -> list[tuple[str, object]]:
        with self.lock:
            return [(name, span) for name, span in self.spans if span.trace_id.hex() == trace_id]

    def close(self):
        self.server.shutdown()


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.close()


def about(pid: str):
    def match(event: dict) -> bool:
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        return pid in (event.get("subject"), data.get("proposal_id"), data.get("result_id"))

    return match


def test_every_event_about_a_proposal_shares_its_correlation_id_and_trace(tmp_path, probe, collector):
    platform = Platform(
        tmp_path,
        extra_env={
            "KOKEILU_TOKENS": TOKENS,
            "KOKEILU_LOG_FORMAT": "json",
            "EVENTLET_TESTS": "1",  # as the image sets
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            # an SLA of under two seconds: the overdue clock (a timer, no event behind it) speaks too
            "KOKEILU_EVALUATION_SLA_HOURS": "0.0005",
            "KOKEILU_OVERDUE_CHECK_SECONDS": "0.5",
        },
    )
    receiver = Receiver()
    try:
        platform.start(*SERVICES)
        subscribed = platform.post(
            "notifications",
            "/v1/subscriptions",
            {
                "subscriber": "Mobility department",
                "channel": "webhook",
                "url": receiver.url,
                "filter": {"types": [T + "result.published"], "focus_areas": ["smart_mobility"]},
            },
        )
        assert subscribed.status_code == 201, subscribed.text
        trace_id, correlation = uuid.uuid4().hex, f"city-case-{uuid.uuid4().hex[:8]}"
        caller = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
        created = platform.post(
            "proposals",
            "/v1/proposals",
            submission(title=f"Traced pilot {uuid.uuid4().hex}"),
            headers={**MANAGER, "traceparent": caller, "X-Correlation-Id": correlation},
        )
        assert created.status_code == 201, created.text
        assert tracing.trace_id_of(created.headers["traceparent"]) == trace_id  # the answer says where it was traced
        pid = created.json()["id"]

        def status():
            return platform.get("proposals", f"/v1/proposals/{pid}", headers=MANAGER).json()["status"]

        wait_until(lambda: status() == "in_evaluation", timeout=60, what="the proposal to be in evaluation")
        view = platform.get("evaluation", f"/v1/evaluations/{pid}", headers=MANAGER).json()
        panel = [a["evaluator"] for a in view["evaluation"]["assignments"] if not a["recused"]]
        probe.events(platform.topic(topics.EVALUATIONS), T + "evaluation.overdue", where=lambda e: e["subject"] == pid)
        # The evaluators' requests come in traces of their own (no traceparent sent).
        for name in panel:
            assert (
                platform.post(
                    "evaluation", f"/v1/evaluations/{pid}/conflict", {"conflict": False}, headers=auth(name)
                ).status_code
                == 200
            )
            sheet = dict.fromkeys(("strategy_fit", "feasibility", "impact", "sustainability", "reuse_scalability"), 5)
            assert (
                platform.post(
                    "evaluation", f"/v1/evaluations/{pid}/scores", {"scores": sheet}, headers=auth(name)
                ).status_code
                == 200
            )
        wait_until(lambda: status() == "approved", timeout=60, what="the proposal to be approved")
        assert platform.post("proposals", f"/v1/proposals/{pid}/pilot/start", {}, headers=MANAGER).status_code == 200

        sensor = cloudevent(
            T + "intake.measurement",
            {"proposal_id": pid, "kpi": "daily riders", "value": 87, "measured_at": "2026-12-01T08:00:00Z"},
            source="sensors/kera",
        )
        sensor.update(correlationid="sensor-batch-7", traceparent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01")
        probe.send(platform.topic(topics.INTAKE), sensor, key=pid)
        probe.events(
            platform.topic(topics.PROPOSALS), T + "pilot.measurement-recorded", where=lambda e: e["subject"] == pid
        )
        completed = platform.post(
            "proposals",
            f"/v1/proposals/{pid}/pilot/complete",
            {
                "outcome": "scale_up",
                "actual_kpis": [{"name": "daily riders", "actual": 240}],
                "lessons_learned": "Residents took the shuttle every morning.",
            },
            headers=MANAGER,
        )
        assert completed.status_code == 200, completed.text
        probe.events(
            platform.topic(topics.RESULTS),
            T + "result.updated",
            where=lambda e: e["subject"] == pid and e["data"].get("outcome") == "scale_up",
        )

        seen = [
            e
            for topic in (topics.PROPOSALS, topics.EVALUATIONS, topics.RESULTS)
            for e in drain(platform.topic(topic), about(pid))
        ]
        kinds = {e["type"].removeprefix(T) for e in seen}
        assert {
            "proposal.submitted",
            "screening.completed",
            "evaluation.opened",
            "evaluation.overdue",
            "evaluation.decided",
            "pilot.started",
            "pilot.measurement-recorded",
            "pilot.completed",
            "result.published",
            "result.updated",
        } <= kinds, kinds
        assert {e["correlationid"] for e in seen} == {correlation}, [(e["type"], e["correlationid"]) for e in seen]
        assert {tracing.trace_id_of(e["traceparent"]) for e in seen} == {trace_id}, [
            (e["type"], e["traceparent"]) for e in seen
        ]
        # The department's webhook delivery of the result says so in the proposal's flow too.
        [published] = [e for e in seen if e["type"] == T + "result.published"]
        [delivered] = probe.events(
            platform.topic(topics.NOTIFICATIONS),
            T + "delivery.succeeded",
            where=lambda e: e["data"]["event_id"] == published["id"],
        )
        assert delivered["correlationid"] == correlation and tracing.trace_id_of(delivered["traceparent"]) == trace_id
        [measured] = [e for e in seen if e["type"] == T + "pilot.measurement-recorded"]
        assert measured["causationid"] == sensor["id"]  # what caused it is still named

        # One trace in the collector, with spans from every service: requests, records, transactions.
        wait_until(
            lambda: collector.services_in(trace_id) >= {f"kokeilu-{s}" for s in SERVICES},
            timeout=30,
            what="spans of all four services in the proposal's trace",
        )
        names = {(service, span.name) for service, span in collector.spans_in(trace_id)}
        assert ("kokeilu-proposals", "POST /v1/proposals") in names
        assert ("kokeilu-evaluation", f"process {topics.PROPOSALS}") in names
        assert ("kokeilu-catalogue", f"process {topics.EVALUATIONS}") in names
        assert any(service == "kokeilu-proposals" and name.startswith("send ") for service, name in names)
        assert ("kokeilu-proposals", "store transaction") in names
    finally:
        receiver.close()
        codes = platform.stop()
    assert set(codes.values()) == {0}

    # JSON logs (KOKEILU_LOG_FORMAT=json): every line one object naming its service.
    for service in SERVICES:
        lines = [line for line in platform.log_text(service).splitlines() if line.strip()]
        assert lines, f"{service} logged nothing"
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                raise AssertionError(f"{service} logged a line that is not JSON: {line!r}") from None
            assert record["service"] == service and record["level"] and record["message"] is not None
