"""The web server reads a request's headers itself when they are plain `Name: value` lines
(kokeilu.http.server.parse_header_lines) and otherwise as the stdlib does: either way the
message must be the one http.client.parse_headers makes of the same bytes."""

from __future__ import annotations

import http.client
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kokeilu.http.server import parse_header_lines, read_header_lines

NAMES = st.sampled_from(["Content-Length", "Host", "Transfer-Encoding", "X-Odd", "content-length", "Expect"]) | st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"), min_size=1, max_size=12
)
VALUES = st.text(st.characters(min_codepoint=0, max_codepoint=0xFF), max_size=20)
ENDS = st.sampled_from(["\r\n", "\n"])
PLAIN = st.builds(
    lambda n, sep, v, end: f"{n}:{sep}{v}{end}", NAMES, st.sampled_from(["", " ", "  ", "\t"]), VALUES, ENDS
)
ODD = st.sampled_from(
    [
        " folded continuation\r\n",
        "\tfolded\r\n",
        "no colon here\r\n",
        ": empty name\r\n",
        "From someone\r\n",
        "Bad Name: x\r\n",
    ]
)


def stdlib(raw: bytes) -> http.client.HTTPMessage:
    return http.client.parse_headers(io.BytesIO(raw))


def ours(raw: bytes) -> http.client.HTTPMessage:
    return parse_header_lines(read_header_lines(io.BytesIO(raw)), http.client.HTTPMessage)


@settings(max_examples=1000, deadline=None)
@given(
    lines=st.lists(PLAIN | ODD, max_size=8), end=st.sampled_from(["\r\n", "\n", ""]), body=st.sampled_from(["", "{}"])
)
def test_headers_are_what_the_stdlib_makes_of_the_same_bytes(lines, end, body):
    raw = ("".join(lines) + end + body).encode("iso-8859-1")
    expected, got = stdlib(raw), ours(raw)
    assert got.items() == expected.items()
    for name in ("Content-Length", "Transfer-Encoding", "Connection", "Expect"):
        assert got.get_all(name) == expected.get_all(name)


def test_plain_headers_keep_their_order_case_and_duplicates():
    raw = b"Host: x\r\nContent-Length: 3\r\ncontent-length:  4 \r\n\r\n"
    message = ours(raw)
    assert message.items() == [("Host", "x"), ("Content-Length", "3"), ("content-length", "4 ")]
    assert message.get_all("Content-Length") == ["3", "4 "]


def test_the_stdlibs_limits_hold():
    with pytest.raises(http.client.LineTooLong):
        read_header_lines(io.BytesIO(b"X: " + b"a" * 70000 + b"\r\n\r\n"))
    with pytest.raises(http.client.HTTPException, match="more than 100 headers"):
        read_header_lines(io.BytesIO(b"X: a\r\n" * 101 + b"\r\n"))
