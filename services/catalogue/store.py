"""The catalogue store: entries (the facts per proposal) and the published results, searchable.

`results` holds one row per result in the catalogue, written in the same transaction as its
entry; full-text search runs on SQLite's FTS5 (`results_fts`, kept beside it) or on
PostgreSQL's full-text search over the same columns. The repository hides the difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from kokeilu.contracts import service_source
from kokeilu.contracts.evaluation import Decision
from kokeilu.contracts.proposals import PilotCompleted, ProposalSubmitted
from kokeilu.contracts.results import KpiPoint, Result, ResultWithdrawn, series_budget
from kokeilu.store import UnitOfWork, UtcDateTime, add_messaging_tables
from kokeilu.store.statements import dialect_insert, precompiled

from .domain import DailyKpi, Entry, Measurement, series_points
from .search import SearchPage, SearchQuery, search

metadata = sa.MetaData()
add_messaging_tables(metadata)

entries = sa.Table(
    "entries",
    metadata,
    sa.Column("proposal_id", sa.String(64), primary_key=True),
    sa.Column("proposal", sa.JSON(), nullable=True),
    sa.Column("screening_passed", sa.Boolean(), nullable=True),
    sa.Column("result", sa.JSON(), nullable=True),
    sa.Column("published_at", UtcDateTime(), nullable=True, index=True),
    sa.Column("facts", sa.JSON(), nullable=True),
    sa.Column("withdrawn", sa.JSON(), nullable=True),
)
results = sa.Table(
    "results",
    metadata,
    sa.Column("result_id", sa.String(64), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("lessons", sa.Text(), nullable=True),
    sa.Column("focus_area", sa.String(40), nullable=False, index=True),
    sa.Column("environment", sa.String(40), nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("outcome", sa.String(20), nullable=True),
    sa.Column("year", sa.Integer(), nullable=False, index=True),
    sa.Column("published_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("document", sa.JSON(), nullable=False),
)

# A KPI's measurements per UTC day (migration 0003): one row per result, KPI and day, whatever the
# number of measurements, each added by one upsert (record_measurement).
kpi_series = sa.Table(
    "kpi_series",
    metadata,
    sa.Column("result_id", sa.String(64), primary_key=True),
    sa.Column("kpi", sa.String(200), primary_key=True),
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("count", sa.Integer(), nullable=False),
    sa.Column("total", sa.Float(), nullable=False),
    sa.Column("min", sa.Float(), nullable=False),
    sa.Column("max", sa.Float(), nullable=False),
    sa.Column("last", sa.Float(), nullable=False),
    sa.Column("last_at", UtcDateTime(), nullable=False),
)

_TIMES = (
    "proposal_at",
    "first_seen_at",
    "screened_at",
    "passed_at",
    "decided_at",
    "closed_at",
    "started_at",
    "started_event_at",
    "completed_event_at",
)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _time(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def entry_to_json(e: Entry) -> dict[str, Any]:
    return {
        **{name: _iso(getattr(e, name)) for name in _TIMES},
        "screening_passed": e.screening_passed,
        "ever_passed": e.ever_passed,
        "decision": e.decision.value if e.decision else None,
        "rationale": e.rationale,
        "closed": e.closed,
        "weighted_score": e.weighted_score,
        "criterion_averages": e.criterion_averages,
        "measurements": {
            k: {"value": m.value, "measured_at": m.measured_at.isoformat(), "id": m.measurement_id}
            for k, m in sorted(e.measurements.items())
        },
        "completion": e.completion.model_dump(mode="json") if e.completion else None,
    }


def entry_from_row(row: sa.Row[Any]) -> Entry:
    proposal = ProposalSubmitted.model_validate(row.proposal) if row.proposal else None
    result = Result.model_validate(row.result) if row.result else None
    withdrawn = ResultWithdrawn.model_validate(row.withdrawn) if row.withdrawn else None
    f = row.facts
    if f is None:  # a row from the first release: a proposal, its screening and maybe its result
        at = result.published_at if result else None
        return Entry(
            proposal_id=row.proposal_id,
            proposal=proposal,
            screening_passed=row.screening_passed,
            ever_passed=bool(row.screening_passed),
            passed_at=at,
            proposal_at=at,
            first_seen_at=at or (proposal.submitted_at if proposal else None),
            result=result,
        )
    return Entry(
        proposal_id=row.proposal_id,
        proposal=proposal,
        **{name: _time(f.get(name)) for name in _TIMES},
        screening_passed=f.get("screening_passed"),
        ever_passed=bool(f.get("ever_passed")),
        decision=Decision(f["decision"]) if f.get("decision") else None,
        rationale=f.get("rationale"),
        weighted_score=f.get("weighted_score"),
        criterion_averages=f.get("criterion_averages"),
        closed=f.get("closed"),
        measurements={
            k: Measurement(m["value"], datetime.fromisoformat(m["measured_at"]), m["id"])
            for k, m in (f.get("measurements") or {}).items()
        },
        completion=PilotCompleted.model_validate(f["completion"]) if f.get("completion") else None,
        result=result,
        withdrawn=withdrawn,
    )


def result_row(r: Result) -> dict[str, Any]:
    return dict(
        title=r.title,
        summary=r.summary,
        lessons=r.lessons_learned,
        focus_area=r.focus_area.value,
        environment=r.environment.value,
        status=r.status.value,
        outcome=r.outcome.value if r.outcome else None,
        year=r.published_at.year,
        published_at=r.published_at,
        updated_at=r.updated_at,
        document=r.model_dump(mode="json"),
    )


# Statements built once: SQLAlchemy then only binds each call's values (a consumed event runs them all).
_UPDATE_ENTRY = entries.update().where(entries.c.proposal_id == sa.bindparam("_id"))
_ENTRY = sa.select(entries).where(entries.c.proposal_id == sa.bindparam("id"))
_ENTRIES = sa.select(entries).where(entries.c.proposal_id.in_(sa.bindparam("ids", expanding=True)))
_DOCUMENTS = sa.select(results.c.result_id, results.c.document).where(
    results.c.result_id.in_(sa.bindparam("ids", expanding=True))
)
_DELETE_RESULT = results.delete().where(results.c.result_id == sa.bindparam("id"))
_DELETE_FTS = sa.text("DELETE FROM results_fts WHERE result_id = :id")
_INSERT_FTS = sa.text(
    "INSERT INTO results_fts (result_id, title, summary, lessons) VALUES (:id, :title, :summary, :lessons)"
)


def _upsert_measurement(dialect: str) -> sqlite.Insert | postgresql.Insert:
    """INSERT ... ON CONFLICT DO UPDATE (SQLite and PostgreSQL alike): the day's row is created or
    added to in one statement; `last` is the value measured latest (ties: the later arrival)."""
    insert = dialect_insert(dialect, kpi_series)
    new, old = insert.excluded, kpi_series.c
    later = new.last_at >= old.last_at
    return insert.on_conflict_do_update(
        index_elements=[old.result_id, old.kpi, old.day],
        set_={
            "count": old.count + 1,
            "total": old.total + new.total,
            "min": sa.case((new.min < old.min, new.min), else_=old.min),
            "max": sa.case((new.max > old.max, new.max), else_=old.max),
            "last": sa.case((later, new.last), else_=old.last),
            "last_at": sa.case((later, new.last_at), else_=old.last_at),
        },
    )


# Not cached by SQLAlchemy (INSERT ... ON CONFLICT): compiled once (it runs for every measurement).
_UPSERT = precompiled(_upsert_measurement)
_SERIES = (
    sa.select(kpi_series)
    .where(kpi_series.c.result_id == sa.bindparam("id"))
    .order_by(kpi_series.c.kpi, kpi_series.c.day)
)


class EntryRepository:
    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.is_sqlite = conn.dialect.name == "sqlite"
        self._stored: set[str] = set()  # the entries this unit of work found or wrote

    def get(self, proposal_id: str) -> Entry:
        row = self.conn.execute(_ENTRY, {"id": proposal_id}).first()
        return Entry(proposal_id) if row is None else entry_from_row(row)

    def get_many(self, proposal_ids: Iterable[str]) -> dict[str, Entry]:
        wanted = {proposal_id: Entry(proposal_id) for proposal_id in proposal_ids}
        if wanted:
            for row in self.conn.execute(_ENTRIES, {"ids": list(wanted)}):
                wanted[row.proposal_id] = entry_from_row(row)
                self._stored.add(row.proposal_id)
        return wanted

    def save_many(self, changes: Sequence[tuple[Entry, Entry | None]]) -> None:
        """Store each changed entry, given with the entry as `get_many` returned it in this unit
        of work (or None), in one statement per kind of write for them all: the entries that
        `get_many` found (or this unit of work wrote) are updated, the others inserted. The
        published results that changed are written to `results` (and, on SQLite, its FTS5 index)
        in the same transaction: when a result is the one `get_many` read, the index holds it
        already (most facts change no public field)."""
        if not changes:
            return
        updates: list[dict[str, Any]] = []
        inserts: list[dict[str, Any]] = []
        for e, _ in changes:
            values = dict(
                proposal=e.proposal.model_dump(mode="json") if e.proposal else None,
                screening_passed=e.screening_passed,
                result=e.result.model_dump(mode="json") if e.result else None,
                published_at=e.result.published_at if e.result else None,
                facts=entry_to_json(e),
                withdrawn=e.withdrawn.model_dump(mode="json") if e.withdrawn else None,
            )
            if e.proposal_id in self._stored:
                updates.append({**values, "_id": e.proposal_id})
            else:
                inserts.append({**values, "proposal_id": e.proposal_id})
                self._stored.add(e.proposal_id)
        if updates:
            self.conn.execute(_UPDATE_ENTRY, updates)
        if inserts:
            self.conn.execute(entries.insert(), inserts)
        self._index({e.proposal_id: e.result for e, before in changes if before is None or before.result != e.result})

    def _index(self, changed: dict[str, Result | None]) -> None:
        """Keep `results` (and, on SQLite, its FTS5 index) in step with the entries' results."""
        if not changed:
            return
        stored = {row.result_id: row.document for row in self.conn.execute(_DOCUMENTS, {"ids": list(changed)})}
        written = {rid: r for rid, r in changed.items() if r is None or stored.get(rid) != r.model_dump(mode="json")}
        gone = [{"id": rid} for rid in written if rid in stored]
        new = {rid: r for rid, r in written.items() if r is not None}
        if gone:
            self.conn.execute(_DELETE_RESULT, gone)
            if self.is_sqlite:
                self.conn.execute(_DELETE_FTS, gone)
        if new:
            self.conn.execute(results.insert(), [{**result_row(r), "result_id": rid} for rid, r in new.items()])
            if self.is_sqlite:
                self.conn.execute(
                    _INSERT_FTS,
                    [
                        {"id": rid, "title": r.title, "summary": r.summary, "lessons": r.lessons_learned or ""}
                        for rid, r in new.items()
                    ],
                )

    def record_measurement(self, result_id: str, kpi: str, value: float, measured_at: datetime) -> None:
        """Add one measurement to its KPI's day (UTC): one statement, whatever the day held."""
        at = measured_at.astimezone(UTC)
        self.conn.execute(
            _UPSERT[self.conn.dialect.name],
            {
                "result_id": result_id,
                "kpi": kpi,
                "day": at.date(),
                "count": 1,
                "total": value,
                "min": value,
                "max": value,
                "last": value,
                "last_at": at,
            },
        )

    def daily(self, result_id: str) -> dict[str, list[DailyKpi]]:
        """Every KPI's days, by KPI name, oldest first."""
        out: dict[str, list[DailyKpi]] = {}
        for r in self.conn.execute(_SERIES, {"id": result_id}):
            out.setdefault(r.kpi, []).append(DailyKpi(r.day, r._mapping["count"], r.total, r.min, r.max, r.last))
        return out

    def series(self, result_id: str, kpis: int = 1) -> dict[str, list[KpiPoint]]:
        """Every KPI's series as a result of `kpis` KPIs carries it (contracts.results.series_budget)."""
        return {kpi: series_points(days, series_budget(kpis)) for kpi, days in self.daily(result_id).items()}

    def search(self, query: SearchQuery) -> SearchPage:
        return search(self.conn, results, query)

    def all_results(self) -> list[Result]:
        rows = self.conn.execute(
            sa.select(results.c.document).order_by(results.c.published_at.desc(), results.c.result_id.desc())
        )
        return [Result.model_validate(r.document) for r in rows]

    def languages(self) -> dict[str, str]:
        """The language each published result's title and summary are written in (its proposal's), by id."""
        rows = self.conn.execute(
            sa.select(entries.c.proposal_id, entries.c.proposal).join(
                results, results.c.result_id == entries.c.proposal_id
            )
        )
        return {
            row.proposal_id: row.proposal["language"]
            for row in rows
            if isinstance(row.proposal, dict) and row.proposal.get("language")
        }

    def count_entries(self) -> int:
        return self.conn.execute(sa.select(sa.func.count()).select_from(entries)).scalar_one()

    def count_published(self) -> int:
        return self.conn.execute(sa.select(sa.func.count()).select_from(results)).scalar_one()


SOURCE = service_source("catalogue")  # <KOKEILU_EVENT_SOURCE_BASE>services/catalogue


class CatalogueUnitOfWork(UnitOfWork):
    source = SOURCE  # of every event this service publishes

    def bind(self, conn: sa.Connection) -> None:
        self.entries = EntryRepository(conn)

    def forget(self) -> None:
        """A level undone: what the repository knew of stored entries may be undone with it."""
        self.bind(self.conn)


class RebuildUnitOfWork(CatalogueUnitOfWork):
    """A unit of work that records nothing to publish: a rebuild reproduces the read model from
    the topics, and the events it derives were published long ago by the live service."""

    discarded = 0

    def record_json(self, event_type: str, key: str | None, value: bytes, traceparent: str | None) -> None:
        # emit and publish end here
        RebuildUnitOfWork.discarded += 1
