"""Keyset (cursor) pagination shared by the services' list queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa

_Row = TypeVar("_Row", bound=tuple[Any, ...])


def newest_first_after(
    conn: sa.Connection,
    query: sa.Select[_Row],
    time_col: sa.ColumnElement[datetime],
    id_col: sa.ColumnElement[str],
    after: str | None,
) -> sa.Select[_Row]:
    """Rows of `query` (ordered by `time_col` desc, `id_col` desc) strictly after the row whose id
    is `after`; stable under inserts, unlike an offset. An unknown cursor starts from the top."""
    if not after:
        return query
    anchor = conn.execute(sa.select(time_col).where(id_col == after)).scalar_one_or_none()
    if anchor is None:
        return query
    return query.where(sa.or_(time_col < anchor, sa.and_(time_col == anchor, id_col < after)))
