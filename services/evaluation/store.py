"""The evaluation store: screenings, the proposals evaluation knows of (for the duplicate rule),
evaluations and their assignments (panel, conflict declarations, score sheets)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from kokeilu.contracts import service_source
from kokeilu.contracts.evaluation import Decision, RuleFailure, ScreeningCompleted
from kokeilu.store import UnitOfWork, UtcDateTime, add_flows_table, add_messaging_tables
from kokeilu.store.statements import as_list, driver_rows, insert_rows, one_of

from .domain import Assignment, Evaluation, Outcome
from .screening import (
    index_rows_of,
    keys_of,
    lengths_within_reach,
    normalise_title,
    profile_of,
    reachable,
    within_reach,
)

metadata = sa.MetaData()
add_messaging_tables(metadata)
add_flows_table(metadata)

screenings = sa.Table(
    "screenings",
    metadata,
    sa.Column("proposal_id", sa.String(64), primary_key=True),
    sa.Column("focus_area", sa.String(40), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("passed", sa.Boolean(), nullable=False),
    sa.Column("failed_rules", sa.JSON(), nullable=False),
    sa.Column("submitted_at", UtcDateTime(), nullable=False),
    sa.Column("screened_at", UtcDateTime(), nullable=False),
    sa.Column("revision", sa.Integer(), nullable=False, server_default="1"),  # 0002
)

known_proposals = sa.Table(
    "known_proposals",
    metadata,
    sa.Column("proposal_id", sa.String(64), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("is_open", sa.Boolean(), nullable=False, index=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

# The near-duplicate index (0004, rebuilt by 0006): each OPEN known proposal under its
# screening.title_keys, each row with its title's screening.title_profile (what within_reach
# needs, so candidates are ruled out without reading their titles), kept in step with
# known_proposals in the same transaction (a closed proposal has no keys). Without a rowid on
# SQLite: the table is its primary key's B-tree, so a key's rows are read from the pages the
# key leads to and a new proposal writes one B-tree fewer. On PostgreSQL the primary key's
# index includes the profile (0007), so a key's rows are read from its leaf pages alone (an
# index-only scan) rather than each from a heap page of its own.
title_keys_table = sa.Table(
    "title_keys",
    metadata,
    sa.Column("key", sa.BigInteger(), autoincrement=False),
    sa.Column("proposal_id", sa.String(64)),
    # 0006; null in a row an instance of the release before wrote (a rolling upgrade)
    sa.Column("length", sa.Integer(), nullable=True),
    sa.Column("profile", sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint("key", "proposal_id", postgresql_include=["length", "profile"]),
    sqlite_with_rowid=False,
)
sa.Index("ix_title_keys_proposal", title_keys_table.c.proposal_id)

evaluations = sa.Table(
    "evaluations",
    metadata,
    sa.Column("proposal_id", sa.String(64), primary_key=True),
    sa.Column("revision", sa.Integer(), primary_key=True),
    sa.Column("focus_area", sa.String(40), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("budget_eur", sa.Float(), nullable=False),
    sa.Column("external_funding_sought", sa.Boolean(), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("opened_at", UtcDateTime(), nullable=False),
    sa.Column("due_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("overdue_at", UtcDateTime(), nullable=True),
    sa.Column("decided_at", UtcDateTime(), nullable=True),
    sa.Column("outcome", sa.JSON(none_as_null=True), nullable=True),
)

assignments = sa.Table(
    "assignments",
    metadata,
    sa.Column("proposal_id", sa.String(64), primary_key=True),
    sa.Column("revision", sa.Integer(), primary_key=True),
    sa.Column("evaluator", sa.String(200), primary_key=True),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("assigned_at", UtcDateTime(), nullable=False),
    sa.Column("recused", sa.Boolean(), nullable=False),
    sa.Column("conflict", sa.Boolean(), nullable=True),
    sa.Column("conflict_reason", sa.String(2000), nullable=True),
    sa.Column("declared_at", UtcDateTime(), nullable=True),
    sa.Column("scores", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("comment", sa.String(5000), nullable=True),
    sa.Column("scored_at", UtcDateTime(), nullable=True),
)
sa.Index("ix_assignments_evaluator", assignments.c.evaluator)

# Open, unscored, unrecused assignments per evaluator (what assign() balances), kept by every
# write of an evaluation in the same transaction: reading it costs the same with 10 or 100,000
# open evaluations (migration 0003 builds it from the rows above).
evaluator_workload = sa.Table(
    "evaluator_workload",
    metadata,
    sa.Column("evaluator", sa.String(200), primary_key=True),
    sa.Column("open_assignments", sa.Integer(), nullable=False),
)
_ADD_WORKLOAD = sa.text(
    "INSERT INTO evaluator_workload (evaluator, open_assignments) VALUES (:evaluator, :delta) "
    "ON CONFLICT (evaluator) DO UPDATE SET open_assignments = evaluator_workload.open_assignments + :delta"
)


# The statements a screening runs, built once: SQLAlchemy then only binds each call's values
# (building one per call, with .where(col == value), costs it more than executing it).
_DELETE_SCREENING = screenings.delete().where(screenings.c.proposal_id == sa.bindparam("_id"))
_INSERT_SCREENING = screenings.insert()
_SCREENING = sa.select(screenings).where(screenings.c.proposal_id == sa.bindparam("_id"))
_DELETE_KNOWN = known_proposals.delete().where(known_proposals.c.proposal_id == sa.bindparam("_id"))
_INSERT_KNOWN = known_proposals.insert()
_CLOSE_KNOWN = (
    known_proposals.update()
    .where(known_proposals.c.proposal_id == sa.bindparam("_id"))
    .values(is_open=False, updated_at=sa.bindparam("_now"))
)
_INSERT_EVALUATION = evaluations.insert()
_UPDATE_EVALUATION = evaluations.update().where(
    (evaluations.c.proposal_id == sa.bindparam("_id")) & (evaluations.c.revision == sa.bindparam("_revision"))
)
# An evaluation and its assignments (the join condition).
_ASSIGNED = (evaluations.c.proposal_id == assignments.c.proposal_id) & (
    evaluations.c.revision == assignments.c.revision
)
_PENDING = (
    sa.select(assignments.c.evaluator)
    .join(
        evaluations,
        _ASSIGNED,
    )
    .where(
        assignments.c.proposal_id == sa.bindparam("_id"),
        assignments.c.revision == sa.bindparam("_revision"),
        evaluations.c.status == "open",
        assignments.c.recused.is_(False),
        assignments.c.scored_at.is_(None),
    )
)
_OF_EVALUATION = (assignments.c.proposal_id == sa.bindparam("_id")) & (
    assignments.c.revision == sa.bindparam("_revision")
)
_DELETE_ASSIGNMENTS = assignments.delete().where(_OF_EVALUATION)
_INSERT_ASSIGNMENTS = assignments.insert()
_ASSIGNMENTS = sa.select(assignments).where(_OF_EVALUATION).order_by(assignments.c.position)
_CURRENT = (
    sa.select(evaluations)
    .where(evaluations.c.proposal_id == sa.bindparam("_id"))
    .order_by(evaluations.c.revision.desc())
    .limit(1)
)
_CURRENT_FOR_UPDATE = _CURRENT.with_for_update()


class ScreeningRepository:
    """Screenings are written when the unit of work commits (`flush`): a run of proposals
    screened together writes them in two statements, not two per proposal."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self._pending: dict[str, dict[str, Any]] = {}  # proposal id -> its latest screening's row

    def add(
        self, s: ScreeningCompleted, focus_area: str, title: str, submitted_at: datetime, revision: int = 1
    ) -> None:
        """The latest screening of a proposal (a revision replaces the one before)."""
        self._pending.pop(s.proposal_id, None)  # a later one goes after the others, as it would be written
        self._pending[s.proposal_id] = dict(
            proposal_id=s.proposal_id,
            focus_area=focus_area,
            title=title,
            passed=s.passed,
            failed_rules=[f.model_dump(mode="json") for f in s.failed_rules],
            submitted_at=submitted_at,
            screened_at=s.screened_at,
            revision=revision,
        )

    def flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = list(self._pending.values()), {}
        self.conn.execute(_DELETE_SCREENING, [{"_id": r["proposal_id"]} for r in rows])
        self.conn.execute(_INSERT_SCREENING, rows)

    def get(self, proposal_id: str) -> dict[str, Any] | None:
        self.flush()
        row = self.conn.execute(_SCREENING, {"_id": proposal_id}).first()
        if row is None:
            return None
        return {
            "proposal_id": row.proposal_id,
            "title": row.title,
            "focus_area": row.focus_area,
            "revision": row.revision,
            "screening": {
                "passed": row.passed,
                "failed_rules": [RuleFailure.model_validate(f).model_dump() for f in row.failed_rules],
                "screened_at": row.screened_at.isoformat(),
                "time_in_screening_seconds": (row.screened_at - row.submitted_at).total_seconds(),
            },
        }


_DELETE_KEYS = title_keys_table.delete().where(title_keys_table.c.proposal_id == sa.bindparam("id"))
# The index rows under a title's keys (each key's rows are together in the primary key); only
# open proposals have keys, and a proposal sharing several keys comes back once per key. The
# keys are one parameter, and the hundreds of rows come back as the driver's tuples
# (driver_rows), without SQLAlchemy's result rows (profile is bytes on SQLite, a memoryview
# from psycopg2).
_UNDER_KEYS = {
    dialect: f"SELECT proposal_id, length, profile FROM title_keys WHERE {one_of(dialect, 'key', 'keys')} "
    "AND (length BETWEEN :shortest AND :longest OR length IS NULL)"
    for dialect in ("sqlite", "postgresql")
}
# No condition on is_open here: with one, SQLite's planner may start from every open proposal
# (is_open is indexed) and the cost grows with them. The caller checks is_open anyway.
_TITLES = {
    dialect: "SELECT proposal_id, title, is_open FROM known_proposals "
    f"WHERE {one_of(dialect, 'proposal_id', 'ids')} ORDER BY proposal_id"
    for dialect in ("sqlite", "postgresql")
}


@dataclass(frozen=True)
class _Known:
    """A proposal as this unit of work last wrote it (not yet in the store): its title (None
    when it was only closed, so the stored title stays), whether it is open and since when."""

    title: str | None
    is_open: bool
    at: datetime


class KnownProposalRepository:
    """The proposals the duplicate rule compares with, and their titles' index.

    What a unit of work writes here is held until it commits (`flush`, in a few statements for
    a whole run of proposals), and its reads see it: `near_duplicate_candidates` answers from
    the store for the proposals this unit of work has not touched and from what it holds for
    the others, exactly as if each write had gone to the store at once."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self._pending: dict[str, _Known] = {}
        self._titles: dict[str, tuple[tuple[int, bytes], list[int]]] = {}  # title -> profile, keys

    def _indexed(self, title: str) -> tuple[tuple[int, bytes], list[int]]:
        """A title's profile and index keys, worked out once per unit of work (a screening asks
        for the candidates of a title, then indexes the same title)."""
        known = self._titles.get(title)
        if known is None:
            normalised = normalise_title(title)
            known = self._titles[title] = (profile_of(normalised), keys_of(normalised))
        return known

    def upsert(self, proposal_id: str, title: str, is_open: bool, now: datetime) -> None:
        """Remember a proposal's title and whether it is open; an open one is indexed under its
        title's keys (a changed title replaces them)."""
        self._pending[proposal_id] = _Known(title, is_open, now)

    def close(self, proposal_id: str, now: datetime) -> None:
        held = self._pending.get(proposal_id)
        self._pending[proposal_id] = _Known(held.title if held is not None else None, False, now)

    def flush(self) -> None:
        """Write what this unit of work holds: replaced rows and their keys in four statements,
        closed ones in two."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        written = [(pid, k) for pid, k in pending.items() if k.title is not None]
        closed = [{"_id": pid, "_now": k.at} for pid, k in pending.items() if k.title is None]
        if written:
            ids = [{"_id": pid} for pid, _ in written]
            self.conn.execute(_DELETE_KNOWN, ids)
            self.conn.execute(
                _INSERT_KNOWN,
                [dict(proposal_id=pid, title=k.title, is_open=k.is_open, updated_at=k.at) for pid, k in written],
            )
            self.conn.execute(_DELETE_KEYS, [{"id": pid} for pid, _ in written])
            keys = []
            for pid, k in written:
                if k.is_open:
                    assert k.title is not None  # written rows have their title
                    (length, counts), title_keys = self._indexed(k.title)
                    keys += index_rows_of(pid, length, counts, title_keys)
            insert_rows(self.conn, title_keys_table, keys)
        if closed:
            self.conn.execute(_CLOSE_KNOWN, closed)
            self.conn.execute(_DELETE_KEYS, [{"id": c["_id"]} for c in closed])

    def near_duplicate_candidates(self, title: str, similarity: float = 0.0) -> list[tuple[str, str]]:
        """Open proposals (id, title) that share an index key with `title` and whose titles'
        profiles do not rule out a difflib ratio of `similarity` with it: those the duplicate
        rule may find near-identical (screening.title_keys says how likely a miss is; the
        profiles miss nothing)."""
        dialect = self.conn.dialect.name
        profile, keys = self._indexed(title)
        shortest, longest = lengths_within_reach(profile[0], similarity)
        rows = driver_rows(
            self.conn,
            _UNDER_KEYS[dialect],
            {"keys": as_list(dialect, keys), "shortest": shortest, "longest": longest},
        )
        if self._pending:  # what this unit of work wrote of those is below
            rows = [r for r in rows if r[0] not in self._pending]
        ids = _reachable_ids(profile, rows, similarity)
        found = []
        if ids:
            found = [
                (pid, their_title)
                for pid, their_title, is_open in driver_rows(
                    self.conn, _TITLES[dialect], {"ids": as_list(dialect, ids)}
                )
                if is_open
            ]
        held = self._held_candidates(set(keys), profile, shortest, longest, similarity)
        return sorted(found + held) if held else found

    def _held_candidates(
        self, keys: set[int], profile: tuple[int, bytes], shortest: int, longest: int, similarity: float
    ) -> list[tuple[str, str]]:
        """The open proposals this unit of work wrote that the store's query would find."""
        shared = []
        for pid, k in self._pending.items():
            if k.is_open and k.title is not None:
                theirs, their_keys = self._indexed(k.title)
                if shortest <= theirs[0] <= longest and keys.intersection(their_keys):
                    shared.append((pid, k.title, theirs))
        reach = within_reach(profile, [p for _, _, p in shared], similarity)
        return [(pid, title) for (pid, title, _), ok in zip(shared, reach, strict=True) if ok]


def _reachable_ids(profile: tuple[int, bytes], rows: list[tuple[Any, ...]], similarity: float) -> list[str]:
    """The proposal ids of index rows (proposal_id, length, profile) whose titles' profiles do
    not rule out `similarity` with the title of `profile`, each once, in the rows' order."""
    if not rows:
        return []
    ids, lengths, counts = zip(*rows, strict=True)
    if None in counts:  # a row written by the release before 0006 has no profile: it cannot be ruled out
        known = [i for i, c in enumerate(counts) if c is not None]
        keep = [True] * len(ids)
        ok = reachable(profile, [lengths[i] for i in known], b"".join([counts[i] for i in known]), similarity)
        for i, reach in zip(known, ok.tolist(), strict=True):
            keep[i] = reach
    else:  # profile is bytes on SQLite, a memoryview from psycopg2: join takes both
        keep = reachable(profile, lengths, b"".join(counts), similarity).tolist()
    return list(dict.fromkeys(pid for pid, k in zip(ids, keep, strict=True) if k))


def _outcome_json(o: Outcome | None) -> dict[str, Any] | None:
    if o is None:
        return None
    return {
        "decision": o.decision.value,
        "weighted_score": o.weighted_score,
        "criterion_averages": o.criterion_averages,
        "disagreement": o.disagreement,
        "disagreement_on": list(o.disagreement_on),
        "external_funding_recommended": o.external_funding_recommended,
        "rationale": o.rationale,
    }


def _outcome_of(j: dict[str, Any] | None) -> Outcome | None:
    if not j:
        return None
    return Outcome(
        Decision(j["decision"]),
        j["weighted_score"],
        j["criterion_averages"],
        j["disagreement"],
        tuple(j["disagreement_on"]),
        j["external_funding_recommended"],
        j["rationale"],
    )


def _open_assignments(e: Evaluation) -> Counter[str]:
    """What an evaluation adds to each evaluator's workload: its open, unscored, unrecused places."""
    return Counter(a.evaluator for a in e.assignments if e.status == "open" and not a.recused and a.scored_at is None)


_ASSIGNMENT_FIELDS = tuple(f.name for f in fields(Assignment))  # each a column of `assignments`


def _assignment_rows(e: Evaluation) -> list[dict[str, Any]]:
    return [
        {"proposal_id": e.proposal_id, "revision": e.revision, "position": i}
        | {name: getattr(a, name) for name in _ASSIGNMENT_FIELDS}
        for i, a in enumerate(e.assignments)
    ]


class EvaluationRepository:
    """New evaluations are written when the unit of work commits (`flush`: a run of proposals'
    panels in a few statements); every other read or write writes them first, except the
    evaluators' workload, which this unit of work keeps up to date from what it opened."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self._new: list[Evaluation] = []
        self._workload: Counter[str] | None = None  # as the store would answer, once read

    def add(self, e: Evaluation) -> None:
        self._new.append(e)
        if self._workload is not None:
            self._workload.update(_open_assignments(e))

    def flush(self) -> None:
        if not self._new:
            return
        new, self._new = self._new, []
        self.conn.execute(
            _INSERT_EVALUATION, [{"proposal_id": e.proposal_id, "revision": e.revision, **self._values(e)} for e in new]
        )
        added: Counter[str] = Counter()
        for e in new:
            added.update(_open_assignments(e))
        self._add_workload(added)  # what the new ones add, as _write_assignments would add it
        self.conn.execute(_DELETE_ASSIGNMENTS, [{"_id": e.proposal_id, "_revision": e.revision} for e in new])
        rows = [row for e in new for row in _assignment_rows(e)]
        if rows:
            self.conn.execute(_INSERT_ASSIGNMENTS, rows)

    def save(self, e: Evaluation) -> None:
        self.flush()
        self._workload = None
        before = self._pending_assignments(e.proposal_id, e.revision)
        self.conn.execute(_UPDATE_EVALUATION, {"_id": e.proposal_id, "_revision": e.revision, **self._values(e)})
        self._write_assignments(e, before)

    def _pending_assignments(self, proposal_id: str, revision: int) -> Counter[str]:
        """What this evaluation, as stored, adds to each evaluator's workload."""
        rows = self.conn.execute(_PENDING, {"_id": proposal_id, "_revision": revision})
        return Counter(r.evaluator for r in rows)

    @staticmethod
    def _values(e: Evaluation) -> dict[str, Any]:
        return dict(
            focus_area=e.focus_area,
            title=e.title,
            budget_eur=e.budget_eur,
            external_funding_sought=e.external_funding_sought,
            status=e.status,
            opened_at=e.opened_at,
            due_at=e.due_at,
            overdue_at=e.overdue_at,
            decided_at=e.decided_at,
            outcome=_outcome_json(e.outcome),
        )

    def _write_assignments(self, e: Evaluation, before: Counter[str]) -> None:
        after = _open_assignments(e)
        self._add_workload(Counter({ev: after[ev] - before[ev] for ev in set(before) | set(after)}))
        self.conn.execute(_DELETE_ASSIGNMENTS, {"_id": e.proposal_id, "_revision": e.revision})
        rows = _assignment_rows(e)
        if rows:
            self.conn.execute(_INSERT_ASSIGNMENTS, rows)

    def _add_workload(self, delta: Counter[str]) -> None:
        changes = [
            {"evaluator": ev, "delta": n} for ev, n in sorted(delta.items()) if n
        ]  # sorted: instances lock rows in one order
        if changes:
            self.conn.execute(_ADD_WORKLOAD, changes)

    def _load(self, row: sa.Row[Any]) -> Evaluation:
        rows = self.conn.execute(_ASSIGNMENTS, {"_id": row.proposal_id, "_revision": row.revision})
        return Evaluation(
            proposal_id=row.proposal_id,
            revision=row.revision,
            focus_area=row.focus_area,
            title=row.title,
            budget_eur=row.budget_eur,
            external_funding_sought=row.external_funding_sought,
            opened_at=row.opened_at,
            due_at=row.due_at,
            status=row.status,
            overdue_at=row.overdue_at,
            decided_at=row.decided_at,
            outcome=_outcome_of(row.outcome),
            assignments=tuple(Assignment(**{name: a._mapping[name] for name in _ASSIGNMENT_FIELDS}) for a in rows),
        )

    def current(self, proposal_id: str, for_update: bool = False) -> Evaluation | None:
        """The evaluation of the proposal's latest revision; `for_update` locks it (PostgreSQL) so
        that two evaluators scoring at once do not overwrite each other."""
        if any(e.proposal_id == proposal_id for e in self._new):
            self.flush()
        row = self.conn.execute(_CURRENT_FOR_UPDATE if for_update else _CURRENT, {"_id": proposal_id}).first()
        return self._load(row) if row else None

    def mark_overdue(self, e: Evaluation, now: datetime) -> bool:
        """Set the overdue flag unless it is set already; True when this call set it."""
        self.flush()
        result = self.conn.execute(
            evaluations.update()
            .where(
                evaluations.c.proposal_id == e.proposal_id,
                evaluations.c.revision == e.revision,
                evaluations.c.overdue_at.is_(None),
            )
            .values(overdue_at=now)
        )
        return result.rowcount == 1

    def open_ones(self, due_before: datetime | None = None) -> list[Evaluation]:
        self.flush()
        query = sa.select(evaluations).where(evaluations.c.status == "open")
        if due_before is not None:
            query = query.where(evaluations.c.due_at <= due_before, evaluations.c.overdue_at.is_(None))
        return [self._load(r) for r in self.conn.execute(query.order_by(evaluations.c.opened_at))]

    def workload(self) -> dict[str, int]:
        """Open assignments not yet scored, per evaluator (read once per unit of work, then kept
        up to date by what it adds)."""
        if self._workload is None:
            self.flush()
            query = sa.select(evaluator_workload).where(evaluator_workload.c.open_assignments > 0)
            self._workload = Counter({r.evaluator: r.open_assignments for r in self.conn.execute(query)})
        return {name: n for name, n in self._workload.items() if n > 0}

    def counted_workload(self) -> dict[str, int]:
        """The same, counted from the assignments themselves (what the kept counts must equal)."""
        self.flush()
        query = (
            sa.select(assignments.c.evaluator, sa.func.count())
            .join(
                evaluations,
                _ASSIGNED,
            )
            .where(evaluations.c.status == "open", assignments.c.recused.is_(False), assignments.c.scored_at.is_(None))
            .group_by(assignments.c.evaluator)
        )
        return {name: n for name, n in self.conn.execute(query)}

    def queue(self, evaluator: str) -> list[Evaluation]:
        self.flush()
        query = (
            sa.select(evaluations)
            .join(
                assignments,
                _ASSIGNED,
            )
            .where(
                evaluations.c.status == "open", assignments.c.evaluator == evaluator, assignments.c.recused.is_(False)
            )
            .order_by(evaluations.c.due_at)
        )
        return [self._load(r) for r in self.conn.execute(query)]

    def counts(self) -> dict[str, int]:
        self.flush()
        rows = self.conn.execute(
            sa.select(
                evaluations.c.status, (evaluations.c.overdue_at.is_not(None)).label("late"), sa.func.count()
            ).group_by(evaluations.c.status, "late")
        )
        out: dict[str, int] = {}
        for status, late, n in rows:
            out[status] = out.get(status, 0) + n
            if status == "open" and late:
                out["open_overdue"] = out.get("open_overdue", 0) + n
        return out


SOURCE = service_source("evaluation")  # <KOKEILU_EVENT_SOURCE_BASE>services/evaluation


class EvaluationUnitOfWork(UnitOfWork):
    source = SOURCE  # of every event this service publishes

    def bind(self, conn: sa.Connection) -> None:
        self.screenings = ScreeningRepository(conn)
        self.known = KnownProposalRepository(conn)
        self.evaluations = EvaluationRepository(conn)

    def flush(self) -> None:
        """What the repositories hold back until commit, written (UnitOfWork.flush)."""
        self.screenings.flush()
        self.known.flush()
        self.evaluations.flush()

    def forget(self) -> None:
        self.bind(self.conn)
