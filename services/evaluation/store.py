"""The evaluation store: screenings (one per proposal revision seen)."""
from __future__ import annotations

import sqlalchemy as sa

from kokeilu.contracts.evaluation import RuleFailure, ScreeningCompleted
from kokeilu.store import UnitOfWork, UtcDateTime, add_messaging_tables

metadata = sa.MetaData()
add_messaging_tables(metadata)

screenings = sa.Table(
    "screenings", metadata,
    sa.Column("proposal_id", sa.String(64), primary_key=True),
    sa.Column("focus_area", sa.String(40), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("passed", sa.Boolean(), nullable=False),
    sa.Column("failed_rules", sa.JSON(), nullable=False),
    sa.Column("submitted_at", UtcDateTime(), nullable=False),
    sa.Column("screened_at", UtcDateTime(), nullable=False),
)


class ScreeningRepository:
    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def add(self, s: ScreeningCompleted, focus_area: str, title: str, submitted_at) -> None:
        self.conn.execute(screenings.insert().values(
            proposal_id=s.proposal_id, focus_area=focus_area, title=title, passed=s.passed,
            failed_rules=[f.model_dump(mode="json") for f in s.failed_rules],
            submitted_at=submitted_at, screened_at=s.screened_at))

    def get(self, proposal_id: str) -> dict | None:
        row = self.conn.execute(sa.select(screenings).where(screenings.c.proposal_id == proposal_id)).first()
        if row is None:
            return None
        return {
            "proposal_id": row.proposal_id, "title": row.title, "focus_area": row.focus_area,
            "screening": {
                "passed": row.passed,
                "failed_rules": [RuleFailure.model_validate(f).model_dump() for f in row.failed_rules],
                "screened_at": row.screened_at.isoformat(),
                "time_in_screening_seconds": (row.screened_at - row.submitted_at).total_seconds(),
            },
        }


class EvaluationUnitOfWork(UnitOfWork):
    def bind(self, conn):
        self.screenings = ScreeningRepository(conn)
