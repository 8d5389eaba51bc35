"""a proposer's opt-out of e-mails about their proposal (the unsubscribe link of those e-mails)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("proposal_areas") as batch:
        batch.add_column(sa.Column("proposer_opted_out_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proposal_areas") as batch:
        batch.drop_column("proposer_opted_out_at")
