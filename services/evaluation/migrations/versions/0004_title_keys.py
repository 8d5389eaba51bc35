"""title_keys: the near-duplicate index of open proposals' titles (screening.title_keys)

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

from services.evaluation.screening import title_keys

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "title_keys",
        sa.Column("key", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("proposal_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_title_keys_proposal", "title_keys", ["proposal_id"])
    # The proposals already open, indexed as the repository indexes a new one.
    bind = op.get_bind()
    table = sa.table("title_keys", sa.column("key", sa.BigInteger()), sa.column("proposal_id", sa.String()))
    rows = bind.execute(sa.text("SELECT proposal_id, title FROM known_proposals WHERE is_open")).all()
    for start in range(0, len(rows), 1000):
        batch = [
            {"key": k, "proposal_id": r.proposal_id}
            for r in rows[start : start + 1000]
            for k in sorted(set(title_keys(r.title)))
        ]
        if batch:
            bind.execute(table.insert(), batch)


def downgrade() -> None:
    op.drop_table("title_keys")
