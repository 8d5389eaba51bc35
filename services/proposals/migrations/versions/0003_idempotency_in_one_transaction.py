"""Idempotency keys are written in the same transaction as their work: drop claims left "in
progress" (status 0) by a crash under the earlier two-transaction scheme, so that their retry
is served at once instead of being refused.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM idempotency_keys WHERE status = 0")


def downgrade() -> None:
    pass
