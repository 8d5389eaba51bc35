"""Fuzz regression suite: hypothesis-generated hostile requests against the four services as real
processes. Whatever arrives, the answer is never a 5xx, and every error is JSON in the API's shape
`{"error": {"code", "message", "fields"}}`.

`make test` runs the short form (KOKEILU_FUZZ_REQUESTS, default 300). The full form:

    KOKEILU_FUZZ_REQUESTS=10000 KOKEILU_FUZZ_REPORT=fuzz.json .venv/bin/python -m pytest tests/fuzz

KOKEILU_FUZZ_REPORT names a file for the figures (requests, status distribution).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.builders import submission
from tests.fuzz.hostile import JSON_ROUTES_200, hostile_requests
from tests.support import Platform, free_port

pytestmark = pytest.mark.kafka

REQUESTS = int(os.environ.get("KOKEILU_FUZZ_REQUESTS", "300"))
REPORT = os.environ.get("KOKEILU_FUZZ_REPORT")
STATUSES: Counter = Counter()
BY_ROUTE: Counter = Counter()


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    p = Platform(
        tmp_path_factory.mktemp("fuzz"),
        extra_env={
            # A request whose body never fully arrives waits this long (the suite sends whole requests).
            "KOKEILU_HTTP_BODY_TIMEOUT_SECONDS": "2",
            "KOKEILU_HTTP_HEADER_TIMEOUT_SECONDS": "5",
            # Nothing listens there: e-mail deliveries fail and are retried, which is fine here.
            "KOKEILU_SMTP_HOST": "127.0.0.1",
            "KOKEILU_SMTP_PORT": str(free_port()),
            "KOKEILU_SQLITE_BUSY_TIMEOUT_SECONDS": "10",
        },
    )
    p.start("proposals", "evaluation", "notifications", "catalogue")
    yield p
    p.stop()
    if REPORT:
        Path(REPORT).parent.mkdir(parents=True, exist_ok=True)
        with open(REPORT, "w") as f:
            json.dump(
                {
                    "requests": sum(STATUSES.values()),
                    "statuses": dict(sorted(STATUSES.items())),
                    "by_route": dict(sorted(BY_ROUTE.items())),
                },
                f,
                indent=2,
            )


@pytest.fixture(scope="module")
def ids(platform):
    """A real proposal and subscription, so that hostile bodies also reach routes past their 404."""
    pid = platform.post("proposals", "/v1/proposals", submission(title="Fuzz target")).json()["id"]
    sub = platform.post(
        "notifications",
        "/v1/subscriptions",
        {"subscriber": "Fuzz target", "channel": "email", "email": "fuzz@example.com", "mode": "daily_digest"},
    )
    assert sub.status_code == 201, sub.text
    return pid, sub.json()["id"]


def exchange(port: int, raw: bytes, method: str) -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything; its answer is still there
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return response.status, dict(response.getheaders()), response.read()


def strict_json(body: bytes):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=refuse)


def test_hostile_requests_never_get_a_5xx_and_errors_are_json(platform, ids):
    pid, sid = ids

    @settings(
        max_examples=REQUESTS,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(request=hostile_requests(pid, sid))
    def check(request):
        method = request.raw.split(b" ", 1)[0].decode("latin-1")
        status, headers, body = exchange(platform.ports[request.route.service], request.raw, method)
        STATUSES[status] += 1
        BY_ROUTE[f"{request.route.method} {request.route.path} {status}"] += 1
        assert status < 500, (status, body[:500])
        if status >= 400:
            error = strict_json(body)["error"]
            assert {"code", "message", "fields"} <= set(error), error
            assert isinstance(error["fields"], dict)
        elif status != 204 and request.route.path in JSON_ROUTES_200 and method != "HEAD":
            strict_json(body)

    check()
    assert sum(STATUSES.values()) >= min(REQUESTS, 100)
    for service in ("proposals", "evaluation", "notifications", "catalogue"):
        assert platform.get(service, "/health/live", headers={}).status_code == 200
        log = platform.log_text(service)
        assert "unhandled error" not in log and "thread exited with error" not in log, log[-3000:]
