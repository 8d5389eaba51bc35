"""Statements compiled once, for the few that SQLAlchemy does not cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

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


def insert_new(table: sa.Table) -> dict[str, sa.TextClause]:
    """INSERT of a row unless one with its key is there already (rowcount 0 then), per dialect."""
    return precompiled(lambda dialect: dialect_insert(dialect, table).on_conflict_do_nothing())


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
