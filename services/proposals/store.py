"""The proposals store: tables, repository and unit of work."""
from __future__ import annotations

import sqlalchemy as sa

from kokeilu.contracts.evaluation import RuleFailure
from kokeilu.contracts.proposals import Submission
from kokeilu.store import UnitOfWork, UtcDateTime, add_messaging_tables

from .domain import Proposal, Status

metadata = sa.MetaData()
add_messaging_tables(metadata)

proposals = sa.Table(
    "proposals", metadata,
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
)


def _row_to_proposal(row) -> Proposal:
    return Proposal(
        id=row.id, submission=Submission.model_validate(row.submission), status=Status(row.status),
        submitted_at=row.submitted_at, updated_at=row.updated_at, source=row.source,
        screening_failures=tuple(RuleFailure.model_validate(f) for f in row.screening_failures),
    )


class ProposalRepository:
    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def add(self, p: Proposal) -> None:
        self.conn.execute(proposals.insert().values(**self._values(p), id=p.id))

    def save(self, p: Proposal) -> None:
        self.conn.execute(proposals.update().where(proposals.c.id == p.id).values(**self._values(p)))

    @staticmethod
    def _values(p: Proposal) -> dict:
        return dict(
            status=p.status.value, focus_area=p.submission.focus_area.value,
            environment=p.submission.environment.value, title=p.submission.title,
            submission=p.submission.model_dump(mode="json"),
            screening_failures=[f.model_dump(mode="json") for f in p.screening_failures],
            source=p.source, submitted_at=p.submitted_at, updated_at=p.updated_at,
        )

    def get(self, proposal_id: str) -> Proposal | None:
        row = self.conn.execute(sa.select(proposals).where(proposals.c.id == proposal_id)).first()
        return _row_to_proposal(row) if row else None

    def list(self, status: str | None = None, limit: int = 50, after: str | None = None) -> list[Proposal]:
        query = sa.select(proposals).order_by(proposals.c.submitted_at.desc(), proposals.c.id.desc())
        if status:
            query = query.where(proposals.c.status == status)
        if after:
            anchor = self.conn.execute(sa.select(proposals.c.submitted_at).where(proposals.c.id == after)).first()
            if anchor:
                query = query.where(sa.or_(
                    proposals.c.submitted_at < anchor.submitted_at,
                    sa.and_(proposals.c.submitted_at == anchor.submitted_at, proposals.c.id < after)))
        return [_row_to_proposal(r) for r in self.conn.execute(query.limit(limit))]

    def count_by_status(self) -> dict[str, int]:
        rows = self.conn.execute(sa.select(proposals.c.status, sa.func.count()).group_by(proposals.c.status))
        return {status: n for status, n in rows}


class ProposalsUnitOfWork(UnitOfWork):
    def bind(self, conn):
        self.proposals = ProposalRepository(conn)
