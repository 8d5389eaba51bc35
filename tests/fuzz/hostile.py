"""Hypothesis strategies for hostile HTTP requests against every Kokeilu route with a body or a
query: non-finite and huge numbers, huge strings and lists, deep nesting, lone surrogates, NUL,
wrong types, garbage bytes, duplicated and conflicting framing headers, garbage request lines.

A request is built as raw bytes (so nothing a client library would refuse is left out)."""

from __future__ import annotations

import json
import random
import re
import urllib.parse
from dataclasses import dataclass

from hypothesis import strategies as st

from tests.builders import submission
from tests.support import TOKEN

# Raw JSON tokens that json.dumps cannot write: placeholders are swapped for them after dumping.
RAW_TOKENS = {
    "__1E400__": "1e400",
    "__NEG1E400__": "-1e400",
    "__BIGINT__": "9" * 5000,
    "__20DIGITS__": "12345678901234567890",
}

hostile_numbers = st.sampled_from(
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        "__1E400__",
        "__NEG1E400__",
        "__BIGINT__",
        "__20DIGITS__",
        1e308,
        -1e308,
        1e16,
        -0.0,
        10**30,
        -(10**30),
        2**63,
        -1,
        0,
        5,
        6,
        3.5,
    ]
)
hostile_strings = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "\ud800",
            "x\udfffy",
            "\ufeff",
            "%00",
            "'; DROP TABLE x; --",
            "<script>",
            "{{7*7}}",
            "../../etc/passwd",
            "\u202e",
            "NaN",
            "Infinity",
            "null",
            "true",
            "2026-13-45T99:99:99Z",
            "not-an-email",
            "@@",
            "http://127.0.0.1:1/",
            "javascript:alert(1)",
        ]
    ),
    st.integers(min_value=201, max_value=700_000).map(lambda n: "x" * n),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "ä€😀\x01"[n % 4] * n),
    st.text(max_size=40),
)
wrong_types = st.sampled_from([None, True, False, [], {}, [[]], {"a": {}}, 0, "", [None], {"": None}])


def nested(depth: int) -> str:
    """A placeholder for `depth` levels of arrays and objects (written raw: json.dumps would recurse)."""
    return f"__DEEP_{depth}__"


def deep_json(depth: int) -> str:
    opens = "".join('{"k": ' if i % 2 else "[" for i in range(depth))
    closes = "".join("}" if i % 2 else "]" for i in reversed(range(depth)))
    return opens + '"x"' + closes


deep_values = st.sampled_from([10, 31, 33, 100, 961, 5000]).map(nested)
huge_lists = st.one_of(
    st.integers(min_value=31, max_value=100_000).map(lambda n: ["x"] * n),
    st.integers(min_value=31, max_value=2_000).map(
        lambda n: [{"name": "k", "unit": "u", "baseline": 0, "target": 1}] * n
    ),
)
hostile_values = st.one_of(
    hostile_numbers,
    hostile_strings,
    wrong_types,
    deep_values,
    huge_lists,
    st.lists(hostile_strings, max_size=5),
    st.dictionaries(hostile_strings, hostile_numbers, max_size=3),
)


@dataclass(frozen=True)
class Route:
    service: str
    method: str
    path: str  # {pid} / {sid} are filled in with a real or a hostile id
    body: dict | None = None  # a valid body, mutated by the strategies
    query: tuple[str, ...] = ()


SUBMISSION = submission(title="Fuzzed proposal")
ROUTES = [
    Route("proposals", "POST", "/v1/proposals", SUBMISSION),
    Route(
        "proposals",
        "GET",
        "/v1/proposals",
        query=("status", "focus_area", "environment", "submitted_from", "submitted_to", "limit", "cursor"),
    ),
    Route("proposals", "GET", "/v1/proposals/{pid}"),
    Route("proposals", "GET", "/v1/proposals/{pid}/measurements"),
    Route("proposals", "POST", "/v1/proposals/{pid}/revise", SUBMISSION),
    Route("proposals", "POST", "/v1/proposals/{pid}/withdraw", {"reason": "changed plans"}),
    Route("proposals", "POST", "/v1/proposals/{pid}/pilot/start", {"planned_end": "2027-06-01T00:00:00Z"}),
    Route(
        "proposals",
        "POST",
        "/v1/proposals/{pid}/measurements",
        {"kpi": "daily riders", "value": 12.5, "measured_at": "2026-11-28T10:00:00Z"},
    ),
    Route(
        "proposals",
        "POST",
        "/v1/proposals/{pid}/pilot/complete",
        {"outcome": "scale_up", "actual_kpis": [{"name": "daily riders", "actual": 180}], "lessons_learned": "ok"},
    ),
    Route("evaluation", "GET", "/v1/evaluations/queue"),
    Route("evaluation", "GET", "/v1/evaluations", query=("overdue",)),
    Route("evaluation", "GET", "/v1/evaluations/{pid}"),
    Route("evaluation", "POST", "/v1/evaluations/{pid}/conflict", {"conflict": False, "reason": "none"}),
    Route(
        "evaluation",
        "POST",
        "/v1/evaluations/{pid}/scores",
        {
            "scores": {"strategy_fit": 4, "feasibility": 4, "impact": 5, "sustainability": 4, "reuse_scalability": 4},
            "comment": "fine",
        },
    ),
    Route(
        "notifications",
        "POST",
        "/v1/subscriptions",
        {
            "subscriber": "Fuzz dept",
            "channel": "email",
            "email": "fuzz@example.com",
            "mode": "daily_digest",
            "filter": {"types": ["fi.espoo.kokeilu.result.published"], "focus_areas": ["learning"]},
        },
    ),
    Route("notifications", "GET", "/v1/subscriptions"),
    Route("notifications", "PATCH", "/v1/subscriptions/{sid}", {"subscriber": "Renamed", "mode": "immediate"}),
    Route("notifications", "DELETE", "/v1/subscriptions/{sid}"),
    Route(
        "notifications",
        "GET",
        "/v1/deliveries",
        query=("subscription_id", "status", "channel", "event_type", "kind", "limit"),
    ),
    Route(
        "catalogue",
        "GET",
        "/v1/results",
        query=("q", "focus_area", "environment", "outcome", "status", "year", "sort", "limit", "cursor"),
    ),
    Route("catalogue", "GET", "/v1/results/{pid}"),
    Route("catalogue", "GET", "/results/{pid}"),
    Route("catalogue", "GET", "/results/{pid}.json"),
    Route("catalogue", "GET", "/results"),
    Route("catalogue", "GET", "/v1/catalog.jsonld"),
    Route("catalogue", "GET", "/v1/results.csv"),
]
JSON_ROUTES_200 = {r.path for r in ROUTES} - {"/results/{pid}", "/results", "/v1/results.csv"}

good_query_values = st.sampled_from(
    [
        "smart_mobility",
        "kera",
        "completed",
        "screening",
        "2026",
        "newest",
        "relevance",
        "title",
        "10",
        "true",
        "pilot",
        "2026-11-28T10:00:00Z",
        "webhook",
        "pending",
        "event",
    ]
)
query_values = st.one_of(
    good_query_values,
    hostile_strings.map(lambda s: s[:3000]),
    hostile_numbers.map(lambda n: str(RAW_TOKENS.get(n, n)) if isinstance(n, str) else str(n)),
    st.binary(max_size=30).map(lambda b: urllib.parse.quote_from_bytes(b)),
    st.sampled_from(["%", "%zz", "%00", "%ff%fe", "eyJvIjogLTF9", "W10", "e30", "eyJwIjpbMV19"]),
)


@dataclass
class Hostile:
    route: Route
    raw: bytes
    description: str

    def __repr__(self):
        return f"Hostile({self.route.method} {self.route.path}: {self.description}; {len(self.raw)} bytes)"


def dumps(value) -> bytes:
    text = json.dumps(value)  # NaN and Infinity as the bare tokens a hostile client sends
    for placeholder, token in RAW_TOKENS.items():
        text = text.replace(f'"{placeholder}"', token)
    text = re.sub(r'"__DEEP_(\d+)__"', lambda m: deep_json(int(m.group(1))), text)
    return text.encode("utf-8", "surrogatepass")


def paths_of(value, prefix=()):
    """Every place in a JSON value a hostile value can go."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths_of(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths_of(v, prefix + (i,))


def replaced(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = replaced(copy[head], rest, new)
    return copy


@st.composite
def bodies(draw, route: Route) -> tuple[bytes, str]:
    base = route.body or {}
    kind = draw(st.sampled_from(["mutate", "mutate", "mutate", "mutate", "extra", "whole", "garbage", "valid"]))
    if kind == "valid":
        return dumps(base), "valid body"
    if kind == "mutate" and base:
        path = draw(st.sampled_from(list(paths_of(base))[1:]))
        value = draw(hostile_values)
        return dumps(replaced(base, path, value)), f"{'.'.join(map(str, path))} = {repr(value)[:80]}"
    if kind == "extra":
        key = draw(hostile_strings.map(lambda s: s[:300]))
        return dumps({**base, key: draw(hostile_values)}), f"extra key {key[:40]!r}"
    if kind == "whole":
        value = draw(st.one_of(hostile_values, deep_values))
        return dumps(value), f"whole body {repr(value)[:80]}"
    raw = draw(
        st.one_of(
            st.binary(max_size=300),
            st.sampled_from(
                [
                    b"",
                    b"{",
                    b"}",
                    b"[" * 100_000,
                    b'{"a":' * 3000,
                    b"\xff\xfe\x00\x00",
                    b"\x00" * 100,
                    b'{"title": "\xed\xa0\x80"}',
                    b'{"title": "a"' + b', "title": "b"' * 1000 + b"}",
                    b"NaN",
                    b"1e400",
                    b'"\\ud800"',
                    b"  {}  x",
                ]
            ),
        )
    )
    return raw, f"garbage {raw[:40]!r}"


@st.composite
def hostile_requests(draw, pid: str, sid: str) -> Hostile:
    route = draw(st.sampled_from(ROUTES))
    described = []
    ident = draw(
        st.one_of(
            st.just(None),
            st.just(None),
            st.just(None),
            hostile_strings.map(lambda s: s[:9000]),
            st.sampled_from(["%00", "%ff", "..", "%2e%2e%2f", "a" * 300, "%C0%80"]),
        )
    )
    path = route.path.format(pid=pid, sid=sid)
    if ident is not None and "{" in route.path:
        segment = (
            ident if ident.startswith("%") else urllib.parse.quote(ident.encode("utf-8", "surrogatepass"), safe="")
        )
        path = route.path.format(pid=segment, sid=segment)
        described.append(f"id {ident[:30]!r}")
    params = []
    for _ in range(draw(st.integers(min_value=0, max_value=4 if route.query else 1))):
        name = draw(st.one_of(st.sampled_from(route.query or ("unknown",)), st.sampled_from(["", "%00", "x" * 300])))
        value = draw(query_values)
        encoded = (
            value
            if value.startswith("%") or value.startswith("ey")
            else urllib.parse.quote(value.encode("utf-8", "surrogatepass"), safe=",")
        )
        params.append(f"{name}={encoded}")
    if params:
        path += "?" + "&".join(params)
        described.append("query " + "&".join(params)[:100])
    body = b""
    if route.body is not None or draw(st.integers(min_value=0, max_value=9)) == 0:
        body, what = draw(bodies(route))
        described.append(what)
    method = route.method
    headers = [("Host", "127.0.0.1"), ("Connection", "close")]
    auth = draw(st.sampled_from(["admin"] * 8 + ["none", "garbage"]))
    if auth == "admin":
        headers.append(("Authorization", f"Bearer {TOKEN}"))
    elif auth == "garbage":
        headers.append(
            (
                "Authorization",
                draw(
                    st.sampled_from(
                        [
                            "Bearer",
                            "Basic x",
                            "Bearer " + "x" * 5000,
                            "bearer \u00e4\u00e4",
                            "Bearer test-admin-token, x",
                        ]
                    )
                ),
            )
        )
    headers.append(
        (
            "Content-Type",
            draw(
                st.sampled_from(
                    [
                        "application/json",
                        "text/plain",
                        "application/json; charset=latin-1",
                        "multipart/form-data; boundary=x",
                        "\u00e4",
                    ]
                )
            ),
        )
    )
    framing = draw(
        st.sampled_from(
            ["length"] * 10
            + ["dup-same", "dup-diff", "comma", "plus", "negative", "chunked", "chunked+length", "none", "huge"]
        )
    )
    if framing == "length":
        headers.append(("Content-Length", str(len(body))))
    elif framing == "dup-same":
        headers += [("Content-Length", str(len(body)))] * 2
    elif framing == "dup-diff":
        headers += [("Content-Length", str(len(body))), ("content-length", str(len(body) + 1))]
    elif framing == "comma":
        headers.append(("Content-Length", f"{len(body)}, {len(body)}"))
    elif framing == "plus":
        headers.append(("Content-Length", f"+{len(body)}"))
    elif framing == "negative":
        headers.append(("Content-Length", "-1"))
    elif framing == "huge":
        headers.append(("Content-Length", "99999999999999999999"))
    elif framing in ("chunked", "chunked+length"):
        headers.append(("Transfer-Encoding", "chunked"))
        if framing == "chunked+length":
            headers.append(("Content-Length", str(len(body))))
        body = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
    described.append(f"framing {framing}")
    if draw(st.integers(min_value=0, max_value=19)) == 0:
        headers += [("X-Junk", "x" * draw(st.sampled_from([100, 9000, 70_000])))]
        described.append("long header")
    line = f"{method} {path} HTTP/1.1"
    if draw(st.integers(min_value=0, max_value=29)) == 0:
        line = draw(
            st.sampled_from(
                [
                    f"{method} {path}",
                    f"{method}  {path} HTTP/1.1",
                    f"{method} {path} HTTP/9.9",
                    f"{method} {path} FOO",
                    f"BREW {path} HTTP/1.1",
                    f"{method} /{'a' * 9000} HTTP/1.1",
                    f"{method} {path} HTTP/1.1 extra",
                ]
            )
        )
        described.append(f"request line {line[:60]!r}")
    head = line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return Hostile(route, head.encode("latin-1", "replace") + body, "; ".join(described))


def sample_seed() -> int:
    return random.randrange(2**32)
