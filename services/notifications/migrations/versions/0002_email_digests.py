"""e-mail subscriptions, digests, signing secrets, proposal facts, delivery kinds

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.alter_column("url", existing_type=sa.String(2000), nullable=True)
        batch.add_column(sa.Column("email", sa.String(254), nullable=True))
        batch.add_column(sa.Column("mode", sa.String(20), nullable=False, server_default="immediate"))
        batch.add_column(sa.Column("secret", sa.String(100), nullable=True))
        batch.add_column(sa.Column("language", sa.String(5), nullable=False, server_default="fi"))
    with op.batch_alter_table("proposal_areas") as batch:
        batch.add_column(sa.Column("environment", sa.String(40), nullable=True))
        batch.add_column(sa.Column("language", sa.String(5), nullable=True))
        batch.add_column(sa.Column("title", sa.String(200), nullable=True))
        batch.add_column(sa.Column("contact_email", sa.String(254), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("kind", sa.String(20), nullable=False, server_default="event"))
        batch.add_column(sa.Column("channel", sa.String(20), nullable=True))
        batch.add_column(sa.Column("recipient", sa.String(2000), nullable=True))
        batch.add_column(sa.Column("language", sa.String(5), nullable=True))
    op.create_table(
        "digest_items",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("subscription_id", sa.String(64), nullable=False, index=True),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, nullable=False, index=True),
        sa.Column("digest_id", sa.String(64), nullable=True, index=True),
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_digest_item_per_event"),
    )
    op.create_table(
        "digest_runs",
        sa.Column("window_end", TS, primary_key=True),
        sa.Column("ran_at", TS, nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("digests", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("digest_runs")
    op.drop_table("digest_items")
    with op.batch_alter_table("deliveries") as batch:
        for column in ("language", "recipient", "channel", "kind"):
            batch.drop_column(column)
    with op.batch_alter_table("proposal_areas") as batch:
        for column in ("contact_email", "title", "language", "environment"):
            batch.drop_column(column)
    with op.batch_alter_table("subscriptions") as batch:
        for column in ("language", "secret", "mode", "email"):
            batch.drop_column(column)
        batch.alter_column("url", existing_type=sa.String(2000), nullable=False)
