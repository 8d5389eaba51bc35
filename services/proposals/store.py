"""The proposals store: tables, repositories and unit of work."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from kokeilu.contracts import service_source
from kokeilu.contracts.evaluation import Decision, RuleFailure
from kokeilu.contracts.proposals import KpiActual, PilotOutcome, Submission
from kokeilu.store import UnitOfWork, UtcDateTime, add_flows_table, add_messaging_tables
from kokeilu.store.paging import newest_first_after
from kokeilu.store.statements import insert_rows

from .domain import DecisionRecord, Measurement, Pilot, Proposal, Status, pilot_json

metadata = sa.MetaData()
add_messaging_tables(metadata)
add_flows_table(metadata)

proposals = sa.Table(
    "proposals",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(40), nullable=False, index=True),
    sa.Column("focus_area", sa.String(40), nullable=False, index=True),
    sa.Column("environment", sa.String(40), nullable=False, index=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("submission", sa.JSON(), nullable=False),  # includes the proposer's contact e-mail
    sa.Column("screening_failures", sa.JSON(), nullable=False),
    sa.Column("source", sa.String(500), nullable=False),
    sa.Column("submitted_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # 0002: the experiment workflow
    sa.Column("revision", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("decision", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("pilot", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("withdrawn_reason", sa.String(2000), nullable=True),
)

measurements = sa.Table(
    "measurements",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("proposal_id", sa.String(64), nullable=False, index=True),
    sa.Column("kpi", sa.String(200), nullable=False),
    sa.Column("value", sa.Float(), nullable=False),
    sa.Column("measured_at", UtcDateTime(), nullable=False),
    sa.Column("source", sa.String(500), nullable=False),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("principal", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("route", sa.String(500), nullable=False),
    sa.Column("status", sa.Integer(), nullable=False),
    sa.Column("body", sa.JSON(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _decision_json(d: DecisionRecord | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "decision": d.decision.value,
        "weighted_score": d.weighted_score,
        "rationale": d.rationale,
        "external_funding_recommended": d.external_funding_recommended,
        "decided_at": d.decided_at.isoformat(),
    }


def _decision_of(j: dict[str, Any] | None) -> DecisionRecord | None:
    if not j:
        return None
    return DecisionRecord(
        Decision(j["decision"]),
        j["weighted_score"],
        j["rationale"],
        j["external_funding_recommended"],
        datetime.fromisoformat(j["decided_at"]),
    )


def _pilot_of(j: dict[str, Any] | None) -> Pilot | None:
    if not j:
        return None
    return Pilot(
        started_at=datetime.fromisoformat(j["started_at"]),
        planned_end=_dt(j.get("planned_end")),
        outcome=PilotOutcome(j["outcome"]) if j.get("outcome") else None,
        actual_kpis=tuple(KpiActual.model_validate(a) for a in j.get("actual_kpis") or ()),
        lessons_learned=j.get("lessons_learned"),
        completed_at=_dt(j.get("completed_at")),
    )


def _row_to_proposal(row: sa.Row[Any]) -> Proposal:
    return Proposal(
        id=row.id,
        submission=Submission.model_validate(row.submission),
        status=Status(row.status),
        submitted_at=row.submitted_at,
        updated_at=row.updated_at,
        source=row.source,
        screening_failures=tuple(RuleFailure.model_validate(f) for f in row.screening_failures),
        revision=row.revision or 1,
        decision=_decision_of(row.decision),
        pilot=_pilot_of(row.pilot),
        withdrawn_reason=row.withdrawn_reason,
    )


# The write path's statements are built once and executed with parameters: building a statement
# with .values(...) or .where(col == value) per call costs SQLAlchemy several times the execution
# itself (a new statement object, its cache key, coercing every value), on every request.
_UPDATE_PROPOSAL = proposals.update().where(proposals.c.id == sa.bindparam("_id"))
_SELECT_PROPOSAL = sa.select(proposals).where(proposals.c.id == sa.bindparam("_id"))
_SELECT_PROPOSALS = sa.select(proposals).where(proposals.c.id.in_(sa.bindparam("_ids", expanding=True)))
_INSERT_MEASUREMENT = measurements.insert()
_KEY = (idempotency_keys.c.principal == sa.bindparam("_principal")) & (idempotency_keys.c.key == sa.bindparam("_key"))
_SELECT_KEY = sa.select(idempotency_keys).where(_KEY)
_INSERT_KEY = idempotency_keys.insert()
_COMPLETE_KEY = idempotency_keys.update().where(_KEY).values(status=sa.bindparam("_status"), body=sa.bindparam("_body"))
_DELETE_KEY = idempotency_keys.delete().where(_KEY)


class ProposalRepository:
    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def add(self, p: Proposal) -> None:
        # Bound by the columns' own processors and run by the driver on SQLite (insert_rows):
        # SQLAlchemy's execution of the Core insert was a tenth of a submit's CPU.
        insert_rows(self.conn, proposals, [dict(self._values(p), id=p.id)])

    def add_many(self, ps: list[Proposal]) -> None:
        """New proposals, in one statement."""
        insert_rows(self.conn, proposals, [dict(self._values(p), id=p.id) for p in ps])

    def save(self, p: Proposal) -> None:
        self.save_many([p])

    def save_many(self, ps: Iterable[Proposal]) -> None:
        """`save` of each, in one statement."""
        rows = [dict(self._values(p), _id=p.id) for p in ps]
        if rows:
            self.conn.execute(_UPDATE_PROPOSAL, rows)

    @staticmethod
    def _values(p: Proposal) -> dict[str, Any]:
        return dict(
            status=p.status.value,
            focus_area=p.submission.focus_area.value,
            environment=p.submission.environment.value,
            title=p.submission.title,
            submission=p.submission.model_dump(mode="json"),
            screening_failures=[f.model_dump(mode="json") for f in p.screening_failures],
            source=p.source,
            submitted_at=p.submitted_at,
            updated_at=p.updated_at,
            revision=p.revision,
            decision=_decision_json(p.decision),
            pilot=pilot_json(p.pilot),
            withdrawn_reason=p.withdrawn_reason,
        )

    def get(self, proposal_id: str) -> Proposal | None:
        row = self.conn.execute(_SELECT_PROPOSAL, {"_id": proposal_id}).first()
        return _row_to_proposal(row) if row else None

    def get_many(self, proposal_ids: Iterable[str]) -> dict[str, Proposal]:
        """The stored proposals among `proposal_ids`, by id (those not stored are left out)."""
        wanted = list(dict.fromkeys(proposal_ids))
        found: dict[str, Proposal] = {}
        for start in range(0, len(wanted), 500):
            for row in self.conn.execute(_SELECT_PROPOSALS, {"_ids": wanted[start : start + 500]}):
                found[row.id] = _row_to_proposal(row)
        return found

    def list(
        self,
        status: str | None = None,
        limit: int = 50,
        after: str | None = None,
        focus_area: str | None = None,
        environment: str | None = None,
        submitted_from: datetime | None = None,
        submitted_to: datetime | None = None,
    ) -> list[Proposal]:
        query = sa.select(proposals).order_by(proposals.c.submitted_at.desc(), proposals.c.id.desc())
        for column, value in (
            (proposals.c.status, status),
            (proposals.c.focus_area, focus_area),
            (proposals.c.environment, environment),
        ):
            if value:
                query = query.where(column == value)
        if submitted_from:
            query = query.where(proposals.c.submitted_at >= submitted_from)
        if submitted_to:
            query = query.where(proposals.c.submitted_at < submitted_to)
        query = newest_first_after(self.conn, query, proposals.c.submitted_at, proposals.c.id, after)
        return [_row_to_proposal(r) for r in self.conn.execute(query.limit(limit))]

    def count_by_status(self) -> dict[str, int]:
        rows = self.conn.execute(sa.select(proposals.c.status, sa.func.count()).group_by(proposals.c.status))
        return {status: n for status, n in rows}


class MeasurementRepository:
    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def add(self, m: Measurement) -> None:
        self.conn.execute(_INSERT_MEASUREMENT, dict(m))

    def add_many(self, ms: list[Measurement]) -> None:
        insert_rows(self.conn, measurements, ms)

    def for_proposal(self, proposal_id: str) -> list[Measurement]:
        rows = self.conn.execute(
            sa.select(measurements)
            .where(measurements.c.proposal_id == proposal_id)
            .order_by(measurements.c.measured_at, measurements.c.id)
        )
        return [cast(Measurement, dict(r._mapping)) for r in rows]  # the table's columns are the keys


class IdempotencyRepository:
    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def get(self, principal: str, key: str) -> sa.Row[Any] | None:
        return self.conn.execute(_SELECT_KEY, {"_principal": principal, "_key": key}).first()

    def add(self, principal: str, key: str, route: str, now: datetime) -> None:
        """Claim the key; its answer is written by complete() in the same transaction."""
        self.conn.execute(
            _INSERT_KEY, dict(principal=principal, key=key, route=route, status=0, body=None, created_at=now)
        )

    def complete(self, principal: str, key: str, status: int, body: Any) -> None:
        self.conn.execute(_COMPLETE_KEY, {"_principal": principal, "_key": key, "_status": status, "_body": body})

    def release(self, principal: str, key: str) -> None:
        self.conn.execute(_DELETE_KEY, {"_principal": principal, "_key": key})


SOURCE = service_source("proposals")  # <KOKEILU_EVENT_SOURCE_BASE>services/proposals


class ProposalsUnitOfWork(UnitOfWork):
    source = SOURCE  # of every event this service publishes

    def bind(self, conn: sa.Connection) -> None:
        self.proposals = ProposalRepository(conn)
        self.measurements = MeasurementRepository(conn)
        self.idempotency = IdempotencyRepository(conn)
