"""Searching the catalogue: full text, filters, facets, sorting and cursor pagination.

Full text runs on SQLite FTS5 (`results_fts`) or on PostgreSQL full-text search
(`to_tsvector('simple', ...)` with `plainto_tsquery`), chosen by the connection's dialect.
The cursor is opaque to clients: the sort key of the last item (keyset), or an offset for
relevance, whose scores are not stable keys.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from kokeilu.contracts.bounds import Id, text
from kokeilu.contracts.proposals import Environment, FocusArea, PilotOutcome
from kokeilu.contracts.results import Result, ResultStatus

FACETS = ("focus_area", "environment", "status", "outcome", "year")


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [v for v in (p.strip() for p in value.split(",")) if v]
    return value


class SearchQuery(BaseModel):
    """`GET /v1/results` query: every filter takes one value or a comma-separated list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    q: text(200) | None = None
    focus_area: list[FocusArea] = Field(default_factory=list, max_length=10)
    environment: list[Environment] = Field(default_factory=list, max_length=10)
    outcome: list[PilotOutcome] = Field(default_factory=list, max_length=10)
    status: list[ResultStatus] = Field(default_factory=list, max_length=10)
    year: list[Annotated[int, Field(ge=1, le=9999)]] = Field(default_factory=list, max_length=50)
    sort: Literal["newest", "title", "relevance"] | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=500)

    @field_validator("focus_area", "environment", "outcome", "status", "year", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return _split(v)

    @field_validator("q")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v.strip() or None if v else None

    @property
    def order(self) -> str:
        if self.sort:
            return self.sort
        return "relevance" if self.q else "newest"


class ResultPage(BaseModel):
    """`GET /v1/results`: what the route answers for a SearchPage (described in the OpenAPI document)."""

    model_config = ConfigDict(extra="forbid")

    items: list[Result]
    total: int = Field(description="How many results match, over every page.")
    facets: dict[str, dict[str, int]] = Field(
        description="Counts by value of each of " + ", ".join(f"`{f}`" for f in FACETS) + ", over the matches."
    )
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page; null on the last one.")


@dataclass(frozen=True)
class SearchPage:
    items: list[Result]
    total: int
    facets: dict[str, dict[str, int]]
    next_cursor: str | None


class BadCursor(ValueError):
    pass


class _Cursor(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NewestCursor(_Cursor):
    p: AwareDatetime
    id: Id


class TitleCursor(_Cursor):
    t: text(200)
    id: Id


class RelevanceCursor(_Cursor):
    o: int = Field(ge=0, le=1_000_000)


CURSORS: dict[str, type[_Cursor]] = {"newest": NewestCursor, "title": TitleCursor, "relevance": RelevanceCursor}


def encode_cursor(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(value, dict):
            raise ValueError
        return value
    except ValueError:
        raise BadCursor("not a cursor this API gave out") from None


def _fts_terms(q: str) -> str:
    """The words of `q` as FTS5 phrase tokens: no operator in a user's text is interpreted."""
    return " ".join('"' + w.replace('"', '""') + '"' for w in q.split())


def _text_match(conn: sa.Connection, results: sa.Table, q: str) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[Any]]:
    """(where clause, relevance expression; higher is better)."""
    if conn.dialect.name == "sqlite":
        hits = (
            sa.select(sa.literal_column("result_id"), sa.literal_column("bm25(results_fts)").label("score"))
            .select_from(sa.text("results_fts"))
            .where(sa.text("results_fts MATCH :terms").bindparams(terms=_fts_terms(q)))
            .subquery()
        )
        rank = sa.select(-hits.c.score).where(hits.c.result_id == results.c.result_id).scalar_subquery()
        return results.c.result_id.in_(sa.select(hits.c.result_id)), rank
    # The same expression as the GIN index of migration 0002, so that the index serves it.
    document: sa.ColumnElement[Any] = sa.literal_column(
        "to_tsvector('simple', results.title || ' ' || results.summary || ' ' || coalesce(results.lessons, ''))"
    )
    tsquery = sa.func.plainto_tsquery("simple", q)
    return document.op("@@")(tsquery), sa.func.ts_rank(document, tsquery)


def search(conn: sa.Connection, results: sa.Table, query: SearchQuery) -> SearchPage:
    where: list[sa.ColumnElement[bool]] = []
    for name in ("focus_area", "environment", "outcome", "status"):
        values = getattr(query, name)
        if values:
            where.append(results.c[name].in_([v.value for v in values]))
    if query.year:
        where.append(results.c.year.in_(query.year))
    rank = None
    if query.q:
        match, rank = _text_match(conn, results, query.q)
        where.append(match)

    total = conn.execute(sa.select(sa.func.count()).select_from(results).where(*where)).scalar_one()
    facets: dict[str, dict[str, int]] = {}
    for name in FACETS:
        column = results.c[name]
        counted = conn.execute(
            sa.select(column, sa.func.count()).where(*where, column.is_not(None)).group_by(column).order_by(column)
        )
        facets[name] = {str(value): count for value, count in counted}

    order = query.order if (query.order != "relevance" or rank is not None) else "newest"
    cursor = read_cursor(query.cursor, order) if query.cursor else None
    select = sa.select(results.c.document, results.c.result_id, results.c.title, results.c.published_at).where(*where)
    offset = 0
    if order == "newest":
        select = select.order_by(results.c.published_at.desc(), results.c.result_id.desc())
        if isinstance(cursor, NewestCursor):
            at, rid = cursor.p, cursor.id
            select = select.where(
                sa.or_(results.c.published_at < at, sa.and_(results.c.published_at == at, results.c.result_id < rid))
            )
    elif order == "title":
        select = select.order_by(results.c.title, results.c.result_id)
        if isinstance(cursor, TitleCursor):
            title, rid = cursor.t, cursor.id
            select = select.where(
                sa.or_(results.c.title > title, sa.and_(results.c.title == title, results.c.result_id > rid))
            )
    else:
        assert rank is not None  # relevance is the order only with a text query
        select = select.order_by(rank.desc(), results.c.published_at.desc(), results.c.result_id.desc())
        offset = cursor.o if isinstance(cursor, RelevanceCursor) else 0
        select = select.offset(offset)
    rows = list(conn.execute(select.limit(query.limit + 1)))
    more, rows = len(rows) > query.limit, rows[: query.limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = encode_cursor(
            {
                "newest": {"p": last.published_at.isoformat(), "id": last.result_id},
                "title": {"t": last.title, "id": last.result_id},
                "relevance": {"o": offset + len(rows)},
            }[order]
        )
    return SearchPage([Result.model_validate(r.document) for r in rows], total, facets, next_cursor)


def read_cursor(cursor: str, order: str) -> _Cursor:
    """The cursor of a page in `order`; BadCursor if it is not one this API gave out for that order."""
    try:
        return CURSORS[order].model_validate(decode_cursor(cursor))
    except ValidationError:
        raise BadCursor("not a cursor of this sort order") from None
