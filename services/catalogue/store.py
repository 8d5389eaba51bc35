"""The catalogue store: entries being assembled and the published results (the read model)."""
from __future__ import annotations

import sqlalchemy as sa

from kokeilu.contracts.proposals import ProposalSubmitted
from kokeilu.contracts.results import Result
from kokeilu.store import UnitOfWork, UtcDateTime, add_messaging_tables

from .domain import Entry

metadata = sa.MetaData()
add_messaging_tables(metadata)

entries = sa.Table(
    "entries", metadata,
    sa.Column("proposal_id", sa.String(64), primary_key=True),
    sa.Column("proposal", sa.JSON(), nullable=True),
    sa.Column("screening_passed", sa.Boolean(), nullable=True),
    sa.Column("result", sa.JSON(), nullable=True),
    sa.Column("published_at", UtcDateTime(), nullable=True, index=True),
)


class EntryRepository:
    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def get(self, proposal_id: str) -> Entry:
        row = self.conn.execute(sa.select(entries).where(entries.c.proposal_id == proposal_id)).first()
        if row is None:
            return Entry(proposal_id)
        return Entry(
            proposal_id=row.proposal_id,
            proposal=ProposalSubmitted.model_validate(row.proposal) if row.proposal else None,
            screening_passed=row.screening_passed,
            result=Result.model_validate(row.result) if row.result else None,
        )

    def save(self, e: Entry) -> None:
        values = dict(
            proposal=e.proposal.model_dump(mode="json") if e.proposal else None,
            screening_passed=e.screening_passed,
            result=e.result.model_dump(mode="json") if e.result else None,
            published_at=e.result.published_at if e.result else None,
        )
        updated = self.conn.execute(entries.update().where(entries.c.proposal_id == e.proposal_id).values(**values))
        if updated.rowcount == 0:
            self.conn.execute(entries.insert().values(proposal_id=e.proposal_id, **values))

    def published(self, limit: int, after: str | None) -> list[Result]:
        query = (sa.select(entries.c.result, entries.c.proposal_id)
                 .where(entries.c.published_at.is_not(None))
                 .order_by(entries.c.published_at.desc(), entries.c.proposal_id.desc()))
        if after:
            anchor = self.conn.execute(sa.select(entries.c.published_at).where(entries.c.proposal_id == after)).first()
            if anchor and anchor.published_at:
                query = query.where(sa.or_(
                    entries.c.published_at < anchor.published_at,
                    sa.and_(entries.c.published_at == anchor.published_at, entries.c.proposal_id < after)))
        return [Result.model_validate(r.result) for r in self.conn.execute(query.limit(limit))]

    def count_published(self) -> int:
        return self.conn.execute(sa.select(sa.func.count()).select_from(entries)
                                 .where(entries.c.published_at.is_not(None))).scalar_one()


class CatalogueUnitOfWork(UnitOfWork):
    def bind(self, conn):
        self.entries = EntryRepository(conn)
