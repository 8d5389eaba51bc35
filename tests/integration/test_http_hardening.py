"""Hostile input against real service processes (issue 8): what the API accepts the platform can
carry, bad input is a 4xx JSON error naming the field (never a 500), and the server sheds slow,
idle and malformed connections. Raw sockets where `requests` would not send the bytes."""

import json
import socket
import sqlite3
import time
import uuid

import pytest
import requests

from tests.builders import submission
from tests.support import AUTH, Platform, wait_until

pytestmark = pytest.mark.kafka

TIMEOUTS = {
    "KOKEILU_HTTP_HEADER_TIMEOUT_SECONDS": "2",
    "KOKEILU_HTTP_BODY_TIMEOUT_SECONDS": "2",
    "KOKEILU_HTTP_IDLE_TIMEOUT_SECONDS": "5",
    "KOKEILU_HTTP_MAX_CONNECTIONS": "20",
}


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    p = Platform(tmp_path_factory.mktemp("hardening"), extra_env=TIMEOUTS)
    p.start("proposals", "catalogue")
    yield p
    p.stop()


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, which are not JSON."""

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def post_raw(p: Platform, path: str, body: bytes | str, service: str = "proposals"):
    return requests.post(
        p.url(service, path), data=body, timeout=30, headers=dict(AUTH, **{"Content-Type": "application/json"})
    )


def assert_error(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = strict_json(response.text)["error"]
    assert {"code", "message", "fields"} <= set(error)
    if field is not None:
        assert field in error["fields"], error
    return error


def raw_exchange(p: Platform, service: str, data: bytes, wait: float = 15) -> bytes:
    """Send `data` on a fresh connection; everything the server writes until it closes (or `wait`)."""
    with socket.create_connection(("127.0.0.1", p.ports[service]), timeout=wait) as s:
        s.sendall(data)
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
        except TimeoutError:
            pass
        return got


def created(p: Platform) -> str:
    response = p.post("proposals", "/v1/proposals", submission(title=f"Hardening {uuid.uuid4().hex[:8]}"))
    assert response.status_code == 201, response.text
    return response.json()["id"]


# Finding 3: the API accepts what its consumers reject ------------------------------------------
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize("field, path", [("baseline", "kpis.0.baseline"), ("target", "kpis.0.target")])
def test_a_kpi_number_that_is_not_finite_is_refused_naming_the_field(services, number, field, path):
    body = json.dumps(submission(kpis=[{"name": "riders", "unit": "n", "baseline": 0, "target": 1}]))
    body = body.replace(f'"{field}": {0 if field == "baseline" else 1}', f'"{field}": {number}')
    assert_error(post_raw(services, "/v1/proposals", body), 422, path)


def test_a_budget_of_1e400_is_refused(services):
    body = json.dumps(submission()).replace('"budget_eur": 45000', '"budget_eur": 1e400')
    assert_error(post_raw(services, "/v1/proposals", body), 422, "budget_eur")


def test_a_partner_of_600000_characters_is_refused_item_by_item(services):
    response = services.post("proposals", "/v1/proposals", submission(partners=["Kera school", "x" * 600_000]))
    assert_error(response, 422, "partners.1")


def test_an_infinite_actual_kpi_or_a_nan_measurement_is_refused(services):
    pid = created(services)
    complete = (
        '{"outcome": "scale_up", "lessons_learned": "ok", "actual_kpis": [{"name": "riders", "actual": Infinity}]}'
    )
    assert_error(post_raw(services, f"/v1/proposals/{pid}/pilot/complete", complete), 422, "actual_kpis.0.actual")
    measure = '{"kpi": "riders", "value": NaN, "measured_at": "2026-11-28T10:00:00Z"}'
    assert_error(post_raw(services, f"/v1/proposals/{pid}/measurements", measure), 422, "value")


def test_responses_are_strict_json(services):
    pid = created(services)
    for path in (f"/v1/proposals/{pid}", "/v1/proposals?limit=5"):
        response = services.get("proposals", path)
        assert response.status_code == 200
        strict_json(response.text)


# Finding 7: 500s on bad input --------------------------------------------------------------------
@pytest.mark.parametrize(
    "route",
    [
        "/v1/proposals",
        "/v1/proposals/{pid}/revise",
        "/v1/proposals/{pid}/withdraw",
        "/v1/proposals/{pid}/pilot/start",
        "/v1/proposals/{pid}/measurements",
        "/v1/proposals/{pid}/pilot/complete",
    ],
)
def test_deeply_nested_json_is_a_400_on_every_route_with_a_body(services, route):
    path = route.format(pid=str(uuid.uuid4()))
    for body in (b"[" * 1000 + b"]" * 1000, b'{"title": ' * 5000 + b"1" + b"}" * 5000):
        assert_error(post_raw(services, path, body), 400, "(body)")


def test_lone_surrogates_and_nul_are_refused_naming_the_field(services):
    surrogate = json.dumps(submission()).replace('"Kera school"', '"Kera \\ud800 school"')
    assert_error(post_raw(services, "/v1/proposals", surrogate), 422, "partners.0")
    nul = services.post("proposals", "/v1/proposals", submission(title="Title with \x00 inside"))
    assert_error(nul, 422, "title")
    key = '{"\\udfff": 1}'
    assert_error(post_raw(services, "/v1/proposals", key), 422)


def test_an_integer_of_5000_digits_is_a_400(services):
    body = json.dumps(submission()).replace('"duration_weeks": 26', '"duration_weeks": ' + "9" * 5000)
    assert_error(post_raw(services, "/v1/proposals", body), 400, "(body)")


@pytest.mark.parametrize(
    "query, field",
    [
        ("q=%00", "q"),
        ("year=12345678901234567890", "year.0"),
        ("year=2026,-3", "year.1"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=W10", "cursor"),  # "[]"
        ("cursor=eyJvIjogLTV9&q=pilot", "cursor"),  # {"o": -5}
        ("cursor=eyJwIjogWzFdLCAiaWQiOiB7fX0", "cursor"),  # {"p": [1], "id": {}}
        ("cursor=eyJ0IjogMX0&sort=title", "cursor"),  # {"t": 1}
        ("cursor=%C3%A4%C3%A4", "cursor"),
        ("limit=1e3", "limit"),
    ],
)
def test_catalogue_search_refuses_bad_query_parameters_with_422(services, query, field):
    assert_error(services.get("catalogue", f"/v1/results?{query}"), 422, field)


def test_a_query_string_that_is_not_utf8_is_a_400(services):
    # Found by the fuzz suite: raw bytes that are not UTF-8 in the query string were a 500.
    answer = raw_exchange(
        services,
        "proposals",
        b"GET /v1/proposals?status=%\x80 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Connection: close\r\nAuthorization: " + AUTH["Authorization"].encode() + b"\r\n\r\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert "(query)" in strict_json(body.decode())["error"]["fields"]


def test_list_and_path_values_with_nul_are_refused(services):
    assert_error(services.get("proposals", "/v1/proposals?cursor=%00"), 422, "cursor")
    assert_error(services.get("proposals", "/v1/proposals/ab%00cd"), 422, "proposal_id")
    assert_error(services.get("catalogue", "/v1/results/" + "x" * 300), 422, "proposal_id")


# A transient store failure is a 503 with Retry-After ----------------------------------------------
def test_a_locked_store_answers_503_with_retry_after(services):
    db = sqlite3.connect(services.tmp / "data" / "proposals.db", timeout=5, isolation_level=None)
    try:
        db.execute("BEGIN EXCLUSIVE")
        response = services.post("proposals", "/v1/proposals", submission(title="While the store is locked"))
    finally:
        db.execute("ROLLBACK")
        db.close()
    error = assert_error(response, 503)
    assert error["code"] == "unavailable" and response.headers["Retry-After"] == "1"
    assert services.post("proposals", "/v1/proposals", submission(title="After the lock")).status_code == 201


# Finding 9: no server timeouts ------------------------------------------------------------------
def test_a_slow_header_client_is_closed_after_the_header_timeout(services):
    started = time.monotonic()
    got = raw_exchange(services, "proposals", b"GET /v1/proposals HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    took = time.monotonic() - started
    assert got == b"" and 1.5 <= took < 12, (got, took)  # closed by the server (timeout 2 s), not by our wait


def test_a_silent_connection_is_closed_after_the_header_timeout(services):
    started = time.monotonic()
    assert raw_exchange(services, "proposals", b"") == b""
    assert time.monotonic() - started < 12


def test_a_body_announced_but_not_sent_times_out_with_408(services):
    head = (
        b"POST /v1/proposals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-admin-token\r\n"
        b'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"title": '
    )
    started = time.monotonic()
    got = raw_exchange(services, "proposals", head)
    assert time.monotonic() - started < 12
    assert got.startswith(b"HTTP/1.1 408"), got
    assert strict_json(got.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: 2\r\nContent-Length: 2\r\n",
        b"Content-Length: 2\r\nContent-Length: 3\r\n",
        b"Content-Length: 2, 2\r\n",
        b"Content-Length: +2\r\n",
        b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
    ],
)
def test_duplicated_or_conflicting_content_length_is_a_400(services, headers):
    got = raw_exchange(services, "proposals", b"POST /v1/proposals HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n{}")
    assert got.startswith(b"HTTP/1.1 400"), got
    assert "error" in strict_json(got.split(b"\r\n\r\n", 1)[1])


@pytest.mark.parametrize(
    "request_line, says",
    [
        (b"POST /v1/proposals HTTP/2.0", "unsupported HTTP version"),
        (b"POST /v1/proposals HTTP/1.x", "Bad request version"),
        (b"POST /v1/proposals", "Bad HTTP/0.9 request type"),
        (b"POST / v1/proposals HTTP/1.1", "Bad request syntax"),
    ],
)
def test_a_malformed_request_line_is_a_400_saying_what_is_wrong(services, request_line, says):
    got = raw_exchange(services, "proposals", request_line + b"\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    assert got.startswith(b"HTTP/1.1 400"), got
    assert says in strict_json(got.split(b"\r\n\r\n", 1)[1])["error"]["message"]


def test_folded_and_plain_headers_are_read_alike(services):
    """A folded header line (obsolete, but HTTP/1.1 servers read it) goes the email parser's way."""
    for folded in (b"", b"X-Note: one\r\n two\r\n"):
        got = raw_exchange(
            services,
            "proposals",
            b"GET /health/live HTTP/1.1\r\nHost: x\r\n" + folded + b"Connection: close\r\n\r\n",
        )
        assert got.startswith(b"HTTP/1.1 200"), got


def test_live_answers_with_many_idle_connections_open_and_excess_connections_get_a_fast_503(services):
    port = services.ports["proposals"]
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(60)]  # the limit is 20
    try:
        live = wait_until(
            lambda: requests.get(services.url("proposals", "/health/live"), timeout=3),
            timeout=10,
            what="/health/live to answer while 60 idle connections are open",
        )
        assert live.status_code == 200 and live.json() == {"status": "live", "service": "proposals"}
        busy = requests.get(services.url("proposals", "/v1/proposals"), headers=AUTH, timeout=5)
        assert_error(busy, 503)
        assert busy.headers["Retry-After"] == "1"
    finally:
        for s in idle:
            s.close()
    # The idle connections go; the service serves again.
    wait_until(
        lambda: services.get("proposals", "/v1/proposals?limit=1").status_code == 200,
        timeout=20,
        what="the service to serve again once the idle connections are closed",
    )


def test_a_chunked_body_is_a_411_and_an_unread_body_closes_the_connection(services):
    chunked = raw_exchange(
        services,
        "proposals",
        b"POST /v1/proposals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        b"test-admin-token\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    )
    assert chunked.startswith(b"HTTP/1.1 411"), chunked
    # A GET announcing a body it never sends: answered, then closed (not held waiting for the body).
    started = time.monotonic()
    unread = raw_exchange(
        services,
        "proposals",
        b"GET /v1/proposals?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: "
        b"Bearer test-admin-token\r\nContent-Length: 100000\r\n\r\nabc",
    )
    assert unread.startswith(b"HTTP/1.1 200") and b"Connection: close" in unread, unread
    assert time.monotonic() - started < 5


def test_a_kept_alive_connection_serves_again_and_is_closed_when_idle(services):
    request = b"GET /v1/proposals?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-admin-token\r\n\r\n"
    with socket.create_connection(("127.0.0.1", services.ports["proposals"]), timeout=20) as s:
        reader = s.makefile("rb")
        for _ in range(2):  # two requests on one connection
            s.sendall(request)
            status = reader.readline()
            assert status.startswith(b"HTTP/1.1 200"), status
            length = 0
            while (line := reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            strict_json(reader.read(length))
        started = time.monotonic()
        assert reader.read() == b""  # the server closes it: idle timeout 5 s
        assert 3 <= time.monotonic() - started < 15
