"""title_keys rows carry their title's profile (screening.title_profile), without a rowid on SQLite

The duplicate rule's candidates are filtered by screening.within_reach before their titles are
read, which needs each key row's title length and letter counts. The table is rebuilt (SQLite
cannot drop a rowid in place) and the open proposals indexed again, as the repository indexes a
new one (screening.index_rows).

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

from services.evaluation.screening import index_rows, title_keys

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _open_proposals() -> list[sa.Row]:
    return op.get_bind().execute(sa.text("SELECT proposal_id, title FROM known_proposals WHERE is_open")).all()


def upgrade() -> None:
    op.drop_index("ix_title_keys_proposal", "title_keys")
    op.drop_table("title_keys")
    table = op.create_table(
        "title_keys",
        sa.Column("key", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("proposal_id", sa.String(64), primary_key=True),
        # Nullable: during a rolling upgrade an instance of the release before writes key rows
        # without them, and such a row is always a candidate (the repository's query).
        sa.Column("length", sa.Integer(), nullable=True),
        sa.Column("profile", sa.LargeBinary(), nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_title_keys_proposal", "title_keys", ["proposal_id"])
    rows = _open_proposals()
    for start in range(0, len(rows), 1000):
        batch = [row for r in rows[start : start + 1000] for row in index_rows(r.proposal_id, r.title)]
        if batch:
            op.get_bind().execute(table.insert(), batch)


def downgrade() -> None:
    # 0004's table: the keys alone.
    op.drop_index("ix_title_keys_proposal", "title_keys")
    op.drop_table("title_keys")
    table = op.create_table(
        "title_keys",
        sa.Column("key", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("proposal_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_title_keys_proposal", "title_keys", ["proposal_id"])
    rows = _open_proposals()
    for start in range(0, len(rows), 1000):
        batch = [
            {"key": k, "proposal_id": r.proposal_id}
            for r in rows[start : start + 1000]
            for k in sorted(set(title_keys(r.title)))
        ]
        if batch:
            op.get_bind().execute(table.insert(), batch)
