"""How values are written to columns: JSON by kokeilu.store.database.json_text (pydantic-core)
instead of json.dumps, and times on SQLite by UtcDateTime's own bind processor: what is stored
must read back as what SQLAlchemy's own way would have stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from kokeilu.store.database import json_text, json_value
from kokeilu.store.tables import UtcDateTime

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


@settings(max_examples=500, deadline=None)
@given(VALUES)
def test_stored_text_reads_back_as_json_loads_reads_it(value):
    for text in (json.dumps(value), json_text(value)):  # rows from before, and from now on
        assert same(json_value(text), json.loads(text))


def test_text_is_stored_as_utf_8_and_compact():
    assert json_text({"title": "Kävelyreitti", "n": [1, 2]}) == '{"title":"Kävelyreitti","n":[1,2]}'


# UtcDateTime on SQLite: its own bind processor writes the text that its process_bind_param and
# SQLAlchemy's DATETIME would (times are compared as text there, so it must be the same text).
@settings(max_examples=500, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]),
    )
)
def test_a_time_is_stored_on_sqlite_as_sqlalchemys_datetime_stores_it(when):
    column = UtcDateTime()
    dialect = sqlite.dialect()
    expected = sa.DateTime()._cached_bind_processor(dialect)(column.process_bind_param(when, dialect))
    assert column._cached_bind_processor(dialect)(when) == expected
    assert column._cached_bind_processor(dialect)(None) is None


def test_a_naive_time_is_refused_on_sqlite_too():
    with pytest.raises(ValueError, match="naive"):
        UtcDateTime()._cached_bind_processor(sqlite.dialect())(datetime(2026, 1, 1))
