"""SQLite checkpoints off the commit path (kokeilu.store.database.WalCheckpointer): writers leave
the copying of the WAL into the database file to a thread of the process's own; it copies what
was committed, the WAL starts again from its beginning afterwards, and it stops with the store."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time

import pytest

from kokeilu.store import database as db_module
from kokeilu.store.database import WRITER_CHECKPOINT_FRAMES, Database, WalCheckpointer

BLOB = 4000  # about a page a row


@pytest.fixture
def db(tmp_path):
    d = Database(f"sqlite:///{tmp_path / 'store.db'}")
    with d.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER, pad BLOB)")
    probe = sqlite3.connect(tmp_path / "store.db")
    probe.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the table is in the database file
    probe.close()
    yield d
    d.dispose()


def write(db: Database, first: int, n: int) -> None:
    for x in range(first, first + n):
        with db.transaction() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (?, randomblob(?))", (x, BLOB))


def rows_in_the_database_file_alone(db: Database, tmp_path) -> int | None:
    """The rows a copy of the database file holds without its WAL: what checkpoints copied
    (None when the copy was taken while a checkpoint was writing the file)."""
    copy = tmp_path / "file-alone.db"
    shutil.copyfile(db.engine.url.database, copy)
    conn = sqlite3.connect(copy)
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    except sqlite3.DatabaseError:
        return None
    finally:
        conn.close()


def wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.01)


def test_writers_leave_checkpoints_to_the_checkpointer(db):
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == WRITER_CHECKPOINT_FRAMES


def test_what_was_committed_is_copied_into_the_database_file(db, tmp_path):
    write(db, 0, 50)
    wait_until(lambda: rows_in_the_database_file_alone(db, tmp_path) == 50)
    assert db.checkpointer.checkpoints >= 1


def test_a_commit_does_not_checkpoint_by_itself(db, tmp_path, monkeypatch):
    monkeypatch.setattr(WalCheckpointer, "nudge", lambda self: None)  # the checkpointer is never woken
    write(db, 0, 1200)  # more pages than SQLite's own automatic checkpoint (1,000) lets the WAL hold
    assert rows_in_the_database_file_alone(db, tmp_path) == 0
    assert db.checkpointer._thread is None


def wholly_copied(db: Database) -> bool:
    """The wal-index says every frame of the WAL is in the database file: its header's mxFrame
    (a u32 at byte 16) equals the checkpoint's nBackfill (at byte 96), native byte order
    (sqlite.org/walformat.html). Rows can show in the file before that: the checkpoint writes
    the pages, syncs the file, and only then records nBackfill."""
    with open(db.file + "-shm", "rb") as shm:
        head = shm.read(100)
    return int.from_bytes(head[16:20], sys.byteorder) == int.from_bytes(head[96:100], sys.byteorder)


def test_the_wal_starts_again_from_its_beginning_once_copied(db, tmp_path):
    # Were it never started again, each round would add its pages to the WAL's end (eight rounds,
    # eight times the first's size; the file's size is the most it ever held). A writer that
    # begins while a checkpoint is still being made does not start it again, so each round
    # begins once the thread's checkpoint is wholly done, not only once its rows show in the file
    # (waiting for those alone, a loaded machine let two rounds of eight add to the one before).
    wal = db.wal_sync.wal_path
    sizes = []
    for round_ in range(8):
        write(db, 300 * round_, 300)
        wait_until(
            lambda total=300 * (round_ + 1): (
                rows_in_the_database_file_alone(db, tmp_path) == total and wholly_copied(db)
            )
        )
        sizes.append(os.path.getsize(wal))
    assert max(sizes) <= 3 * sizes[0], sizes


def wal_restarts(db: Database) -> int:
    """The WAL header's checkpoint sequence number: one more each time the WAL starts again."""
    with open(db.wal_sync.wal_path, "rb") as wal:
        return int.from_bytes(wal.read(16)[12:16], "big")


def test_the_wal_starts_again_while_a_writer_commits_back_to_back(db):
    # A writer that always has a transaction open across the thread's copy: the copy alone never
    # leaves the WAL wholly copied when a writer begins, so without the writers' completion the
    # WAL would only start again at WRITER_CHECKPOINT_FRAMES pages (16,000; these 2,000 commits
    # of a page or two make about 5,000 frames).
    db.checkpointer.restart_frames = 500  # these commits write 2-3 frames each
    write(db, 0, 1)
    before = wal_restarts(db)
    write(db, 1, 2000)
    assert db.checkpointer.completions >= 3
    assert wal_restarts(db) - before >= 3


def test_a_small_wal_is_copied_and_left_to_the_systems_write_back(db, tmp_path):
    # Below restart_frames the thread copies without syncing the file, and no writer is asked
    # to finish: a burst of commits waits for no sync of the database file.
    write(db, 0, 50)
    wait_until(lambda: rows_in_the_database_file_alone(db, tmp_path) == 50)
    write(db, 50, 1)  # a writer after the copy: nothing asked of it
    assert not db.checkpointer.wants_completion and db.checkpointer.completions == 0


def test_the_writers_completion_leaves_the_database_file_with_every_commit(db, tmp_path, monkeypatch):
    monkeypatch.setattr(WalCheckpointer, "nudge", lambda self: None)  # the thread never copies
    write(db, 0, 30)
    db.checkpointer.wants_completion = True  # as the thread asks after a copy
    write(db, 30, 1)  # this writer completes: after its commit, under the write lock
    assert db.checkpointer.completions == 1 and not db.checkpointer.wants_completion
    assert rows_in_the_database_file_alone(db, tmp_path) == 31


def test_disposing_of_the_store_stops_the_checkpointer(db):
    write(db, 0, 1)
    thread = db.checkpointer._thread
    assert thread is not None and thread.is_alive()
    db.dispose()
    assert not thread.is_alive()


def test_a_failed_checkpoint_is_logged_and_the_next_commit_tries_again(db, monkeypatch, caplog):
    real = WalCheckpointer._checkpoint
    calls = []

    def failing_once(self, conn):
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error")
        real(self, conn)

    monkeypatch.setattr(WalCheckpointer, "_checkpoint", failing_once)
    monkeypatch.setattr(db.checkpointer, "interval", 0.0)
    write(db, 0, 1)
    wait_until(lambda: len(calls) == 1)
    write(db, 1, 1)
    wait_until(lambda: db.checkpointer.last is not None and db.checkpointer.last[2] >= 2)
    assert any("checkpoint of" in r.getMessage() for r in caplog.records if r.name == db_module.__name__)


def test_an_in_memory_database_has_no_checkpointer():
    assert Database("sqlite://").checkpointer is None
