"""subscription owners and the personal-data flag; a resident proposer's name for redaction

Revision ID: 0003
Revises: 0002

Subscriptions made before owners existed belong to "admin" (only an admin token sees and manages
them) and do not carry personal data (what they receive is redacted).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("owner", sa.String(200), nullable=False, server_default="admin"))
        batch.add_column(sa.Column("personal_data", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index("ix_subscriptions_owner", ["owner"])
    with op.batch_alter_table("proposal_areas") as batch:
        batch.add_column(sa.Column("resident_name", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proposal_areas") as batch:
        batch.drop_column("resident_name")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_index("ix_subscriptions_owner")
        batch.drop_column("personal_data")
        batch.drop_column("owner")
