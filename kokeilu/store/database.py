"""A service's database: engine, migrations on start, and the guard SQLite needs under eventlet."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

log = logging.getLogger(__name__)

# What the SQLite driver may wait for a lock by itself (blocking the process), in milliseconds.
DRIVER_BUSY_MS = 20


def make_engine(url: str, busy_timeout_seconds: float = 10) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_seconds, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            # WAL lets readers in other processes (the rebuild tool, a second instance) run beside the writer.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            # The driver's own busy handler sleeps inside C: under eventlet that stalls every green
            # thread of the process (liveness, unrelated requests). It only covers brief contention
            # here; waiting for the write lock is done in _begin, where the sleep is green.
            cur.execute(f"PRAGMA busy_timeout={DRIVER_BUSY_MS}")
            cur.close()

        # pysqlite's own transaction handling defers BEGIN; make it explicit and IMMEDIATE so a
        # write transaction takes the lock up front instead of failing half-way.
        @sa.event.listens_for(engine, "connect")
        def _no_pysqlite_tx(dbapi_conn, _record):
            dbapi_conn.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin(conn):
            if conn.get_execution_options().get("kokeilu_read_only"):
                conn.exec_driver_sql("BEGIN")  # a reader: WAL never makes it wait for the writer
                return
            deadline = time.monotonic() + busy_timeout_seconds
            delay = 0.005
            while True:
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    return
                except sa.exc.OperationalError as exc:
                    if "locked" not in str(exc.orig) or time.monotonic() + delay > deadline:
                        raise
                time.sleep(delay)  # green under eventlet: the rest of the process goes on
                delay = min(delay * 2, 0.1)

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


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

    def migrate(self) -> None:
        if self.migrations is None:
            return
        cfg = Config()
        cfg.set_main_option("script_location", str(self.migrations))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def transaction(self):
        if self.is_sqlite:
            with self._lock, self.engine.begin() as conn:
                yield conn
        else:
            with self.engine.begin() as conn:
                yield conn

    def ping(self) -> None:
        """Raises unless the store answers a read (not queued behind this process's writers)."""
        with self.engine.connect() as conn:
            conn.execution_options(kokeilu_read_only=True)
            if self.is_sqlite:
                conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one()
            else:
                conn.exec_driver_sql("SELECT 1").scalar_one()

    def dispose(self) -> None:
        self.engine.dispose()
