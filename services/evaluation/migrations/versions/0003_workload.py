"""evaluator_workload: open assignments per evaluator, kept as evaluations are written

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluator_workload",
        sa.Column("evaluator", sa.String(200), primary_key=True),
        sa.Column("open_assignments", sa.Integer(), nullable=False),
    )
    op.execute(
        "INSERT INTO evaluator_workload (evaluator, open_assignments) "
        "SELECT a.evaluator, count(*) FROM assignments a JOIN evaluations e "
        "ON e.proposal_id = a.proposal_id AND e.revision = a.revision "
        "WHERE e.status = 'open' AND NOT a.recused AND a.scored_at IS NULL GROUP BY a.evaluator"
    )


def downgrade() -> None:
    op.drop_table("evaluator_workload")
