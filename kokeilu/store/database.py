"""A service's database: engine, migrations on start, and the guard SQLite needs under eventlet."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from pydantic_core import from_json, to_json
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import PoolProxiedConnection

from kokeilu import tracing

from .locks import hold

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# What the SQLite driver may wait for a lock by itself (blocking the process), in milliseconds.
DRIVER_BUSY_MS = 20
# WAL frames (pages) after which a writer's COMMIT checkpoints by itself (SQLite's automatic
# checkpoint). Checkpoints are the WalCheckpointer's work (its thread copies, a writer finishes);
# this only bounds the WAL should it fall behind (SQLite's own default is 1,000).
WRITER_CHECKPOINT_FRAMES = 16_000
# WAL frames from which WalCheckpointer has the WAL started again (syncs the file, then the
# writers finish): about 16 MB of 4 KiB pages. Below it, its copies leave the pages they wrote
# to the system's write-back, as a burst's commits then wait for no sync of the file at all.
RESTART_FRAMES = 4_000


def json_text(value: Any) -> str:
    """The text of a JSON column's value: pydantic-core's serialiser, compact and in UTF-8. It
    reads back as the value json.dumps would have written (a test holds the two to that), at a
    fifth of the cost: a proposal's submission, every outbox row's headers."""
    return to_json(value).decode()


def json_value(text: str | bytes) -> Any:
    """A JSON column's value from its text: pydantic-core's parser (what json.loads gives, for
    text json_text or json.dumps wrote)."""
    return from_json(text)


def make_engine(url: str, busy_timeout_seconds: float = 10) -> sa.Engine:
    if url.startswith("sqlite"):
        # The pysqlite dialect with Kokeilu's BEGIN (KokeiluSQLite; its name is still "sqlite").
        engine = sa.create_engine(
            sa.make_url(url).set(drivername="sqlite+kokeilu"),
            connect_args={"timeout": busy_timeout_seconds, "check_same_thread": False},
            json_serializer=json_text,
            json_deserializer=json_value,
        )
        assert isinstance(engine.dialect, KokeiluSQLite)
        engine.dialect.busy_timeout_seconds = busy_timeout_seconds

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: DBAPIConnection, _record: object) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers in other processes (the rebuild tool, a second instance) run beside the writer.
            # Turning a new store's file to WAL takes it exclusively, and SQLite refuses at once
            # ("database is locked", its busy handler not asked) while another process holds the
            # file: instances started together on a new store race here.
            _while_locked(cur.execute, "PRAGMA journal_mode=WAL", busy_timeout_seconds)
            # NORMAL: a COMMIT writes the WAL without waiting for the disk. Durability is not given
            # up: Database.transaction returns only after the WAL has been fsynced since the
            # commit (WalSync, a group commit: one fsync for every commit that waits meanwhile),
            # which is what FULL gives, without an fsync per transaction under the write lock.
            # Checkpoints sync the WAL before and the database file after, in NORMAL as in FULL.
            cur.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints run in WalCheckpointer's thread, not in the COMMIT of whichever
            # transaction filled the WAL: with a large store (a near-duplicate index of 100,000
            # titles) a checkpoint copies ~1,000 pages to random places of the file and syncs it,
            # and the transaction that ran it waited for that.
            cur.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_FRAMES}")
            cur.execute("PRAGMA foreign_keys=ON")
            # The driver's own busy handler sleeps inside C: under eventlet that stalls every green
            # thread of the process (liveness, unrelated requests). It only covers brief contention
            # here; waiting for the write lock is done in KokeiluSQLite.do_begin, where the sleep is green.
            cur.execute(f"PRAGMA busy_timeout={DRIVER_BUSY_MS}")
            cur.close()

        # pysqlite's own transaction handling defers BEGIN; make it explicit and IMMEDIATE so a
        # write transaction takes the lock up front instead of failing half-way.
        @sa.event.listens_for(engine, "connect")
        def _no_pysqlite_tx(dbapi_conn: Any, _record: object) -> None:  # sqlite3.Connection
            dbapi_conn.isolation_level = None

        return engine
    return sa.create_engine(
        url, pool_pre_ping=True, pool_size=5, max_overflow=5, json_serializer=json_text, json_deserializer=json_value
    )


def _while_locked(execute: Callable[[str], object], statement: str, timeout: float) -> None:
    """`execute(statement)`, a statement that takes the store's file lock; while another
    connection (of this process or another) holds it, again in sleeps of 5 ms doubling to
    100 ms, green under eventlet (the rest of the process goes on), until `timeout` seconds have
    passed. Then, or on any other error, what SQLite raised (SQLAlchemy wraps it as
    OperationalError: transient)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            execute(statement)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


# Set in a pooled connection's info by a reader (Database.ping) for its next transaction.
READER = "kokeilu_reader"


class KokeiluSQLite(SQLiteDialect_pysqlite):
    """pysqlite, beginning each transaction itself (make_engine turns pysqlite's own deferred
    BEGIN off): BEGIN IMMEDIATE, so a write transaction takes the lock up front instead of
    failing half-way, waiting for it in green sleeps up to `busy_timeout_seconds`; a reader's
    plain BEGIN (WAL never makes it wait for the writer) on a connection marked READER.

    This is the dialect's own step (do_begin), not a "begin" event listener: a listener on the
    engine makes SQLAlchemy dispatch its connection events on every statement of every
    transaction (a third of what a short transaction cost it). BEGIN goes to the driver itself,
    and SQLAlchemy wraps what it raises as before (a lock held past the deadline is its
    OperationalError)."""

    busy_timeout_seconds: float = 10
    supports_statement_cache = True  # what it compiles is pysqlite's (without this, SQLAlchemy caches nothing)

    def do_begin(self, dbapi_connection: PoolProxiedConnection) -> None:
        driver = dbapi_connection.driver_connection
        assert driver is not None  # a connection being begun has its driver's
        if dbapi_connection.info.get(READER):
            driver.execute("BEGIN")
            return
        _while_locked(driver.execute, "BEGIN IMMEDIATE", self.busy_timeout_seconds)


registry.register("sqlite.kokeilu", __name__, "KokeiluSQLite")


def eventlet_patched() -> bool:
    try:
        from eventlet import patcher
    except ImportError:
        return False
    return bool(patcher.is_monkey_patched("thread"))


def _blocking(fn: Callable[[], _T]) -> _T:
    """Run `fn` (a disk wait) in a native thread under eventlet, so the other green threads go on."""
    if eventlet_patched():
        from eventlet import tpool

        return cast(_T, tpool.execute(fn))  # eventlet is untyped: execute returns fn's answer
    return fn()


class WalSync:
    """Group commit for SQLite in WAL mode with synchronous=NORMAL.

    Each transaction that changed something takes a ticket right after its COMMIT returns
    (`committed()`, still under the process's write lock, so tickets follow the order of the
    commits in the WAL), and then waits (`wait(ticket)`, outside the lock) until an fsync of
    the WAL that *began after its COMMIT* has finished. One waiter at a time runs the fsync,
    for every ticket taken before it began; those that commit meanwhile wait for the next one.
    So every commit is on disk before its transaction returns (an answer, an offset commit, a
    relay mark follows a durable commit, as with synchronous=FULL), while the fsyncs are
    shared and never hold the write lock.
    """

    def __init__(self, database_path: str):
        self.wal_path = database_path + "-wal"
        self._cond = threading.Condition()
        self._committed = 0
        self._synced = 0
        self._syncing = False
        self._wal_inode: int | None = None
        self.fsyncs = 0  # how many fsyncs were run (tests, curiosity)

    def committed(self) -> int:
        with self._cond:
            self._committed += 1
            return self._committed

    @property
    def synced(self) -> int:
        return self._synced

    def wait(self, ticket: int) -> None:
        with self._cond:
            while self._synced < ticket:
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                covered = self._committed
                self._cond.release()
                try:
                    _blocking(self._fsync)
                except BaseException:
                    self._cond.acquire()
                    self._syncing = False
                    self._cond.notify_all()  # another waiter tries again
                    raise
                self._cond.acquire()
                self._syncing = False
                self._synced = max(self._synced, covered)
                self.fsyncs += 1
                self._cond.notify_all()

    def _fsync(self) -> None:
        try:
            fd = os.open(self.wal_path, os.O_RDONLY)
        except FileNotFoundError:
            return  # checkpointed and removed (the last connection closed): the checkpoint synced the database
        try:
            os.fsync(fd)
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        if inode != self._wal_inode:  # a new WAL file: its directory entry must be durable too
            dir_fd = os.open(os.path.dirname(self.wal_path) or ".", os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._wal_inode = inode


def _native_threading() -> Any:
    """The threading module with OS threads and locks, also in a process eventlet has patched."""
    if eventlet_patched():
        from eventlet import patcher

        return patcher.original("threading")
    return threading


class WalCheckpointer:
    """Checkpoints a SQLite database in WAL mode in an OS thread of its own, so that no
    transaction waits for the bulk of a checkpoint (writers' own automatic checkpoints are set
    far off: WRITER_CHECKPOINT_FRAMES).

    Woken by the commits that changed something (`nudge`), at most once every `interval`
    seconds the thread copies what the WAL holds into the database file: a PASSIVE checkpoint,
    which waits for no one and holds no one back (SQLite syncs the WAL before it copies).

    While writers go on, that copy cannot finish the job by itself. SQLite syncs the file, and
    counts the WAL wholly copied, only when no commit came in during the copy; and the WAL starts
    again from its beginning only when a writer begins while it is wholly copied. A writer that
    commits back to back always has a transaction open across the copy, so neither happens: the
    WAL grew until WRITER_CHECKPOINT_FRAMES, and the COMMIT that reached it synced every page the
    thread had copied since (about 80 ms at 100,000 open proposals; bench/README.md). So:

    - once the WAL holds `restart_frames` pages (below that its copies only copy), the thread
      syncs the database file itself after its copy (fdatasync: the pages it copied go to disk
      while no one waits for them), copies what was committed meanwhile and syncs that too
      (`rounds` in all, each shorter than the one before), then asks the writers to finish
      (`wants_completion`);
    - the next writer, after its own commit is durable, takes the process's write lock again
      and runs `complete()`: a PASSIVE checkpoint that copies what was committed since the
      thread's last copy (a few commits) and, since no commit of this process can come in
      meanwhile, syncs the file (the few pages not yet synced) and leaves the WAL wholly
      copied; the next writer starts it again from its beginning.

    What the writers wait for is the copy of those few commits and their pages' sync (about
    5 ms at 100,000 open proposals, once every `restart_frames` pages of WAL), instead of
    everything at once.
    """

    def __init__(
        self, database_path: str, interval: float = 0.2, rounds: int = 2, restart_frames: int = RESTART_FRAMES
    ):
        self.path = database_path
        self.interval = interval
        self.rounds = rounds
        self.restart_frames = restart_frames
        native = _native_threading()
        self._native = native
        self._wake = native.Event()
        self._stop = native.Event()
        self._start_lock = native.Lock()
        self._thread: Any = None
        self._completer: sqlite3.Connection | None = None  # the writers' (complete(), under their lock)
        self.wants_completion = False  # set by the thread, cleared by a writer's complete()
        self.checkpoints = 0  # PASSIVE checkpoints run by the thread (tests, curiosity)
        self.completions = 0  # checkpoints a writer finished (tests, curiosity)
        self.last: tuple[int, int, int] | None = None  # (busy, WAL frames, frames copied) of the last

    def nudge(self) -> None:
        """A transaction changed the database: checkpoint soon."""
        if self._thread is None:
            with self._start_lock:
                if self._thread is None and not self._stop.is_set():
                    self._thread = self._native.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
                    self._thread.start()
        self._wake.set()

    def complete(self) -> None:
        """Finish what the thread copied: run by a writer holding the process's write lock (no
        commit of this process comes in between), after the thread asked (wants_completion).
        A failure is logged and the thread asks again after its next copy."""
        self.wants_completion = False
        try:
            if self._completer is None:
                self._completer = _checkpoint_connection(self.path)
            busy, frames, copied = self.last = self._completer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            log.warning("checkpoint of %s failed; it is tried again", self.path, exc_info=True)
            return
        if not busy and copied >= frames:
            self.completions += 1

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (after the checkpoint it is running, if any)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if self._completer is not None:
            self._completer.close()
            self._completer = None

    def _run(self) -> None:
        conn = None
        try:
            while not self._stop.is_set():
                self._wake.wait()
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    if conn is None:
                        conn = _checkpoint_connection(self.path)
                    self._checkpoint(conn)
                except (sqlite3.Error, OSError):
                    log.warning("checkpoint of %s failed; the next commit tries again", self.path, exc_info=True)
                self._stop.wait(self.interval)
        finally:
            if conn is not None:
                conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        for round_ in range(self.rounds):
            busy, frames, copied = self.last = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.checkpoints += 1
            if busy or frames <= 0:
                return  # another checkpoint is running, or there was nothing to copy
            if round_ == 0 and frames < self.restart_frames:
                return  # a small WAL: the file is written back by the system meanwhile
            # SQLite synced the file only if no commit came in during the copy; the pages it
            # wrote go to disk now either way, while no one waits for them.
            _fdatasync(self.path)
        self.wants_completion = True


def _checkpoint_connection(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _fdatasync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


class Database:
    """One engine per service process.

    On SQLite every transaction in the process is serialised through one lock: a write
    transaction that yields to another green thread mid-way would otherwise hold the file lock
    while the other waits on it in a real (blocking) call, and the process stalls.
    """

    def __init__(self, url: str, migrations: Path | None = None, busy_timeout_seconds: float = 10):
        self.url = url
        self.engine = make_engine(url, busy_timeout_seconds)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.migrations = migrations
        self._lock = threading.RLock()
        path = self.engine.url.database if self.is_sqlite else None
        file = os.path.abspath(path) if path and path != ":memory:" else None
        self.file = file  # the SQLite store's file (None: PostgreSQL, or SQLite in memory)
        self.wal_sync = WalSync(file) if file else None
        self.checkpointer = WalCheckpointer(file) if file else None

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to `revision` (tests stop at an older one to check a migration)."""
        if self.migrations is None:
            return
        cfg = Config()
        cfg.set_main_option("script_location", str(self.migrations))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.begin() as conn:
            # Instances started together (a Deployment's replicas) migrate one after another: the
            # first upgrades, the others wait here and then find the schema at `revision`.
            hold(conn, "kokeilu.migrations")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """One transaction, committed when the block ends without an exception (a span of its
        own inside a traced request or record: kokeilu/tracing.py)."""
        with (
            tracing.span("store transaction", {"db.system.name": self.engine.dialect.name}),
            self._transaction() as conn,
        ):
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        if self.is_sqlite:
            ticket = None
            wal_sync = self.wal_sync
            with self._lock:
                with self.engine.begin() as conn:
                    raw = conn.connection.dbapi_connection
                    assert raw is not None  # a connection in a transaction has its driver's
                    changes = raw.total_changes
                    yield conn
                # Committed (an exception would not get here) or rolled back; a transaction that
                # changed no row (a read, a replayed answer) has nothing to make durable.
                if wal_sync is not None and raw.total_changes != changes:
                    ticket = wal_sync.committed()
            if wal_sync is not None and ticket is not None:
                wal_sync.wait(ticket)
                checkpointer = self.checkpointer
                if checkpointer is not None:
                    checkpointer.nudge()
                    if checkpointer.wants_completion:
                        with self._lock:
                            _blocking(checkpointer.complete)
        else:
            with self.engine.begin() as conn:
                yield conn

    def ping(self) -> None:
        """Raises unless the store answers a read (not queued behind this process's writers)."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.connection.info[READER] = True
                try:
                    conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one()
                finally:
                    conn.connection.info.pop(READER, None)
            else:
                conn.exec_driver_sql("SELECT 1").scalar_one()

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.engine.dispose()
