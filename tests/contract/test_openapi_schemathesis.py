"""Schemathesis against the four services as real processes: each service's own
`GET /openapi.json` drives it (examples, coverage, fuzzing and the stateful phase along the
documented links, e.g. `POST /v1/proposals` -> `GET /v1/proposals/{proposal_id}`), with the
admin token, and every answer must be

- no 5xx (`not_a_server_error`),
- a status the operation documents (`status_code_conformance`),
- of the documented content type (`content_type_conformance`) with the documented headers
  (`response_headers_conformance`),
- valid against the documented schema (`response_schema_conformance`).

Bounded and deterministic: at most KOKEILU_SCHEMATHESIS_EXAMPLES (default 25) cases per operation
and phase, `--generation-deterministic`, one worker; the four runs take well under a minute on two cores.
A failure is a bug in the service or in its description: fix the one that is wrong, never the check.

By hand, against `make run` (see docs/api.md):

    .venv/bin/python -m schemathesis.cli run http://127.0.0.1:8001/openapi.json \\
        -H "Authorization: Bearer $(cat .local/admin-token)" --checks all
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import requests

from kokeilu.contracts.schemas import SCHEMA_DIR
from tests.support import ROOT, TOKEN, Platform, free_port

pytestmark = pytest.mark.kafka

# proposals first: what it creates flows (through Kafka) to evaluation and catalogue, so their
# routes are exercised past their 404s too.
SERVICES = ("proposals", "evaluation", "notifications", "catalogue")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
EXAMPLES = int(os.environ.get("KOKEILU_SCHEMATHESIS_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    p = Platform(
        tmp_path_factory.mktemp("schemathesis"),
        extra_env={
            # Nothing listens there: e-mail deliveries fail and are retried, which is fine here.
            "KOKEILU_SMTP_HOST": "127.0.0.1",
            "KOKEILU_SMTP_PORT": str(free_port()),
            "KOKEILU_SQLITE_BUSY_TIMEOUT_SECONDS": "10",
        },
    )
    p.start(*SERVICES)
    yield p
    p.stop()


def schemathesis(url: str, base_url: str, workdir, junit) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-W",
        "ignore",
        "-m",
        "schemathesis.cli",
        "run",
        url,
        "--url",
        base_url,
        "-H",
        f"Authorization: Bearer {TOKEN}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(EXAMPLES),
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(junit),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # Run where it may leave its files (report directory, caches): the test's own directory.
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


def failures(junit) -> list[str]:
    suite = ET.parse(junit).getroot()
    found = []
    for case in suite.iter("testcase"):
        for problem in list(case.iter("failure")) + list(case.iter("error")):
            found.append(f"{case.get('name')}: {(problem.get('message') or '')}\n{(problem.text or '')[:3000]}")
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_answer_conforms_to_the_services_openapi_document(platform, service, tmp_path):
    served = requests.get(platform.url(service, "/openapi.json"), timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"] == "application/json"
    assert served.json() == json.loads((SCHEMA_DIR / "openapi" / f"{service}.json").read_text()), (
        "the served document differs from the checked-in one: run `make schemas`"
    )

    junit = tmp_path / "junit.xml"
    run = schemathesis(platform.url(service, "/openapi.json"), platform.url(service, ""), tmp_path, junit)
    report = run.stdout[-6000:] + run.stderr[-3000:]
    assert junit.exists(), f"schemathesis wrote no report (exit {run.returncode}):\n{report}"
    found = failures(junit)
    assert not found, "\n\n".join(found) + "\n\n" + report
    assert run.returncode == 0, report
    tested = {case.get("name") for case in ET.parse(junit).getroot().iter("testcase")}
    documented = {
        f"{method.upper()} {path}"
        for path, item in served.json()["paths"].items()
        for method in item
        if path != "/openapi.json"
    }  # schemathesis leaves out the document's own route
    assert documented <= tested, f"not tested: {sorted(documented - tested)}"
