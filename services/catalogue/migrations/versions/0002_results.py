"""the facts of each entry, withdrawn results, and the searchable results table

Revision ID: 0002
Revises: 0001
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("facts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("withdrawn", sa.JSON(), nullable=True))
    op.create_table(
        "results",
        sa.Column("result_id", sa.String(64), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("lessons", sa.Text(), nullable=True),
        sa.Column("focus_area", sa.String(40), nullable=False, index=True),
        sa.Column("environment", sa.String(40), nullable=False, index=True),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("outcome", sa.String(20), nullable=True),
        sa.Column("year", sa.Integer(), nullable=False, index=True),
        sa.Column("published_at", TS, nullable=False, index=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE results_fts USING fts5(result_id UNINDEXED, title, summary, lessons, "
            "tokenize = 'unicode61 remove_diacritics 2')"
        )
    else:
        op.execute(
            "CREATE INDEX ix_results_fulltext ON results USING GIN "
            "(to_tsvector('simple', title || ' ' || summary || ' ' || coalesce(lessons, '')))"
        )
    _backfill(bind)


def _backfill(bind) -> None:
    """Results published by the first release go into the searchable table."""
    results = sa.table(
        "results",
        *(
            sa.column(c)
            for c in (
                "result_id",
                "title",
                "summary",
                "lessons",
                "focus_area",
                "environment",
                "status",
                "outcome",
                "year",
                "published_at",
                "updated_at",
            )
        ),
        sa.column("document", sa.JSON()),
    )
    rows = bind.execute(sa.text("SELECT proposal_id, result, published_at FROM entries WHERE result IS NOT NULL"))
    for proposal_id, result, published_at in rows:
        doc = json.loads(result) if isinstance(result, str) else result
        values = dict(
            result_id=proposal_id,
            title=doc["title"],
            summary=doc["summary"],
            lessons=doc.get("lessons_learned"),
            focus_area=doc["focus_area"],
            environment=doc["environment"],
            status=doc["status"],
            outcome=doc.get("outcome"),
            year=int(doc["published_at"][:4]),
            published_at=published_at,
            updated_at=published_at,
            document=doc,
        )
        bind.execute(results.insert().values(**values))
        if bind.dialect.name == "sqlite":
            bind.execute(
                sa.text("INSERT INTO results_fts (result_id, title, summary, lessons) VALUES (:id, :t, :s, :l)"),
                {"id": proposal_id, "t": doc["title"], "s": doc["summary"], "l": doc.get("lessons_learned") or ""},
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE results_fts")
    op.drop_table("results")
    with op.batch_alter_table("entries") as batch:
        batch.drop_column("withdrawn")
        batch.drop_column("facts")
