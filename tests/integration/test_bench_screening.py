"""The screening benchmark's rounds leave each store at its size (bench/screening.py): what a round
screens is withdrawn again through the real handler, index keys and all."""

import random

import sqlalchemy as sa

from bench import screening as bench
from kokeilu.store import Database
from services.evaluation import store
from services.evaluation.screening import ScreeningPolicy


def _counts(db: Database) -> tuple[int, int]:
    with db.engine.connect() as conn:
        open_ = conn.execute(
            sa.select(sa.func.count()).select_from(store.known_proposals).where(store.known_proposals.c.is_open)
        ).scalar_one()
        keys = conn.execute(sa.select(sa.func.count()).select_from(store.title_keys_table)).scalar_one()
    return open_, keys


def test_a_round_withdrawn_leaves_the_store_at_its_size(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'evaluation.db'}", bench.MIGRATIONS)
    try:
        db.migrate()
        stored = bench.seed(db, 40, random.Random(7))
        bench.settle(db)
        before = _counts(db)
        assert before[0] == 40 and before[1] >= 40 * 20

        elapsed, _, _ = bench._screen_fresh(db, stored, random.Random(1), 5, 25, ScreeningPolicy(), withdraw_after=True)
        assert elapsed > 0
        assert _counts(db) == before  # every proposal of the round withdrawn, its index keys deleted

        bench._screen_fresh(db, stored, random.Random(2), 5, 25, ScreeningPolicy())
        assert _counts(db)[0] > before[0]  # without the withdrawal the round's proposals stay open
    finally:
        db.dispose()
