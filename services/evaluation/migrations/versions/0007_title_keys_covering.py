"""title_keys' primary key covers the profile columns on PostgreSQL (an index-only scan)

The duplicate rule reads every index row under a title's keys (about 200 with 100,000 open
proposals in bench/screening.py). On PostgreSQL the rows of one key lie all over the table's
heap, so the primary key's index found them and each was then read from a heap page of its own
(a page of a 350 MB table per row, rarely in shared buffers). With length and profile in the
primary key's index (INCLUDE), PostgreSQL answers from the index alone (an index-only scan: the
rows of a key are together in its leaf pages), reading the heap only for pages vacuum has not
yet marked all-visible. The index replaces the primary key's (one index written per key row,
as before).

On SQLite the table has no rowid since 0006: it is its primary key's B-tree, which holds every
column already; nothing changes there.

Revision ID: 0007
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE title_keys DROP CONSTRAINT title_keys_pkey, "
            "ADD CONSTRAINT title_keys_pkey PRIMARY KEY (key, proposal_id) INCLUDE (length, profile)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE title_keys DROP CONSTRAINT title_keys_pkey, "
            "ADD CONSTRAINT title_keys_pkey PRIMARY KEY (key, proposal_id)"
        )
