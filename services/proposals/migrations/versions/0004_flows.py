"""flows: each proposal's correlation id and the trace it began in (kokeilu/tracing.py)

Revision ID: 0004
"""

from alembic import op

from kokeilu.store import create_flows_table

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_flows_table(op)


def downgrade() -> None:
    op.drop_table("flows")
