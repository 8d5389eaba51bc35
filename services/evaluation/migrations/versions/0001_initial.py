"""screenings, outbox and inbox

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
        "screenings",
        sa.Column("proposal_id", sa.String(64), primary_key=True),
        sa.Column("focus_area", sa.String(40), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("failed_rules", sa.JSON(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("screened_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("screenings")
    op.drop_table("inbox")
    op.drop_table("outbox")
