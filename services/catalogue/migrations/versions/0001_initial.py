"""catalogue entries, outbox and inbox

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from kokeilu.store import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables(op)
    op.create_table(
        "entries",
        sa.Column("proposal_id", sa.String(64), primary_key=True),
        sa.Column("proposal", sa.JSON(), nullable=True),
        sa.Column("screening_passed", sa.Boolean(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True, index=True),
    )


def downgrade() -> None:
    op.drop_table("entries")
    op.drop_table("inbox")
    op.drop_table("outbox")
