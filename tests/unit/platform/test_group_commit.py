"""SQLite group commit (kokeilu.store.database.WalSync): a transaction that changed rows returns
only after an fsync of the WAL that began after its COMMIT; reads and refusals wait for none."""

from __future__ import annotations

import os
import sqlite3
import threading

import pytest
import sqlalchemy as sa

from kokeilu.errors import is_transient
from kokeilu.store import database as db_module
from kokeilu.store.database import Database, WalSync


@pytest.fixture
def db(tmp_path):
    d = Database(f"sqlite:///{tmp_path / 'store.db'}")
    with d.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    yield d
    d.dispose()


def fsync_log(monkeypatch):
    """Records, for each fsync of a WAL, how many rows were committed when it began."""
    calls = []
    real = os.fsync

    def recording(fd):
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(db_module.os, "fsync", recording)
    return calls


def count(db) -> int:
    with db.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one()


def test_a_write_returns_after_an_fsync_begun_after_its_commit(db, monkeypatch):
    seen_at_fsync = []
    real_fsync = WalSync._fsync

    def spying(self):
        seen_at_fsync.append(count(db))  # what is committed when the fsync begins
        real_fsync(self)

    monkeypatch.setattr(WalSync, "_fsync", spying)
    with db.transaction() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    assert seen_at_fsync == [1]
    assert db.wal_sync.synced == 1
    assert os.path.exists(db.wal_sync.wal_path)


def test_synchronous_is_normal_with_the_wal(db):
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1  # NORMAL; WalSync makes commits durable


def test_reads_and_rollbacks_wait_for_no_fsync(db, monkeypatch):
    calls = fsync_log(monkeypatch)
    with db.transaction() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one()
    with pytest.raises(RuntimeError):
        with db.transaction() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            raise RuntimeError("refused")
    assert calls == []
    assert count(db) == 0


def test_concurrent_writers_share_fsyncs_and_each_is_covered(db, monkeypatch):
    gate = threading.Event()
    real_fsync = WalSync._fsync

    def slow(self):
        gate.wait(5)  # the first fsync waits until every writer has committed
        real_fsync(self)

    monkeypatch.setattr(WalSync, "_fsync", slow)
    tickets, errors = [], []

    def write(i):
        try:
            with db.transaction() as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (?)", (i,))
            tickets.append(db.wal_sync.synced)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    while db.wal_sync._committed < 8:
        threading.Event().wait(0.01)
    gate.set()
    for t in threads:
        t.join(10)
    assert not errors
    assert count(db) == 8
    assert db.wal_sync.synced == 8  # every commit is covered by an fsync that began after it
    assert db.wal_sync.fsyncs <= 2  # the first writer's fsync, then one for all the others


def test_a_failed_fsync_fails_the_transaction_and_the_next_one_syncs(db, monkeypatch):
    real_fsync = WalSync._fsync
    failures = [OSError(5, "Input/output error")]

    def flaky(self):
        if failures:
            raise failures.pop()
        real_fsync(self)

    monkeypatch.setattr(WalSync, "_fsync", flaky)
    with pytest.raises(OSError, match="Input/output error"):
        with db.transaction() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    with db.transaction() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    assert db.wal_sync.synced == 2


def test_an_in_memory_database_has_no_wal_sync(tmp_path):
    assert Database("sqlite://").wal_sync is None


# BEGIN IMMEDIATE: a write transaction waits (in short sleeps) for the write lock another
# connection holds, and past its deadline fails with SQLAlchemy's OperationalError (transient).
def test_a_write_transaction_waits_for_the_lock_another_connection_holds(tmp_path):
    d = Database(f"sqlite:///{tmp_path / 'store.db'}", busy_timeout_seconds=5)
    with d.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(0.3, other.rollback)
    releaser.start()
    with d.transaction() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    releaser.join()
    assert count(d) == 1
    other.close()
    d.dispose()


def test_a_lock_held_past_the_deadline_fails_the_transaction_as_transient(tmp_path):
    d = Database(f"sqlite:///{tmp_path / 'store.db'}", busy_timeout_seconds=0.2)
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(sa.exc.OperationalError, match="locked") as raised:
        with d.transaction():
            pass
    assert is_transient(raised.value)
    other.rollback()
    other.close()
    d.dispose()


def test_a_ping_reads_while_another_connection_holds_the_write_lock(tmp_path):
    d = Database(f"sqlite:///{tmp_path / 'store.db'}", busy_timeout_seconds=0.2)
    d.ping()  # the WAL is set up by the first connection
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    d.ping()  # a reader: never waits for (nor fails on) the writer's lock
    with pytest.raises(sa.exc.OperationalError, match="locked"), d.transaction():
        pass  # a writer does
    other.rollback()
    with d.transaction() as conn:  # and the reader's mark did not stay on the pooled connection
        conn.exec_driver_sql("CREATE TABLE u (x INTEGER)")
    other.close()
    d.dispose()


def test_a_new_store_turned_to_wal_while_another_process_writes_it_waits_instead_of_failing(tmp_path):
    """Instances started together on a new store race to turn its file to WAL. SQLite refuses
    that at once, without its busy handler, while another connection reads and another writes
    the file in its first journal mode: the first connection of an instance failed with
    "database is locked" (seen in test_instances' migrations race on SQLite)."""
    path = tmp_path / "store.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (x INTEGER)")
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    releaser = threading.Timer(0.3, lambda: (reader.execute("COMMIT"), writer.execute("COMMIT")))
    releaser.start()
    d = Database(f"sqlite:///{path}", busy_timeout_seconds=5)
    with d.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    releaser.join()
    assert count(d) == 1
    for c in (reader, writer):
        c.close()
    d.dispose()
