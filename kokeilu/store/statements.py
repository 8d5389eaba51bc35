"""Statements compiled once, for the few that SQLAlchemy does not cache."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.compiler import SQLCompiler

_DIALECTS = {"sqlite": sqlite.dialect, "postgresql": postgresql.dialect}
_INSERTS: dict[str, Callable[[sa.Table], sqlite.Insert | postgresql.Insert]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


def dialect_insert(dialect: str, table: sa.Table) -> sqlite.Insert | postgresql.Insert:
    """The dialect's own INSERT of `table` (by dialect name), which has `on_conflict_do_nothing()`
    and `on_conflict_do_update()`; run it through `precompiled`."""
    return _INSERTS[dialect](table)


def insert_new(conn: sa.Connection, table: sa.Table, row: Mapping[str, Any]) -> bool:
    """Insert `row` unless a row with its key is there already (ON CONFLICT DO NOTHING): True
    when it was inserted. One statement checks and writes: how the inboxes, the flows and the
    digest claim record "first time". On SQLite bound as insert_rows binds; on PostgreSQL the
    dialect's statement, compiled once."""
    names = tuple(row)
    if conn.dialect.name == "sqlite":
        sql, processors = _sqlite_insert(table, names, conn.dialect, " ON CONFLICT DO NOTHING")
        return conn.exec_driver_sql(sql, _bound(row, names, processors)).rowcount == 1
    statement = _NEW.get((table, names))
    if statement is None:
        statement = _NEW[(table, names)] = precompiled(
            lambda dialect: (
                dialect_insert(dialect, table).values({n: sa.bindparam(n) for n in names}).on_conflict_do_nothing()
            )
        )["postgresql"]
    return conn.execute(statement, row).rowcount == 1


_NEW: dict[tuple[sa.Table, tuple[str, ...]], sa.TextClause] = {}


def precompiled(build: Callable[[str], sa.ClauseElement]) -> dict[str, sa.TextClause]:
    """The statement `build(dialect name)` makes, compiled once per dialect (by name: "sqlite", "postgresql") to SQL text with
    named parameters, each typed as the column it is bound to, so values are converted as the
    statement itself would convert them.

    For statements SQLAlchemy compiles on every execution because they have no cache key (the
    dialects' INSERT ... ON CONFLICT): compiling one costs several times running it, which a
    consumer would pay for every record."""
    texts = {}
    for name, dialect in _DIALECTS.items():
        compiled = cast(SQLCompiler, build(name).compile(dialect=dialect(paramstyle="named")))
        binds = [
            sa.bindparam(key, bind.value, type_=bind.type)
            if bind.value is not None
            else sa.bindparam(key, type_=bind.type)
            for key, bind in ((compiled.bind_names[b], b) for b in compiled.binds.values())
        ]
        texts[name] = sa.text(compiled.string).bindparams(*binds)
    return texts


def one_of(dialect: str, column: str, parameter: str) -> str:
    """SQL saying `column` is one of the values of the list bound as `parameter` (see as_list):
    one parameter however long the list, so the statement's text is the same every time (an
    expanding IN renders, and SQLAlchemy processes, a placeholder per value on every call)."""
    if dialect == "sqlite":
        return f"{column} IN (SELECT value FROM json_each(:{parameter}))"
    return f"{column} = ANY(:{parameter})"


_Value = TypeVar("_Value", str, int)


def as_list(dialect: str, values: Sequence[_Value]) -> str | list[_Value]:
    """`values` (strings or integers) bound for one_of: a JSON array on SQLite, an array on PostgreSQL."""
    return json.dumps(list(values)) if dialect == "sqlite" else list(values)


def insert_rows(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` (mappings with the same keys) in order, in one statement.

    On SQLite each value is converted by its column type's own bind processor (exactly what
    SQLAlchemy would bind) and the rows go to the driver's executemany at once: for a batch of
    hundreds, SQLAlchemy's per-row parameter processing costs more than the insert itself. On
    PostgreSQL it is SQLAlchemy's Core insert, whose psycopg2 path sends many rows per statement."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(table.insert(), list(rows))
        return
    names = tuple(rows[0])
    sql, processors = _sqlite_insert(table, names, conn.dialect, "")
    conn.exec_driver_sql(sql, [_bound(row, names, processors) for row in rows])


def _bound(
    row: Mapping[str, Any], names: tuple[str, ...], processors: list[Callable[[Any], Any] | None]
) -> tuple[Any, ...]:
    """A row's values in the order of `names`, each converted as its column type binds it."""
    return tuple([row[n] if p is None else p(row[n]) for n, p in zip(names, processors, strict=True)])


_PREPARED: dict[tuple[sa.Table, tuple[str, ...], str], tuple[str, list[Callable[[Any], Any] | None]]] = {}


def _sqlite_insert(
    table: sa.Table, names: tuple[str, ...], dialect: sa.Dialect, suffix: str
) -> tuple[str, list[Callable[[Any], Any] | None]]:
    prepared = _PREPARED.get((table, names, suffix))
    if prepared is None:
        quote = dialect.identifier_preparer.quote
        sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
            f"VALUES ({', '.join('?' for _ in names)}){suffix}"
        )
        prepared = _PREPARED[(table, names, suffix)] = (
            sql,
            [table.c[n].type._cached_bind_processor(dialect) for n in names],
        )
    return prepared


_NAMED = re.compile(r"(?<![:\w]):(\w+)")
_DRIVER_SQL: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}


def driver_rows(conn: sa.Connection, sql: str, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of a read as the driver returns them (tuples), for a query run often whose
    hundreds of rows SQLAlchemy's result rows would cost more than the query itself (a third of
    it for the duplicate rule's index rows). `sql` names its parameters as sa.text does
    (`:name`); each is bound as given, unconverted (plain integers, strings, as_list lists)."""
    dialect = conn.dialect
    prepared = _DRIVER_SQL.get((dialect.name, sql))
    if prepared is None:
        names = tuple(_NAMED.findall(sql))
        if dialect.paramstyle == "qmark":
            prepared = (_NAMED.sub("?", sql), names)
        else:  # psycopg2: pyformat
            prepared = (_NAMED.sub(lambda m: f"%({m.group(1)})s", sql.replace("%", "%%")), ())
        _DRIVER_SQL[(dialect.name, sql)] = prepared
    text, order = prepared
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # a connection in use has its driver's
    try:
        cursor.execute(text, tuple(parameters[n] for n in order) if order else parameters)
        return cast(list[tuple[Any, ...]], cursor.fetchall())
    finally:
        cursor.close()
