"""deliveries.correlation_id, deliveries.traceparent: the flow of the event a delivery carries,
which its outcome event (delivery.succeeded / delivery.failed) joins (kokeilu/tracing.py)

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("correlation_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("traceparent", sa.String(512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("traceparent")
        batch.drop_column("correlation_id")
