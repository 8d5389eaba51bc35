"""proposals, outbox and inbox

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
        "proposals",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(40), nullable=False, index=True),
        sa.Column("focus_area", sa.String(40), nullable=False, index=True),
        sa.Column("environment", sa.String(40), nullable=False, index=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("submission", sa.JSON(), nullable=False),
        sa.Column("screening_failures", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("proposals")
    op.drop_table("inbox")
    op.drop_table("outbox")
