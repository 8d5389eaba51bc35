"""Named locks that several instances of a service take on their shared store.

On PostgreSQL a name is a transaction-level advisory lock: held from the moment it is taken
until the transaction ends (commit or rollback), so nothing can forget to release it, and a
second instance that asks for the same name waits until then. Locks are per database, so two
services never contend. SQLite needs none of those: every write transaction begins IMMEDIATE,
taking the whole file for its length, so write transactions of all the processes that share
the store (instances on one host) already run one after another. What must span several
transactions (the outbox relay reads, publishes outside any transaction, then marks) takes
`file_lock` instead (docs/operations.md, "Several instances").
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

_TAKE = sa.text("SELECT pg_advisory_xact_lock(:key)")


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (PostgreSQL's advisory lock space)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def hold(conn: sa.Connection, name: str) -> None:
    """Take `name` for the rest of `conn`'s transaction, waiting while another transaction holds it."""
    if conn.dialect.name == "postgresql":
        conn.execute(_TAKE, {"key": lock_key(name)})


@contextmanager
def file_lock(path: str, poll: float = 0.001, longest_poll: float = 0.02) -> Iterator[None]:
    """Hold an exclusive lock on the file at `path` (made if missing) for the block, against
    every other process and every other open of it in this one (flock). Waits as long as
    another holder keeps it, in short sleeps (green under eventlet: the process goes on); the
    holder's own deadlines bound that (the relay's flush gives up after a minute). A holder
    killed with -9 holds nothing: the kernel drops the lock with its file descriptors."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        delay = poll
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(delay)
                delay = min(delay * 2, longest_poll)
        yield
    finally:
        os.close(fd)  # releases the lock
