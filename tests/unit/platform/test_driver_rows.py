"""driver_rows: a read through the driver's cursor, its parameters named as sa.text names them."""

from __future__ import annotations

import pytest

from kokeilu.store import Database
from kokeilu.store.statements import as_list, driver_rows, one_of


@pytest.fixture
def conn(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    with db.transaction() as c:
        c.exec_driver_sql("CREATE TABLE t (k INTEGER, name TEXT, data BLOB)")
        c.exec_driver_sql("INSERT INTO t VALUES (1, 'a', x'01'), (2, 'b%', x'02'), (3, 'c', NULL)")
        yield c
    db.dispose()


def test_rows_come_back_as_the_drivers_tuples_with_parameters_bound_by_name(conn):
    sql = (
        f"SELECT k, name, data FROM t WHERE {one_of('sqlite', 'k', 'keys')} AND k >= :low AND k <= :low + 5 ORDER BY k"
    )
    rows = driver_rows(conn, sql, {"low": 2, "keys": as_list("sqlite", [1, 2, 3])})
    assert rows == [(2, "b%", b"\x02"), (3, "c", None)]
    assert all(type(r) is tuple for r in rows)


def test_colons_that_are_not_parameters_are_left_as_they_are(conn):
    rows = driver_rows(conn, "SELECT '10:30', k FROM t WHERE name LIKE :pattern", {"pattern": "b%"})
    assert rows == [("10:30", 2)]
