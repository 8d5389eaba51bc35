"""subscription_changes: one row whose version changes with every change to a subscription, so
that each instance knows when to rebuild its index of the subscriptions for matching events.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "subscription_changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.String(32), nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "version": "initial"}])


def downgrade() -> None:
    op.drop_table("subscription_changes")
