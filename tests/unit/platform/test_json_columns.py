"""JSON columns are written by kokeilu.store.database.json_text (pydantic-core) instead of
json.dumps: what is read back must be what json.dumps would have stored."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from kokeilu.store.database import json_text

SCALARS = st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.floats() | st.text()
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)


def same(a, b) -> bool:
    """Equal, NaN equal to NaN (json.dumps writes it as NaN, and so does json_text)."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=500, deadline=None)
@given(VALUES)
def test_a_value_reads_back_as_json_dumps_would_have_stored_it(value):
    assert same(json.loads(json_text(value)), json.loads(json.dumps(value)))


def test_text_is_stored_as_utf_8_and_compact():
    assert json_text({"title": "Kävelyreitti", "n": [1, 2]}) == '{"title":"Kävelyreitti","n":[1,2]}'
